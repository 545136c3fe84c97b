//! What WordPress answers when a store is healthy: the home page with the site title in `<title>`,
//! and the REST index listing WooCommerce's Store API among its namespaces.
use serde::Deserialize;

/// WooCommerce's Store API (the cart and checkout the shop runs on): WooCommerce registers this
/// REST namespace only while it is active.
pub const WOOCOMMERCE_STORE_API: &str = "wc/store/v1";

/// The REST index (`GET /wp-json/`), as far as the check reads it: WordPress core's
/// `WP_REST_Server::get_index` answers `'namespaces' => array_keys( $this->namespaces )`, a list
/// of every registered namespace (`wp/v2`, `oembed/1.0`, and each active plugin's).
#[derive(Debug, Deserialize, PartialEq)]
pub struct RestIndex {
    pub namespaces: Vec<String>,
}

impl RestIndex {
    /// The index, or why the body is not one (quoted for the `reason`).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| format!("/wp-json/ did not answer JSON ({e})"))?;
        if !value.is_object() {
            return Err("/wp-json/ did not answer a JSON object".into());
        }
        if value.get("namespaces").is_none() {
            return Err(
                "/wp-json/ answered JSON without a `namespaces` list: not WordPress's REST index"
                    .into(),
            );
        }
        serde_json::from_value(value).map_err(|e| {
            format!("/wp-json/ answered a `namespaces` that is not a list of names ({e})")
        })
    }

    pub fn woocommerce_active(&self) -> bool {
        self.namespaces.iter().any(|n| n == WOOCOMMERCE_STORE_API)
    }
}

/// Whether the page's `<title>` shows the site title; `Err` says what the page showed instead.
///
/// WordPress prints the title through `wp_get_document_title()`, which runs `wptexturize`
/// (straight quotes become curly ones, `--` a dash, `...` an ellipsis), `esc_html` and
/// `capital_P_dangit`, and may append the tagline or page name. So both sides are compared
/// decoded and folded ([`fold`]), and the page's title only has to contain the store's.
pub fn shows_title(html: &str, site_title: &str) -> Result<(), String> {
    let Some(shown) = document_title(html) else {
        return Err("the home page has no <title>".into());
    };
    if fold(&decode_entities(&shown)).contains(&fold(site_title)) {
        Ok(())
    } else {
        Err(format!(
            "the home page's <title> is {:?}, without the store's name {:?}",
            excerpt(&decode_entities(&shown)),
            excerpt(site_title)
        ))
    }
}

/// The text of the first `<title>` element (tag names are case-insensitive in HTML).
fn document_title(html: &str) -> Option<String> {
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` index `html`.
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let content_start = open + lower[open..].find('>')? + 1;
    let content_end = content_start + lower[content_start..].find("</title")?;
    Some(html[content_start..content_end].to_owned())
}

/// Decodes the character references `esc_html` and `wptexturize` produce (numeric ones and the
/// few named ones); anything else stays as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| {
                let name = &rest[1..=end];
                let c = match name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "nbsp" => Some('\u{a0}'),
                    _ => name.strip_prefix('#').and_then(|num| {
                        let code = match num.strip_prefix(['x', 'X']) {
                            Some(hex) => u32::from_str_radix(hex, 16).ok(),
                            None => num.parse().ok(),
                        };
                        code.and_then(char::from_u32)
                    }),
                };
                c.map(|c| (c, end + 2))
            });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Folds what `wptexturize` and `capital_P_dangit` change: typographic quotes, dashes, ellipsis
/// and multiplication sign to ASCII, runs of dashes and of white space to one, and case.
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}' | '\u{2032}' => out.push('\''),
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{201f}' | '\u{2033}' => out.push('"'),
            '\u{2013}' | '\u{2014}' => out.push('-'),
            '\u{2026}' => out.push_str("..."),
            '\u{d7}' => out.push('x'),
            '\u{2122}' => out.push_str("(tm)"),
            c if c.is_whitespace() => out.push(' '),
            c => out.extend(c.to_lowercase()),
        }
    }
    let mut folded = String::with_capacity(out.len());
    for c in out.trim().chars() {
        let repeat = matches!(c, '-' | ' ') && folded.ends_with(c);
        if !repeat {
            folded.push(c);
        }
    }
    folded
}

/// At most 80 characters of text a store sent, without control characters, for a `reason`.
pub fn excerpt(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    match clean.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The REST index of a WordPress 6.8 site without WooCommerce, in the shape of WordPress core's
    /// `WP_REST_Server::get_index` (wordpress-develop, `src/wp-includes/rest-api/class-wp-rest-server.php`):
    /// `name`, `description`, `url`, `home`, `gmt_offset`, `timezone_string`, `page_for_posts`,
    /// `page_on_front`, `show_on_front`, `namespaces` (`array_keys( $this->namespaces )`),
    /// `authentication` (`array()`, which PHP encodes as `[]`), `routes` (`get_data_for_routes`: per
    /// route `namespace`, `methods`, `endpoints`, and `_links.self` for routes without parameters),
    /// then `add_site_logo_to_index` / `add_site_icon_to_index` (`site_logo`, `site_icon`,
    /// `site_icon_url`) and the `help` link. The namespaces are those core 6.8 registers.
    const CORE_INDEX: &str = r#"{
        "name": "Café \"Quatre\"",
        "description": "",
        "url": "http://store-7016ff.localhost",
        "home": "http://store-7016ff.localhost",
        "gmt_offset": "0",
        "timezone_string": "",
        "page_for_posts": 0,
        "page_on_front": 0,
        "show_on_front": "posts",
        "namespaces": ["oembed/1.0", "wp/v2", "wp-site-health/v1", "wp-block-editor/v1"],
        "authentication": [],
        "routes": {
            "/": {
                "namespace": "",
                "methods": ["GET"],
                "endpoints": [{"methods": ["GET"], "args": {"context": {"default": "view", "required": false}}}],
                "_links": {"self": [{"href": "http://store-7016ff.localhost/wp-json/"}]}
            },
            "/wp/v2/posts/(?P<id>[\\d]+)": {
                "namespace": "wp/v2",
                "methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
                "endpoints": [{"methods": ["GET"], "allow_batch": {"v1": true}, "args": {"id": {"description": "Unique identifier for the post.", "type": "integer", "required": false}}}]
            }
        },
        "site_logo": 0,
        "site_icon": 0,
        "site_icon_url": "",
        "_links": {"help": [{"href": "https://developer.wordpress.org/rest-api/"}]}
    }"#;

    #[test]
    fn reads_namespaces_from_cores_index() {
        let index = RestIndex::parse(CORE_INDEX.as_bytes()).unwrap();
        assert_eq!(
            index.namespaces,
            [
                "oembed/1.0",
                "wp/v2",
                "wp-site-health/v1",
                "wp-block-editor/v1"
            ]
        );
        assert!(!index.woocommerce_active());
    }

    #[test]
    fn woocommerce_is_active_when_its_store_api_is_listed() {
        // WooCommerce 10 registers `wc/store` and `wc/store/v1` (Store API), `wc/v1`..`wc/v3`, and more.
        let with_woo = CORE_INDEX.replace(
            r#""wp-block-editor/v1"]"#,
            r#""wp-block-editor/v1", "wc/store", "wc/store/v1", "wc/v3", "wc-admin"]"#,
        );
        assert!(
            RestIndex::parse(with_woo.as_bytes())
                .unwrap()
                .woocommerce_active()
        );
        // Another version of the Store API, or only the admin API, is not the one the shop runs on.
        let other = CORE_INDEX.replace(
            r#""wp-block-editor/v1"]"#,
            r#""wp-block-editor/v1", "wc/store/v2", "wc/v3"]"#,
        );
        assert!(
            !RestIndex::parse(other.as_bytes())
                .unwrap()
                .woocommerce_active()
        );
    }

    #[test]
    fn refuses_what_is_not_the_index() {
        for (body, says) in [
            ("<!DOCTYPE html><html>", "did not answer JSON"),
            ("[]", "not answer a JSON object"),
            (r#"{"code":"rest_no_route"}"#, "without a `namespaces` list"),
            (r#"{"namespaces": "wp/v2"}"#, "not a list of names"),
            (r#"{"namespaces": [1, 2]}"#, "not a list of names"),
        ] {
            let e = RestIndex::parse(body.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
        // `_fields=namespaces` (what the check asks for) leaves only that key.
        let filtered = RestIndex::parse(br#"{"namespaces":["wp/v2"]}"#).unwrap();
        assert_eq!(filtered.namespaces, ["wp/v2"]);
    }

    #[test]
    fn finds_the_title_as_wordpress_prints_it() {
        // wptexturize + esc_html of `Café "Quatre" -- it's 2x4...`.
        let page = "<html><head><meta charset=\"UTF-8\" />\n<TITLE>Caf&eacute; &#8220;Quatre&#8221; &#8211; it&#8217;s 2&#215;4&#8230; &#8211; Just another site</TITLE>";
        // (&eacute; is not produced by WordPress, which sends UTF-8; so it stays as written.)
        assert!(shows_title(page, "Café \"Quatre\" -- it's 2x4...").is_err());
        let page = page.replace("&eacute;", "é");
        shows_title(&page, "Café \"Quatre\" -- it's 2x4...").unwrap();
        shows_title(&page, "café  \"quatre\"").unwrap();
        shows_title("<title>Shop &amp; More &lt;3</title>", "Shop & More <3").unwrap();
        shows_title("<title>Wordpress shop</title>", "WordPress shop").unwrap();
    }

    #[test]
    fn says_what_the_page_showed_instead() {
        let e = shows_title(
            "<title>Error establishing a database connection</title>",
            "My Shop",
        )
        .unwrap_err();
        assert!(
            e.contains("Error establishing a database connection"),
            "{e}"
        );
        assert!(e.contains("My Shop"), "{e}");
        let e = shows_title("<html><body>It works!</body></html>", "My Shop").unwrap_err();
        assert!(e.contains("no <title>"), "{e}");
        assert_eq!(excerpt(&"a\u{7}".repeat(60)).chars().count(), 81);
    }
}

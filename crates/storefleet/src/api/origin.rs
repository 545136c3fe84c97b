//! The dashboard's own origin, and the check that a cookie-authenticated write comes from it.
//!
//! Browsers send `Origin` on every cross-site and every unsafe same-site request. The check compares
//! scheme, host and port (RFC 6454's tuple), not just the host: `http://admin.example.com` is not
//! `https://admin.example.com`. Without `--public-url` the expected origin is the request's own
//! authority (`Host` in HTTP/1.1, `:authority` in HTTP/2, where there is no `Host` header) with the
//! `--url-scheme`.
use axum::http::{HeaderMap, Method, Uri, header};

/// `scheme://host[:port]`, lower-cased, with the scheme's default port made explicit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicOrigin {
    scheme: String,
    host: String,
    port: u16,
}

impl PublicOrigin {
    /// `--public-url`: an http(s) URL with no path, query or user info.
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let origin = Self::from_origin_header(raw.trim_end_matches('/'))
            .ok_or_else(|| anyhow::anyhow!("--public-url {raw:?}: give scheme://host[:port], e.g. https://storefleet.example.com"))?;
        Ok(origin)
    }

    /// An `Origin` header value (`null` and anything odd: `None`).
    fn from_origin_header(raw: &str) -> Option<Self> {
        let (scheme, authority) = raw.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https") || authority.is_empty() {
            return None;
        }
        Self::from_authority(&scheme, authority)
    }

    fn from_authority(scheme: &str, authority: &str) -> Option<Self> {
        // Reject anything an origin cannot hold: a path, user info, a query.
        if authority.contains(['/', '@', '?', '#']) || authority.contains(char::is_whitespace) {
            return None;
        }
        let uri: Uri = format!("{scheme}://{authority}").parse().ok()?;
        let host = uri.host()?.to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Some(Self {
            scheme: scheme.to_owned(),
            host,
            port,
        })
    }

    /// The origin a request was addressed to: its `:authority` (HTTP/2, absolute-form) or `Host`.
    pub fn of_request(uri: &Uri, headers: &HeaderMap, https: bool) -> Option<Self> {
        let scheme = if https { "https" } else { "http" };
        let authority = match uri.authority() {
            Some(a) => a.as_str().to_owned(),
            None => headers.get(header::HOST)?.to_str().ok()?.to_owned(),
        };
        Self::from_authority(scheme, &authority)
    }
}

/// CSRF defence in depth (SameSite=Strict is the first line): a cookie-authenticated request that
/// changes something must come from the dashboard's origin. Clients that send no `Origin` (curl,
/// scripts) are not browsers and are let through.
pub fn same_origin(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    public: Option<&PublicOrigin>,
    https: bool,
) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return true;
    };
    if origins.next().is_some() {
        return false;
    }
    let Some(origin) = origin
        .to_str()
        .ok()
        .and_then(PublicOrigin::from_origin_header)
    else {
        return false;
    };
    match public {
        Some(public) => origin == *public,
        None => PublicOrigin::of_request(uri, headers, https).is_some_and(|own| own == origin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn post(uri: &str, pairs: &[(header::HeaderName, &str)], public: Option<&str>) -> bool {
        let public = public.map(|p| PublicOrigin::parse(p).unwrap());
        same_origin(
            &Method::POST,
            &uri.parse().unwrap(),
            &headers(pairs),
            public.as_ref(),
            false,
        )
    }

    #[test]
    fn parses_public_urls() {
        let o = PublicOrigin::parse("https://Admin.Example.com/").unwrap();
        assert_eq!(
            o,
            PublicOrigin::parse("https://admin.example.com:443").unwrap()
        );
        assert_ne!(o, PublicOrigin::parse("http://admin.example.com").unwrap());
        for bad in [
            "admin.example.com",
            "ftp://x",
            "https://",
            "https://a/b",
            "https://u@a",
        ] {
            assert!(PublicOrigin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compares_scheme_host_and_port_with_the_public_url() {
        let public = Some("https://admin.example.com");
        let origin = |o: &str| post("/session", &[(header::ORIGIN, o)], public);
        assert!(origin("https://admin.example.com"));
        assert!(origin("https://admin.example.com:443"));
        assert!(!origin("http://admin.example.com"), "scheme");
        assert!(!origin("https://admin.example.com:8443"), "port");
        assert!(!origin("https://evil.example"), "host");
        assert!(!origin("null"));
        assert!(post("/session", &[], public), "no Origin: not a browser");
    }

    #[test]
    fn without_a_public_url_the_request_authority_counts_also_over_http2() {
        let host = (header::HOST, "127.0.0.1:8080");
        assert!(post(
            "/stores",
            &[host.clone(), (header::ORIGIN, "http://127.0.0.1:8080")],
            None
        ));
        assert!(!post(
            "/stores",
            &[host.clone(), (header::ORIGIN, "https://127.0.0.1:8080")],
            None
        ));
        assert!(!post(
            "/stores",
            &[host, (header::ORIGIN, "http://evil.example")],
            None
        ));
        // HTTP/2: no Host header, the authority is in the URI.
        assert!(post(
            "http://127.0.0.1:8080/stores",
            &[(header::ORIGIN, "http://127.0.0.1:8080")],
            None
        ));
        assert!(!post(
            "http://127.0.0.1:8080/stores",
            &[(header::ORIGIN, "http://127.0.0.1:9999")],
            None
        ));
    }

    #[test]
    fn two_origins_are_refused() {
        assert!(!post(
            "/stores",
            &[
                (header::HOST, "a"),
                (header::ORIGIN, "http://a"),
                (header::ORIGIN, "http://a")
            ],
            None
        ));
    }
}

//! The store's base URL: parsed once, so every request is built from a valid one.

use reqwest::Url;

use crate::Error;

/// Base URL of a store (`http://store-7016ff.localhost`, or a WordPress in a sub-path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl(Url);

impl StoreUrl {
    pub fn parse(text: &str) -> crate::Result<Self> {
        let bad = |reason: &str| Error::StoreUrl {
            url: text.to_string(),
            reason: reason.to_string(),
        };
        let mut url = Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("only http and https are supported"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("give the store's base URL, without query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials in the URL are not supported"));
        }
        let path = url.path().trim_end_matches('/').to_string();
        url.set_path(&path);
        Ok(StoreUrl(url))
    }

    /// URL of a Store API route, e.g. `endpoint("cart/add-item")`.
    pub fn endpoint(&self, route: &str) -> Url {
        let mut url = self.0.clone();
        let path = format!(
            "{}/wp-json/wc/store/v1/{}",
            self.0.path().trim_end_matches('/'),
            route
        );
        url.set_path(&path);
        url
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_hang_below_the_base_url() {
        let store = StoreUrl::parse("http://store-7016ff.localhost/").unwrap();
        assert_eq!(
            store.endpoint("cart").as_str(),
            "http://store-7016ff.localhost/wp-json/wc/store/v1/cart"
        );
        let sub = StoreUrl::parse("https://example.com/shop").unwrap();
        assert_eq!(
            sub.endpoint("checkout").as_str(),
            "https://example.com/shop/wp-json/wc/store/v1/checkout"
        );
        assert_eq!(sub.to_string(), "https://example.com/shop");
    }

    #[test]
    fn rejects_what_is_not_a_store_base_url() {
        for bad in [
            "",
            "store-7016ff.localhost",
            "ftp://example.com",
            "http://example.com/?p=1",
            "https://u:p@example.com",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

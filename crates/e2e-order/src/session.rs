//! The guest cart session. Cart routes answer with a `Cart-Token` (identifies the cart without
//! cookies) and a fresh `Nonce` (needed by cart POSTs and checkout when no cart token is sent).
//! Both are sent back on every later request; cookies are kept by the HTTP client as well.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// `Nonce` (header names are case-insensitive; `http` keeps them lower-case).
pub const NONCE: HeaderName = HeaderName::from_static("nonce");
/// `Cart-Token`.
pub const CART_TOKEN: HeaderName = HeaderName::from_static("cart-token");

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CartSession {
    pub nonce: Option<String>,
    pub cart_token: Option<String>,
}

impl CartSession {
    /// Takes the newest tokens from a response; a response without them keeps the old ones.
    pub fn update(&mut self, headers: &HeaderMap) {
        let read = |name: HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        if let Some(nonce) = read(NONCE) {
            self.nonce = Some(nonce);
        }
        if let Some(token) = read(CART_TOKEN) {
            self.cart_token = Some(token);
        }
    }

    /// Headers for the next request.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [(NONCE, &self.nonce), (CART_TOKEN, &self.cart_token)] {
            if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_tokens_and_sends_them_back() {
        let mut session = CartSession::default();
        assert!(
            session.headers().is_empty(),
            "nothing to send before the first cart response"
        );

        let mut first = HeaderMap::new();
        first.insert("nonce", HeaderValue::from_static("a1b2c3"));
        first.insert("cart-token", HeaderValue::from_static("eyJ0eXAi.first"));
        session.update(&first);

        let mut second = HeaderMap::new();
        second.insert("nonce", HeaderValue::from_static("d4e5f6"));
        session.update(&second);

        assert_eq!(session.nonce.as_deref(), Some("d4e5f6"));
        assert_eq!(session.cart_token.as_deref(), Some("eyJ0eXAi.first"));
        let headers = session.headers();
        assert_eq!(headers.get("Nonce").unwrap(), "d4e5f6");
        assert_eq!(headers.get("Cart-Token").unwrap(), "eyJ0eXAi.first");
    }
}

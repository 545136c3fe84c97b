//! CORS: off (no CORS header at all, browsers keep other origins out) unless origins are allowed
//! with `--cors-allow-origin`. Then exactly those origins may call the API with a bearer token. No
//! credentials mode: the session cookie is `SameSite=Strict` and meant for the dashboard only.
use std::time::Duration;

use anyhow::{bail, ensure};
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// `https://admin.example.com[:port]`, exactly as browsers send it in `Origin`.
pub fn parse_origin(raw: &str) -> anyhow::Result<HeaderValue> {
    let uri: Uri = raw
        .parse()
        .map_err(|e| anyhow::anyhow!("--cors-allow-origin {raw:?}: {e}"))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    ensure!(
        matches!(scheme, "http" | "https"),
        "--cors-allow-origin {raw:?}: not an http(s) origin"
    );
    let Some(authority) = uri.authority() else {
        bail!("--cors-allow-origin {raw:?}: no host");
    };
    ensure!(
        uri.path_and_query().is_none_or(|p| p.as_str() == "/")
            && !raw.ends_with('/')
            && !authority.as_str().contains('@'),
        "--cors-allow-origin {raw:?}: an origin is scheme://host[:port], no path, user or trailing slash"
    );
    Ok(HeaderValue::from_str(&format!(
        "{scheme}://{}",
        authority.as_str().to_ascii_lowercase()
    ))?)
}

pub fn layer(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            parse_origin("https://Admin.example.com").unwrap(),
            "https://admin.example.com"
        );
        assert_eq!(
            parse_origin("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        for bad in [
            "admin.example.com",
            "ftp://example.com",
            "https://example.com/",
            "https://example.com/path",
            "https://user@example.com",
            "*",
            "",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad:?}");
        }
    }
}

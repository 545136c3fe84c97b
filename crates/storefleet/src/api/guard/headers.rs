//! Security headers on every answer: a strict Content-Security-Policy (the dashboard has no inline
//! script or style and talks only to its own origin), no sniffing, no framing, no referrer, its own
//! browsing context group, no powerful features, HSTS over https, and `Cache-Control: no-store`
//! wherever a handler did not choose (API answers are per caller; some carry credentials).
use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

/// Everything from the own origin only; no inline script or style, no plugins, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The Swagger UI at `/docs` sets inline styles (its own bundle, served from here): it alone gets
/// `'unsafe-inline'` for styles. Scripts stay `'self'`.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                            img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                            base-uri 'none'; form-action 'self'";

pub const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), \
                                      magnetometer=(), microphone=(), payment=(), usb=()";

/// Two years: the usual HSTS preload value. No `includeSubDomains`: stores live on sibling hosts
/// this control plane does not speak for.
pub const HSTS: &str = "max-age=63072000";

pub fn add<S>(router: Router<S>, https: bool) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            PERMISSIONS_POLICY,
        ),
    ];
    let mut router = router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    for (name, value) in fixed {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    if https {
        router = router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ));
    }
    router
}

/// The Swagger UI's routes, under their looser policy.
pub fn docs<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    ))
}

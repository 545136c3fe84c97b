//! HTTP methods: a closed set. hyper accepts any token as a method (up to the head size limit), and
//! every method used to become a label of the request metrics: a flood of made-up 8,000-letter
//! methods grew memory and `/metrics` without bound. Anything outside RFC 9110's methods (and PATCH)
//! is answered here, outside every other layer, and counted under the method label `other`. With 405,
//! not the 501 RFC 9110 suggests: the request is the client's fault, and a flood of invented methods
//! must not read as server errors on the dashboards and alerts that watch the 5xx ratio.
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::metrics::Metrics;

/// The method as a metric label: one of a fixed set, `other` for the rest.
pub fn label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

pub async fn refuse_unknown(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    if label(req.method()) != "other" {
        return next.run(req).await;
    }
    let started = Instant::now();
    // Outside the request-id layers: this answer gets a fresh id of its own, like every other.
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut body = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this server knows only the standard HTTP methods",
    )
    .body();
    body.request_id = Some(request_id.clone());
    let mut response = (
        StatusCode::METHOD_NOT_ALLOWED,
        serde_json::to_vec(&body).expect("problems serialise"),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert(crate::telemetry::REQUEST_ID_HEADER, id);
    }
    metrics.http_request("unmatched", "other", 405, started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_a_closed_set() {
        assert_eq!(label(&Method::GET), "GET");
        assert_eq!(label(&Method::PATCH), "PATCH");
        let odd = Method::from_bytes(&[b'X'; 8000]).unwrap();
        assert_eq!(label(&odd), "other");
        assert_eq!(label(&Method::from_bytes(b"get").unwrap()), "other");
    }
}

//! The request-head limit, enforced exactly. hyper's `max_buf_size` refuses a head only when it did
//! not fit the read buffer while still incomplete: a large head that arrives in one read can pass.
//! This counts what hyper parsed (target and headers, as HTTP/1 sends them) against the same limit.
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::listener::MAX_HEADER_BYTES;
use crate::api::problem::Problem;

pub async fn limit_head(req: Request, next: Next) -> Response {
    if head_size(&req) > MAX_HEADER_BYTES {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request-header-fields-too-large",
            "Request headers too large",
            format!("the request line and headers may take at most {MAX_HEADER_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

/// `name: value\r\n` per header, plus the request target.
fn head_size(req: &Request) -> usize {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_target_and_headers() {
        let req = Request::builder()
            .uri("/stores?x=1")
            .header("a", "bc")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(
            head_size(&req),
            "/stores?x=1".len() + "a".len() + "bc".len() + 4
        );
    }
}

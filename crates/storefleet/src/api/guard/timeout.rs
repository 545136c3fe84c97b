//! The request timeout: a request still unanswered after `--request-timeout` gets 503, or 408 when
//! its body had not fully arrived (the client stalled, not the server). Event streams
//! (`/events`, `/stores/{id}/events`) are meant to stay open and are exempt; `POST /stores?wait=true`
//! may take `--wait-limit` more. (Not tower-http's `TimeoutLayer`: its answer is an empty 408, ours
//! is a problem like every other error, and the limit depends on the route.)
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures::StreamExt;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Guard;
use crate::api::problem::Problem;

pub async fn limit_duration(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let Some(limit) = time_limit(&guard.settings, &req) else {
        return next.run(req).await;
    };
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let (req, body_arrived) = track_body(req);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) if !body_arrived.load(Ordering::Acquire) => {
            tracing::info!(%method, %path, limit_ms = limit.as_millis() as u64, "request body stalled");
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request body incomplete",
                format!(
                    "the request body did not arrive within {} s; nothing was done",
                    limit.as_secs_f64()
                ),
            )
            .into_response()
        }
        Err(_) => {
            tracing::warn!(%method, %path, limit_ms = limit.as_millis() as u64, "request timed out");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
                format!(
                    "the request took longer than {} s; it may still complete, check before retrying",
                    limit.as_secs_f64()
                ),
            )
            .into_response()
        }
    }
}

/// Passes the request on with a flag that turns true once its body has been read to the end (at once
/// for a request without a body).
fn track_body(req: Request) -> (Request, Arc<AtomicBool>) {
    use axum::body::HttpBody as _;
    let arrived = Arc::new(AtomicBool::new(req.body().is_end_stream()));
    if arrived.load(Ordering::Relaxed) {
        return (req, arrived);
    }
    let (parts, body) = req.into_parts();
    let flag = arrived.clone();
    // Polled only after the body's own stream has ended.
    let end = futures::stream::poll_fn(move |_| {
        flag.store(true, Ordering::Release);
        Poll::<Option<Result<Bytes, axum::Error>>>::Ready(None)
    });
    let body = Body::from_stream(body.into_data_stream().chain(end));
    (Request::from_parts(parts, body), arrived)
}

fn time_limit(settings: &super::Settings, req: &Request) -> Option<Duration> {
    let limit = settings.request_timeout?;
    let route = crate::telemetry::route(req);
    if matches!(route, "/events" | "/stores/{store_id}/events") {
        return None;
    }
    let waits = req.method() == Method::POST
        && route == "/stores"
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("wait=")));
    Some(if waits {
        limit + settings.wait_limit
    } else {
        limit
    })
}

//! Unauthenticated probes: `/healthz` (the process answers), `/readyz` (the Store CRD, the watch and
//! the database, as last seen), `/metrics` (Prometheus text). The platform chart routes none of them
//! publicly.
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{Problem, ProblemBody};
use super::{AppState, ProbeState};
use crate::dependencies::Dependencies;

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: always 200 while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: 200 when the Store CRD is served, this process's watch of Stores is in sync and the
/// database answers, else 503 naming the first cause. Answered from state a background task keeps
/// (`dependencies.rs`): a probe costs no call to the Kubernetes API server.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "A dependency is unreachable, or the Store CRD is missing (the detail says how to install it)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    ready(&state.deps)
}

fn ready(deps: &Dependencies) -> Result<Json<Health>, Problem> {
    match deps.not_ready() {
        None => Ok(Json(Health { status: "ok" })),
        Some(why) => Err(unavailable("Not ready", why)),
    }
}

pub fn unavailable(title: &'static str, detail: String) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        title,
        detail,
    )
}

/// Middleware of the routes that need Stores: 503 naming the fix while the CRD is not served.
pub async fn require_crd(
    State(deps): State<Arc<Dependencies>>,
    req: Request,
    next: Next,
) -> Response {
    match deps.crd().problem() {
        None => next.run(req).await,
        Some(why) => unavailable("Store CRD missing", why).into_response(),
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.event_streams(state.streams.open_count());
    let stores = state.cache.state();
    let ours = stores
        .iter()
        .filter(|s| state.stores.is_ours(s))
        .map(|s| s.as_ref());
    openmetrics(state.metrics.render(ours))
}

/// `/readyz` of `--component controller`: the same dependencies, its own watch.
pub async fn controller_readyz(State(state): State<ProbeState>) -> Result<Json<Health>, Problem> {
    ready(&state.deps)
}

/// `/metrics` of `--component controller`: stores by phase from the controller's own cache.
pub async fn controller_metrics(State(state): State<ProbeState>) -> Response {
    let stores = state.cache.read().expect("not poisoned").state();
    let ours = stores
        .iter()
        .filter(|s| s.instance() == state.instance)
        .map(|s| s.as_ref());
    openmetrics(state.metrics.render(ours))
}

fn openmetrics(text: String) -> Response {
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

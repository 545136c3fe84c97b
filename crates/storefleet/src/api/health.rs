//! Unauthenticated probes: `/healthz` (the process answers), `/readyz` (Kubernetes API and database
//! reachable), `/metrics` (Prometheus text).
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::problem::{Problem, ProblemBody};

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

/// Readiness: 200 when the Kubernetes API and the database answer, else 503.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "A dependency is unreachable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    let unavailable = |detail: String| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Not ready",
            detail,
        )
    };
    // Listing Stores checks more than reachability: the CRD is installed and RBAC lets us read it.
    let stores = kube::Api::<crate::crd::Store>::all(state.client.clone());
    let one = kube::api::ListParams::default().limit(1);
    let probe = stores.list_metadata(&one);
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unavailable(format!("Kubernetes API: {e}"))),
        Err(_) => return Err(unavailable("Kubernetes API: no answer within 5s".into())),
    }
    match tokio::time::timeout(Duration::from_secs(5), state.db.ping()).await {
        Ok(Ok(())) => Ok(Json(Health { status: "ok" })),
        Ok(Err(e)) => Err(unavailable(format!("database: {e}"))),
        Err(_) => Err(unavailable("database: no answer within 5s".into())),
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let stores = state.cache.state();
    let ours = stores
        .iter()
        .filter(|s| state.stores.is_ours(s))
        .map(|s| s.as_ref());
    let text = state.metrics.render(ours);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

//! `GET /stores/{id}/health`: whether the store's shop answers (`storefront/`). Visible as the store
//! is: another user's store is a 404 like a missing one.
//!
//! Not audited: it is a read that changes nothing and reveals nothing beyond what the store's own
//! public URL shows to anyone; like `GET /stores/{id}`, it is bounded by the read rate limit.
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::problem::{Problem, ProblemBody};
use super::{ApiPath, AppState};
use crate::domain::StoreId;
use crate::storefront::StorefrontHealth;
use crate::stores::Caller;

/// Check that a store's storefront answers.
#[utoipa::path(
    get, path = "/stores/{store_id}/health", tag = "stores",
    params(("store_id" = String, Path, example = "store-7016ff")),
    responses(
        (status = 200, description = "The check's report, also when the storefront does not answer (then `healthy` is false and the failed parts say why). Never cached.", body = StorefrontHealth),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn storefront_health(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
) -> Result<Response, Problem> {
    let id = StoreId::parse(&store_id)?;
    let view = state.stores.get(&caller, &id).await?;
    let report = state
        .storefronts
        .check(&id, &view.name)
        .await
        .map_err(|e| {
            super::health::unavailable(
                "Kubernetes unavailable",
                format!("finding the WordPress Service of {id}: {e}"),
            )
        })?;
    let mut response = Json(report).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

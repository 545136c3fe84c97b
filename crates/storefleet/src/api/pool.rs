//! `GET /pool`: the warm pool's kinds, targets and what is there (admins only; docs/pool.md).
use axum::Json;
use axum::extract::{Extension, State};

use super::AppState;
use super::problem::{Problem, ProblemBody};
use crate::pool::status::PoolKindView;
use crate::stores::Caller;

/// The warm pool (admins only): per kind, the target and the unclaimed stores there are. Empty
/// when the platform keeps no pool.
#[utoipa::path(
    get, path = "/pool", tag = "pool",
    responses(
        (status = 200, description = "The pool's kinds", body = [PoolKindView]),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn get_pool(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<PoolKindView>>, Problem> {
    super::auth::require_admin(&state, &caller, "GET /pool", "only admins see the pool").await?;
    Ok(Json(state.stores.pool_status()))
}

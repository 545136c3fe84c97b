//! `GET /audit`: the audit log, newest first. Admins read all of it; members the entries about their
//! stores and the ones they made about no store.
use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;

use super::problem::{Problem, ProblemBody};
use super::{ApiQuery, AppState};
use crate::domain::StoreId;
use crate::storage::AuditRecord;
use crate::stores::Caller;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only entries about this store.
    pub store_id: Option<String>,
}

/// Read the audit log.
#[utoipa::path(
    get, path = "/audit", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "Entries the caller may read, newest first", body = Vec<AuditRecord>),
        (status = 400, description = "Bad parameters", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<Vec<AuditRecord>>, Problem> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 1000"));
    }
    let store_id = params
        .store_id
        .as_deref()
        .map(StoreId::parse)
        .transpose()
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let member = (!caller.is_admin()).then(|| caller.owner.as_str());
    let records = state
        .audit
        .list(limit, store_id.as_ref().map(StoreId::as_str), member)
        .await
        .map_err(|e| {
            super::health::unavailable(
                "Database unavailable",
                format!("reading the audit log: {e}"),
            )
        })?;
    Ok(Json(records))
}

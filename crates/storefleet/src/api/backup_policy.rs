//! A store's backup schedule (`/stores/{store_id}/backup-schedule`) and the deleted stores that can
//! still be brought back (`/deleted-stores`). Thin: visibility is the store's, the rules are
//! `crate::backups::scheduler` and `crate::backups::deleted`.
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::problem::{Problem, ProblemBody};
use super::stores::json_object;
use super::{ApiPath, AppState};
use crate::backups::deleted::DeletedStore;
use crate::backups::schedule::Schedule;
use crate::backups::scheduler::{self, ScheduleView};
use crate::domain::StoreId;
use crate::storage::{Action, AuditEntry};
use crate::stores::{Caller, StoreError};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// `off`, `hourly` (admins only), `daily` or `weekly`; `null`: the platform's default again.
    pub schedule: Option<Schedule>,
}

/// When the store is backed up on its own, and how long those backups are kept.
#[utoipa::path(
    get, path = "/stores/{store_id}/backup-schedule", tag = "backups",
    params(("store_id" = String, Path, example = "store-7016ff")),
    responses(
        (status = 200, description = "The store's schedule", body = ScheduleView),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "This platform has no backup target (`backups-not-configured`)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn get_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
) -> Result<Json<ScheduleView>, Problem> {
    let id = StoreId::parse(&store_id)?;
    let store = state.stores.get_store(&caller, &id).await?;
    offered(&state)?;
    Ok(Json(scheduler::view(
        &store,
        &state.backup_policy,
        chrono::Utc::now(),
    )))
}

/// Choose the store's own schedule (or, with `null`, go back to the platform's).
#[utoipa::path(
    put, path = "/stores/{store_id}/backup-schedule", tag = "backups",
    params(("store_id" = String, Path, example = "store-7016ff")),
    request_body = ScheduleRequest,
    responses(
        (status = 200, description = "The store's schedule, as changed", body = ScheduleView),
        (status = 400, description = "Invalid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "`hourly` asked for by a member (`admin-only`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The store is being deleted (`store-deleting`), or this platform has no backup target (`backups-not-configured`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "No body, unknown fields, or not a schedule", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn put_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ScheduleView>, Problem> {
    let id = StoreId::parse(&store_id)?;
    let bytes = body.map_err(Problem::from)?;
    let request: ScheduleRequest = json_object(&headers, &bytes)?.ok_or_else(|| {
        Problem::invalid(
            "a JSON body is required, e.g. {\"schedule\": \"weekly\"} or {\"schedule\": null}",
        )
    })?;
    let store = state.stores.get_store(&caller, &id).await?;
    offered(&state)?;
    if store.deletion_requested() {
        return Err(StoreError::Deleting(id.to_string()).into());
    }
    // An hour's backups of every store are the platform's cost: its admins decide that.
    if request.schedule == Some(Schedule::Hourly) && !caller.is_admin() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "admin-only",
            "Admins only",
            "only an admin may back a store up hourly; choose daily, weekly or off",
        ));
    }
    let before = scheduler::view(&store, &state.backup_policy, chrono::Utc::now());
    let api = kube::Api::<crate::crd::Store>::all(state.client.clone());
    let changed = scheduler::set_own(&api, &id, request.schedule)
        .await
        .map_err(StoreError::from)?;
    // The dashboard reads the schedule back at once (and `clones.test.mjs` saw the old one).
    state.stores.wrote(&changed);
    let after = scheduler::view(&changed, &state.backup_policy, chrono::Utc::now());
    state
        .audit
        .record(AuditEntry {
            actor: caller.owner.to_string(),
            action: Action::Backup,
            store_id: Some(id.to_string()),
            store_owner: Some(store.spec.owner.clone()),
            outcome: "schedule".into(),
            detail: format!(
                "schedule {} ({}) → {} ({})",
                before.schedule, before.source, after.schedule, after.source
            ),
            remote_addr: caller.remote_addr.clone(),
        })
        .await;
    Ok(Json(after))
}

/// Deleted stores whose final backup is still kept: the caller's own (every one for an admin),
/// newest first. Bring one back with `POST /stores {"from_backup": ...}`.
#[utoipa::path(
    get, path = "/deleted-stores", tag = "backups",
    responses(
        (status = 200, description = "Deleted stores that can be brought back", body = [DeletedStore]),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "This platform has no backup target (`backups-not-configured`)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn deleted_stores(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<DeletedStore>>, Problem> {
    Ok(Json(
        state
            .backups
            .deleted_stores(&caller, state.backup_policy.retention.deleted)
            .await?,
    ))
}

fn offered(state: &AppState) -> Result<(), Problem> {
    if state.backups.enabled() {
        Ok(())
    } else {
        Err(crate::backups::service::BackupServiceError::NotConfigured.into())
    }
}

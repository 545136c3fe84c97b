//! `/stores/{store_id}/backups` handlers: ask for a backup, list a store's, read one, delete one.
//! Thin: visibility is the store's (`StoreService::get`: another user's store, and so its backups,
//! is 404 as a missing one), the work is `crate::backups` (a `StoreBackup` object the controller
//! runs). Every request that changes something is audited, with the store and its owner.
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::problem::{Problem, ProblemBody};
use super::{ApiPath, AppState};
use crate::backups::BackupId;
use crate::backups::service::{BackupServiceError, BackupView};
use crate::crd::Phase;
use crate::domain::StoreId;
use crate::storage::{Action, AuditEntry};
use crate::stores::{Caller, StoreView};

impl From<BackupServiceError> for Problem {
    fn from(e: BackupServiceError) -> Self {
        match e {
            // The platform's configuration, not an outage: a 4xx the caller can read, never a 5xx
            // that pages someone.
            BackupServiceError::NotConfigured => Problem::new(
                StatusCode::CONFLICT,
                "backups-not-configured",
                "Backups not configured",
                e.to_string(),
            ),
            BackupServiceError::NotFound(_) => Problem::not_found(e.to_string()),
            BackupServiceError::Kube(e) => {
                tracing::warn!("backups: Kubernetes API: {e}");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "kubernetes-unavailable",
                    "Kubernetes API unavailable",
                    "the Kubernetes API did not answer as expected; try again",
                )
            }
        }
    }
}

impl From<crate::backups::clones::CloneRefused> for Problem {
    fn from(e: crate::backups::clones::CloneRefused) -> Self {
        use crate::backups::clones::CloneRefused;
        let (status, slug, title) = match &e {
            CloneRefused::NotConfigured => return BackupServiceError::NotConfigured.into(),
            CloneRefused::Kube(_) => {
                let CloneRefused::Kube(k) = e else {
                    unreachable!()
                };
                return BackupServiceError::Kube(k).into();
            }
            CloneRefused::NotFound(_) => return Problem::not_found(e.to_string()),
            CloneRefused::NotUsable { .. } => (
                StatusCode::CONFLICT,
                "backup-not-usable",
                "Backup not usable",
            ),
            CloneRefused::NoSiteUrl(_) => (
                StatusCode::CONFLICT,
                "backup-without-address",
                "Backup records no site address",
            ),
            CloneRefused::OtherEngine { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "backup-of-another-engine",
                "Backup of another engine",
            ),
        };
        Problem::new(status, slug, title, e.to_string())
    }
}

fn backup_id(raw: &str) -> Result<BackupId, Problem> {
    BackupId::parse(raw).map_err(|e| Problem::bad_request(e.to_string()))
}

/// The store, if the caller may see it (404 otherwise, as for `GET /stores/{id}`).
async fn visible_store(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<(StoreId, StoreView), Problem> {
    let id = StoreId::parse(raw)?;
    let view = state.stores.get(caller, &id).await?;
    Ok((id, view))
}

async fn audit(
    state: &AppState,
    caller: &Caller,
    store: &StoreView,
    outcome: &str,
    detail: String,
) {
    state
        .audit
        .record(AuditEntry {
            actor: caller.owner.to_string(),
            action: Action::Backup,
            store_id: Some(store.store_id.clone()),
            store_owner: Some(store.owner.clone()),
            outcome: outcome.into(),
            detail,
            remote_addr: caller.remote_addr.clone(),
        })
        .await;
}

/// Back a store up now: database and wp-content, encrypted, to the platform's target. Answers at
/// once; the backup's `state` goes Pending → Running → Succeeded (or Failed, with a `message`).
#[utoipa::path(
    post, path = "/stores/{store_id}/backups", tag = "backups",
    params(("store_id" = String, Path, example = "store-7016ff")),
    responses(
        (status = 202, description = "Asked for; the controller runs it", body = BackupView),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The store is being deleted (`store-deleting`), or this platform has no backup target (`backups-not-configured`)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn create_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
) -> Result<Response, Problem> {
    let (id, store) = visible_store(&state, &caller, &store_id).await?;
    if store.status == Phase::Deleting {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "store-deleting",
            "Store being deleted",
            format!("store {id} is being deleted; nothing to back up"),
        )
        .with_store(id.to_string()));
    }
    let b = state.backups.request(&id).await?;
    let view = BackupView::from(&b);
    audit(
        &state,
        &caller,
        &store,
        "requested",
        format!("backup {}", view.backup_id),
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// A store's backups, oldest first.
#[utoipa::path(
    get, path = "/stores/{store_id}/backups", tag = "backups",
    params(("store_id" = String, Path, example = "store-7016ff")),
    responses(
        (status = 200, description = "The store's backups", body = [BackupView]),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn list_backups(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
) -> Result<Json<Vec<BackupView>>, Problem> {
    let (id, _) = visible_store(&state, &caller, &store_id).await?;
    let list = state.backups.list(&id).await?;
    Ok(Json(list.iter().map(BackupView::from).collect()))
}

/// One backup of a store.
#[utoipa::path(
    get, path = "/stores/{store_id}/backups/{backup_id}", tag = "backups",
    params(("store_id" = String, Path, example = "store-7016ff"), ("backup_id" = String, Path, example = "backup-20261201-221500-3fa2c1")),
    responses(
        (status = 200, description = "The backup", body = BackupView),
        (status = 400, description = "Not a backup id", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's), or no such backup of it", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn get_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((store_id, backup)): ApiPath<(String, String)>,
) -> Result<Json<BackupView>, Problem> {
    let (id, _) = visible_store(&state, &caller, &store_id).await?;
    let backup = backup_id(&backup)?;
    Ok(Json(BackupView::from(
        &state.backups.get(&id, &backup).await?,
    )))
}

/// Delete a backup: its data on the target, then the record (a running backup's Job is stopped
/// first).
#[utoipa::path(
    delete, path = "/stores/{store_id}/backups/{backup_id}", tag = "backups",
    params(("store_id" = String, Path, example = "store-7016ff"), ("backup_id" = String, Path, example = "backup-20261201-221500-3fa2c1")),
    responses(
        (status = 202, description = "Being deleted", body = BackupView),
        (status = 400, description = "Not a backup id", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's), or no such backup of it", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn delete_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((store_id, backup)): ApiPath<(String, String)>,
) -> Result<Response, Problem> {
    let (id, store) = visible_store(&state, &caller, &store_id).await?;
    let backup = backup_id(&backup)?;
    let b = state.backups.delete(&id, &backup).await?;
    audit(
        &state,
        &caller,
        &store,
        "deleted",
        format!("backup {backup}"),
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(BackupView::from(&b))).into_response())
}

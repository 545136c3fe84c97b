//! `/stores/{store_id}/restore` and `/stores/{store_id}/restores`: restore a store in place from one
//! of its backups, and list its restores. Thin: visibility is the store's (`StoreService::get`), the
//! checks a caller should hear about at once are here or in `RestoreService`, the work is the
//! restore controller's (`crate::backups::restores`). A request is audited, with the store and its
//! owner.
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::problem::{Problem, ProblemBody};
use super::stores::json_object;
use super::{ApiPath, AppState};
use crate::backups::BackupId;
use crate::backups::restores::service::{RestoreServiceError, RestoreView};
use crate::crd::Phase;
use crate::domain::StoreId;
use crate::storage::{Action, AuditEntry};
use crate::stores::Caller;

/// Body of `POST /stores/{store_id}/restore`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestoreRequest {
    /// One of this store's backups, Succeeded.
    #[schema(example = "backup-20261201-221500-3fa2c1")]
    pub backup_id: String,
}

impl From<RestoreServiceError> for Problem {
    fn from(e: RestoreServiceError) -> Self {
        match e {
            RestoreServiceError::NotConfigured => Problem::new(
                StatusCode::CONFLICT,
                "backups-not-configured",
                "Backups not configured",
                e.to_string(),
            ),
            RestoreServiceError::BackupNotFound(_) => Problem::not_found(e.to_string()),
            RestoreServiceError::BackupNotUsable { .. } => Problem::new(
                StatusCode::CONFLICT,
                "backup-not-usable",
                "Backup not usable",
                e.to_string(),
            ),
            RestoreServiceError::InProgress(_) => Problem::new(
                StatusCode::CONFLICT,
                "restore-in-progress",
                "Restore in progress",
                e.to_string(),
            ),
            RestoreServiceError::Kube(e) => {
                tracing::warn!("restores: Kubernetes API: {e}");
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

/// Restore a store in place from one of its backups. Answers at once; the store shows `Restoring`
/// while a safety backup is taken, WordPress is stopped, the database and wp-content are replaced
/// and WordPress is started again; the restore's `state` ends `Succeeded`, or `Failed` with a
/// `message` that names the safety backup (a failed restore puts the safety backup back).
#[utoipa::path(
    post, path = "/stores/{store_id}/restore", tag = "backups",
    params(("store_id" = String, Path, example = "store-7016ff")),
    request_body(content = RestoreRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Asked for; the controller runs it", body = RestoreView),
        (status = 400, description = "Invalid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's), or no such backup of it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The store is being deleted (`store-deleting`) or not Ready (`store-not-ready`), a restore of it runs (`restore-in-progress`), the backup did not succeed (`backup-not-usable`), or this platform has no backup target (`backups-not-configured`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "No body, unknown fields, or `backupId` not a backup id", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn restore_store(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let id = StoreId::parse(&store_id)?;
    let bytes = body.map_err(Problem::from)?;
    let request: RestoreRequest = json_object(&headers, &bytes)?
        .ok_or_else(|| Problem::invalid("a JSON body with `backupId` is required"))?;
    let backup =
        BackupId::parse(&request.backup_id).map_err(|e| Problem::invalid(e.to_string()))?;
    let store = state.stores.get(&caller, &id).await?;
    let refuse = |kind: &'static str, title: &'static str, detail: String| {
        Err(Problem::new(StatusCode::CONFLICT, kind, title, detail).with_store(id.to_string()))
    };
    match store.status {
        Phase::Ready => {}
        Phase::Deleting => {
            return refuse(
                "store-deleting",
                "Store being deleted",
                format!("store {id} is being deleted; nothing to restore"),
            );
        }
        other => {
            return refuse(
                "store-not-ready",
                "Store not Ready",
                format!(
                    "store {id} is {}: only a Ready store is restored",
                    other.as_str()
                ),
            );
        }
    }
    let r = state.restores.request(&id, &backup).await?;
    let view = RestoreView::from(&r);
    state
        .audit
        .record(AuditEntry {
            actor: caller.owner.to_string(),
            action: Action::Restore,
            store_id: Some(store.store_id.clone()),
            store_owner: Some(store.owner.clone()),
            outcome: "requested".into(),
            detail: format!("restore {} from backup {backup}", view.restore_id),
            remote_addr: caller.remote_addr.clone(),
        })
        .await;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// A store's restores, oldest first.
#[utoipa::path(
    get, path = "/stores/{store_id}/restores", tag = "backups",
    params(("store_id" = String, Path, example = "store-7016ff")),
    responses(
        (status = 200, description = "The store's restores", body = [RestoreView]),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn list_restores(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
) -> Result<Json<Vec<RestoreView>>, Problem> {
    let id = StoreId::parse(&store_id)?;
    state.stores.get(&caller, &id).await?;
    let list = state.restores.list(&id).await?;
    Ok(Json(list.iter().map(RestoreView::from).collect()))
}

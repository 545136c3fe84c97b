//! Deleted stores that can still be brought back: the final backups (`safety_net`) of stores that
//! no longer exist, while retention keeps them. Their owner is read from the backup itself
//! (`ANNOTATION_OWNER`, written when it was asked for): the store that said so is gone.
use chrono::{DateTime, Utc};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use utoipa::ToSchema;

use super::controller::of_instance;
use super::kind::{BackupKind, LABEL_KIND};
use super::service::{ANNOTATION_OWNER, ANNOTATION_STORE_NAME, BackupView};
use super::types::{BackupPhase, StoreBackup};
use crate::crd::Store;
use crate::stores::Caller;

/// A deleted store, as its final backup remembers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedStore {
    #[schema(example = "store-7016ff")]
    pub store_id: String,
    /// Its display name (the store id when it had none).
    #[schema(example = "My Shop")]
    pub name: String,
    pub owner: String,
    /// When its final backup finished: the store was deleted just after.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Until when the backup is kept (`--backup-deleted-retention` after it finished).
    pub kept_until: Option<DateTime<Utc>>,
    /// Bring it back with `POST /stores {"from_backup": <its backup_id>}`.
    pub final_backup: BackupView,
}

/// The caller's deleted stores (every one for an admin), newest first.
pub async fn list(
    client: &Client,
    instance: &str,
    caller: &Caller,
    window: std::time::Duration,
) -> Result<Vec<DeletedStore>, kube::Error> {
    let finals = Api::<StoreBackup>::all(client.clone())
        .list(
            &ListParams::default().labels(&format!("{LABEL_KIND}={}", BackupKind::Final.as_str())),
        )
        .await?
        .items;
    let stores = Api::<Store>::all(client.clone());
    let mut out = Vec::new();
    for b in finals.iter().filter(|b| of_instance(*b, instance)) {
        let owner = b
            .annotations()
            .get(ANNOTATION_OWNER)
            .cloned()
            .unwrap_or_default();
        if b.phase() != Some(BackupPhase::Succeeded) || !caller.may_see(&owner) {
            continue;
        }
        if stores.get_opt(&b.spec.store_id).await?.is_some() {
            continue;
        }
        let view = BackupView::from(b);
        let kept_until = view
            .finished_at
            .and_then(|at| chrono::Duration::from_std(window).ok().map(|w| at + w));
        out.push(DeletedStore {
            store_id: b.spec.store_id.clone(),
            name: b
                .annotations()
                .get(ANNOTATION_STORE_NAME)
                .cloned()
                .unwrap_or_else(|| b.spec.store_id.clone()),
            owner,
            deleted_at: view.finished_at,
            kept_until,
            final_backup: view,
        });
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.deleted_at));
    Ok(out)
}

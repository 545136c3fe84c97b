//! The safety net on delete: with a backup target, `DELETE /stores/{id}` does not delete a Ready
//! store at once. It writes the id of a final backup on the store (an annotation: the decision is
//! recorded before anything else happens, so a control plane killed at any point picks it up),
//! asks for that backup, and this controller deletes the store only once the backup Succeeded. The
//! store shows `Deleting` meanwhile and takes no other change.
//!
//! - A final backup that fails **cancels** the deletion: the store stays as it was, with the reason
//!   on it (`ANNOTATION_FINAL_BACKUP_FAILED`, shown as its message), so nobody loses a shop because
//!   the object store was down. Deleting again retries; an admin may delete without a final backup
//!   (`?skip_final_backup=true`).
//! - A store that is not Ready (still provisioning, failed) has no database to dump consistently:
//!   it is deleted at once, and says so in the audit log; its earlier backups stay for the window.
//! - The final backup (and every other backup of the store) is kept for the platform's deleted
//!   window (`--backup-deleted-retention`, 7 days) after it finished, listed by
//!   `GET /deleted-stores`, and brought back with `POST /stores {"from_backup": ...}`.
use std::time::Duration;

use chrono::Utc;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use super::BackupId;
use super::kind::BackupKind;
use super::service::{BackupService, BackupServiceError};
use super::types::BackupPhase;
use crate::crd::{Phase, Store};
use crate::domain::StoreId;
use crate::storage::{Action, AuditEntry, AuditLog};

/// On a `Store`: delete it once this backup Succeeded.
pub const ANNOTATION_FINAL_BACKUP: &str = "storefleet.dev/final-backup";
/// On a `Store`: why its last deletion was cancelled (its final backup failed).
pub const ANNOTATION_FINAL_BACKUP_FAILED: &str = "storefleet.dev/final-backup-failed";

const PASS: Duration = Duration::from_secs(2);

/// The final backup the store's deletion waits for, if it was asked to go.
pub fn final_backup_of(store: &Store) -> Option<BackupId> {
    store
        .annotations()
        .get(ANNOTATION_FINAL_BACKUP)
        .and_then(|raw| BackupId::parse(raw).ok())
}

/// Why the store's last deletion was cancelled, if it was.
pub fn cancelled_because(store: &Store) -> Option<&str> {
    store
        .annotations()
        .get(ANNOTATION_FINAL_BACKUP_FAILED)
        .map(String::as_str)
}

/// What `DELETE /stores/{id}` does with a store.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteWith {
    /// Delete now: no backup target, an admin skipped the final backup, or the store is not Ready.
    NoFinalBackup(&'static str),
    /// Take this final backup first.
    FinalBackup(BackupId),
}

/// The API's decision for a store asked to go (not being deleted already).
pub fn decide(store: &Store, backups_offered: bool, skip: bool) -> DeleteWith {
    if !backups_offered {
        DeleteWith::NoFinalBackup("no backup target")
    } else if skip {
        DeleteWith::NoFinalBackup("final backup skipped by an admin")
    } else if store.phase() != Some(Phase::Ready) {
        DeleteWith::NoFinalBackup("no final backup: the store was not Ready")
    } else {
        DeleteWith::FinalBackup(BackupId::new(Utc::now()))
    }
}

/// Records the final backup on the store (only if its version is still `store`'s: a concurrent
/// second DELETE fails with 409 instead of asking for a second backup), then asks for it.
pub async fn begin(
    stores: &Api<Store>,
    backups: &BackupService,
    store: &Store,
    id: &StoreId,
    backup: &BackupId,
) -> Result<Store, BackupServiceError> {
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": store.resource_version(),
            "annotations": {
                ANNOTATION_FINAL_BACKUP: backup.as_str(),
                ANNOTATION_FINAL_BACKUP_FAILED: null,
            }
        }
    });
    let marked = stores
        .patch(id.as_str(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    backups.ensure(id, backup, BackupKind::Final).await?;
    Ok(marked)
}

/// The controller's side: for each store waiting for its final backup, make sure the backup was
/// asked for, then delete the store or cancel.
pub async fn run(client: Client, instance: String, backups: BackupService, audit: AuditLog) {
    let stores = Api::<Store>::all(client.clone());
    let backup_api = Api::<super::StoreBackup>::all(client);
    loop {
        match stores.list(&ListParams::default()).await {
            Ok(list) => {
                for store in list.items.iter().filter(|s| {
                    s.instance() == instance && !s.is_deleting() && final_backup_of(s).is_some()
                }) {
                    if let Err(e) = step(&stores, &backup_api, &backups, &audit, store).await {
                        tracing::warn!(store = %store.name_any(), "final backup: {e:#}");
                    }
                }
            }
            Err(e) => tracing::warn!("safety net: listing stores: {e}"),
        }
        tokio::time::sleep(PASS).await;
    }
}

async fn step(
    stores: &Api<Store>,
    backup_api: &Api<super::StoreBackup>,
    backups: &BackupService,
    audit: &AuditLog,
    store: &Store,
) -> anyhow::Result<()> {
    let Some(backup) = final_backup_of(store) else {
        return Ok(());
    };
    let id = StoreId::parse(&store.name_any())?;
    let b = match backup_api.get_opt(backup.as_str()).await? {
        Some(b) => b,
        // The API was stopped between recording the id and asking for the backup.
        None => backups.ensure(&id, &backup, BackupKind::Final).await?,
    };
    let entry = |outcome: &str, detail: String| AuditEntry {
        actor: "controller".into(),
        action: Action::Delete,
        store_id: Some(id.to_string()),
        store_owner: Some(store.spec.owner.clone()),
        outcome: outcome.into(),
        detail,
        remote_addr: None,
    };
    match b.phase() {
        Some(BackupPhase::Succeeded) => {
            // Foreground, as the API deletes: the namespace goes while the finalizer holds the
            // Store. Only if the store is still the one that was asked to go.
            let params = DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: store.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::foreground()
            };
            match stores.delete(id.as_str(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            tracing::info!(store = %id, backup = %backup, "final backup taken; deleting the store");
            audit
                .record(entry(
                    "final-backup-taken",
                    format!("deleting after final backup {backup}"),
                ))
                .await;
        }
        Some(BackupPhase::Failed) => {
            let why = b
                .status
                .as_ref()
                .and_then(|s| s.message.clone())
                .unwrap_or_else(|| "no reason given".into());
            let message = format!(
                "not deleted: its final backup {backup} failed ({why}); delete again to retry, or an admin can delete it without a final backup"
            );
            let patch = serde_json::json!({
                "metadata": {
                    "resourceVersion": store.resource_version(),
                    "annotations": {
                        ANNOTATION_FINAL_BACKUP: null,
                        ANNOTATION_FINAL_BACKUP_FAILED: message,
                    }
                }
            });
            stores
                .patch(id.as_str(), &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::warn!(store = %id, backup = %backup, "final backup failed; deletion cancelled");
            audit.record(entry("delete-cancelled", message)).await;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{StoreSpec, StoreStatus};

    fn store(phase: Option<Phase>) -> Store {
        let mut s = Store::new(
            "store-000001",
            StoreSpec {
                name: None,
                engine: Default::default(),
                owner: "alice".into(),
                plan: None,
                release: None,
                domains: vec![],
                identity_generation: 0,
            },
        );
        s.status = Some(StoreStatus {
            phase,
            ..Default::default()
        });
        s
    }

    #[test]
    fn only_a_ready_store_on_a_platform_with_backups_waits_for_a_final_backup() {
        let ready = store(Some(Phase::Ready));
        assert!(matches!(
            decide(&ready, true, false),
            DeleteWith::FinalBackup(_)
        ));
        assert_eq!(
            decide(&ready, false, false),
            DeleteWith::NoFinalBackup("no backup target")
        );
        assert_eq!(
            decide(&ready, true, true),
            DeleteWith::NoFinalBackup("final backup skipped by an admin")
        );
        for phase in [None, Some(Phase::Provisioning), Some(Phase::Failed)] {
            assert!(matches!(
                decide(&store(phase), true, false),
                DeleteWith::NoFinalBackup(_)
            ));
        }
    }

    #[test]
    fn the_annotation_is_read_back_only_as_a_backup_id() {
        let mut s = store(Some(Phase::Ready));
        assert_eq!(final_backup_of(&s), None);
        s.annotations_mut()
            .insert(ANNOTATION_FINAL_BACKUP.into(), "not-an-id".into());
        assert_eq!(final_backup_of(&s), None);
        s.annotations_mut().insert(
            ANNOTATION_FINAL_BACKUP.into(),
            "backup-20261202-030000-abcdef".into(),
        );
        assert_eq!(
            final_backup_of(&s).map(|b| b.to_string()),
            Some("backup-20261202-030000-abcdef".into())
        );
    }
}

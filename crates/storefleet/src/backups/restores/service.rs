//! The API's side of restores: ask for one (after the checks a caller should hear about at once,
//! as a 4xx), list a store's. A restore is a `StoreRestore` object; the controller does the work.
//! Who may see the store is decided before (by `StoreService`), exactly as for the store itself.
use chrono::{DateTime, Utc};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use utoipa::ToSchema;

use super::RestoreId;
use super::types::{StoreRestore, StoreRestoreSpec};
use crate::backups::BackupId;
use crate::backups::controller::of_instance;
use crate::backups::types::{BackupPhase, StoreBackup};
use crate::crd::{LABEL_INSTANCE, LABEL_STORE_ID};
use crate::domain::StoreId;
use crate::stores::to_chrono;

#[derive(Debug, thiserror::Error)]
pub enum RestoreServiceError {
    #[error("this platform has no backup target configured (docs/backups.md)")]
    NotConfigured,
    #[error("backup {0} not found")]
    BackupNotFound(String),
    #[error("backup {backup} is {state}: only a Succeeded backup can be restored")]
    BackupNotUsable { backup: String, state: String },
    #[error("restore {0} of this store is not finished; one restore at a time")]
    InProgress(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// One restore as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreView {
    #[schema(example = "restore-20261201-231500-9b1e07")]
    pub restore_id: String,
    #[schema(example = "store-7016ff")]
    pub store_id: String,
    #[schema(example = "backup-20261201-221500-3fa2c1")]
    pub backup_id: String,
    /// Pending, BackingUp, Stopping, Restoring, RollingBack, MovingUrls (a clone), Starting,
    /// Succeeded or Failed.
    #[schema(example = "Succeeded")]
    pub state: String,
    /// What it waits for, or why it failed (naming the safety backup).
    pub message: Option<String>,
    /// The backup taken before anything was changed.
    pub safety_backup: Option<String>,
    /// A clone's restore: the store the backup is of.
    #[schema(example = json!(null))]
    pub source_store_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&StoreRestore> for RestoreView {
    fn from(r: &StoreRestore) -> Self {
        let st = r.status.clone().unwrap_or_default();
        Self {
            restore_id: r.name_any(),
            store_id: r.spec.store_id.clone(),
            backup_id: r.spec.backup_id.clone(),
            state: r.phase().as_str().to_owned(),
            message: st.message,
            safety_backup: st.safety_backup,
            source_store_id: r.spec.source_store_id.clone(),
            created_at: r.metadata.creation_timestamp.as_ref().and_then(to_chrono),
            started_at: st.started_at.as_ref().and_then(to_chrono),
            finished_at: st.finished_at.as_ref().and_then(to_chrono),
        }
    }
}

pub struct RestoreService {
    restores: Api<StoreRestore>,
    backups: Api<StoreBackup>,
    instance: String,
    enabled: bool,
}

impl RestoreService {
    pub fn new(client: Client, instance: String, enabled: bool) -> Self {
        Self {
            restores: Api::all(client.clone()),
            backups: Api::all(client),
            instance,
            enabled,
        }
    }

    /// A restore of `store` (which the caller may see, and which is Ready) from its `backup`.
    pub async fn request(
        &self,
        store: &StoreId,
        backup: &BackupId,
    ) -> Result<StoreRestore, RestoreServiceError> {
        if !self.enabled {
            return Err(RestoreServiceError::NotConfigured);
        }
        // Another store's (or instance's) backup is not found, as a missing one.
        let b = match self.backups.get_opt(backup.as_str()).await? {
            Some(b) if b.spec.store_id == store.as_str() && of_instance(&b, &self.instance) => b,
            _ => return Err(RestoreServiceError::BackupNotFound(backup.to_string())),
        };
        if b.phase() != Some(BackupPhase::Succeeded) {
            return Err(RestoreServiceError::BackupNotUsable {
                backup: backup.to_string(),
                state: b.phase().map_or("Pending", BackupPhase::as_str).to_owned(),
            });
        }
        if let Some(running) = self
            .list(store)
            .await?
            .into_iter()
            .find(|r| !r.phase().is_finished())
        {
            return Err(RestoreServiceError::InProgress(running.name_any()));
        }
        let id = RestoreId::new(Utc::now());
        let mut r = StoreRestore::new(
            id.as_str(),
            StoreRestoreSpec {
                store_id: store.to_string(),
                backup_id: backup.to_string(),
                source_store_id: None,
                source_url: None,
            },
        );
        r.labels_mut()
            .insert(LABEL_INSTANCE.into(), self.instance.clone());
        r.labels_mut()
            .insert(LABEL_STORE_ID.into(), store.to_string());
        Ok(self.restores.create(&PostParams::default(), &r).await?)
    }

    /// The store's restores, oldest first (ids sort by time).
    pub async fn list(&self, store: &StoreId) -> Result<Vec<StoreRestore>, RestoreServiceError> {
        let params = ListParams::default().labels(&format!(
            "{LABEL_INSTANCE}={},{LABEL_STORE_ID}={store}",
            self.instance
        ));
        let mut items = self.restores.list(&params).await?.items;
        items.retain(|r| r.spec.store_id == store.as_str());
        items.sort_by_key(|r| r.name_any());
        Ok(items)
    }
}

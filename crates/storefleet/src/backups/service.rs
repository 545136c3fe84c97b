//! The API's side of backups: ask for one, list a store's, read one, delete one. A backup is a
//! `StoreBackup` object; this only creates, reads and deletes those (the controller does the work).
//! Who may see the store is decided before (by `StoreService`), exactly as for the store itself.
use chrono::{DateTime, Utc};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use utoipa::ToSchema;

use super::BackupId;
use super::types::{StoreBackup, StoreBackupSpec};
use crate::crd::{LABEL_INSTANCE, LABEL_STORE_ID};
use crate::domain::StoreId;
use crate::stores::to_chrono;

#[derive(Debug, thiserror::Error)]
pub enum BackupServiceError {
    #[error("this platform has no backup target configured (docs/backups.md)")]
    NotConfigured,
    #[error("backup {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// One backup as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupView {
    #[schema(example = "backup-20261201-221500-3fa2c1")]
    pub backup_id: String,
    #[schema(example = "store-7016ff")]
    pub store_id: String,
    /// Pending, Running, Succeeded or Failed.
    #[schema(example = "Succeeded")]
    pub state: String,
    /// Why it failed, or what it waits for.
    pub message: Option<String>,
    /// As stored (compressed, encrypted), for people.
    #[schema(example = "12.3 MiB")]
    pub size: Option<String>,
    pub stored_bytes: Option<u64>,
    /// The database dump's size before compression.
    pub database_bytes: Option<u64>,
    /// The wp-content tar's size before compression.
    pub files_bytes: Option<u64>,
    pub created_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&StoreBackup> for BackupView {
    fn from(b: &StoreBackup) -> Self {
        let st = b.status.clone().unwrap_or_default();
        Self {
            backup_id: b.name_any(),
            store_id: b.spec.store_id.clone(),
            state: st.phase.map_or("Pending", |p| p.as_str()).to_owned(),
            message: st.message,
            size: st.size,
            stored_bytes: st.stored_bytes,
            database_bytes: st.database_bytes,
            files_bytes: st.files_bytes,
            created_at: b.metadata.creation_timestamp.as_ref().and_then(to_chrono),
            started_at: st.started_at.as_ref().and_then(to_chrono),
            finished_at: st.finished_at.as_ref().and_then(to_chrono),
        }
    }
}

pub struct BackupService {
    api: Api<StoreBackup>,
    instance: String,
    enabled: bool,
}

impl BackupService {
    pub fn new(client: Client, instance: String, enabled: bool) -> Self {
        Self {
            api: Api::all(client),
            instance,
            enabled,
        }
    }

    /// A new backup of `store` (which the caller may see). The id is its start time and 24 random
    /// bits: the object's name, the Job's and the target folder's.
    pub async fn request(&self, store: &StoreId) -> Result<StoreBackup, BackupServiceError> {
        if !self.enabled {
            return Err(BackupServiceError::NotConfigured);
        }
        self.create(store, &BackupId::new(Utc::now()), None).await
    }

    /// The backup `id` of `store`, made now if it does not exist yet. For a caller that recorded
    /// the id before asking (the rollouts' pre-upgrade backup): a control plane killed between the
    /// two makes it after its restart, and never a second one.
    pub async fn ensure(
        &self,
        store: &StoreId,
        id: &BackupId,
    ) -> Result<StoreBackup, BackupServiceError> {
        if !self.enabled {
            return Err(BackupServiceError::NotConfigured);
        }
        self.get_or_create(store, id, None).await
    }

    /// As [`Self::ensure`], the backup also carrying `label` (a restore's safety backup).
    pub async fn ensure_labelled(
        &self,
        store: &StoreId,
        id: &BackupId,
        label: (&str, &str),
    ) -> Result<StoreBackup, BackupServiceError> {
        if !self.enabled {
            return Err(BackupServiceError::NotConfigured);
        }
        self.get_or_create(store, id, Some(label)).await
    }

    async fn get_or_create(
        &self,
        store: &StoreId,
        id: &BackupId,
        label: Option<(&str, &str)>,
    ) -> Result<StoreBackup, BackupServiceError> {
        if let Some(b) = self.api.get_opt(id.as_str()).await? {
            return Ok(b);
        }
        match self.create(store, id, label).await {
            // Made between the read and the create (another term of this controller).
            Err(BackupServiceError::Kube(kube::Error::Api(e))) if e.code == 409 => {
                Ok(self.api.get(id.as_str()).await?)
            }
            other => other,
        }
    }

    async fn create(
        &self,
        store: &StoreId,
        id: &BackupId,
        label: Option<(&str, &str)>,
    ) -> Result<StoreBackup, BackupServiceError> {
        let mut b = StoreBackup::new(
            id.as_str(),
            StoreBackupSpec {
                store_id: store.to_string(),
            },
        );
        b.labels_mut()
            .insert(LABEL_INSTANCE.into(), self.instance.clone());
        b.labels_mut()
            .insert(LABEL_STORE_ID.into(), store.to_string());
        if let Some((k, v)) = label {
            b.labels_mut().insert(k.into(), v.into());
        }
        Ok(self.api.create(&PostParams::default(), &b).await?)
    }

    /// The store's backups, oldest first (ids sort by time).
    pub async fn list(&self, store: &StoreId) -> Result<Vec<StoreBackup>, BackupServiceError> {
        let params = ListParams::default().labels(&format!(
            "{LABEL_INSTANCE}={},{LABEL_STORE_ID}={store}",
            self.instance
        ));
        let mut items = self.api.list(&params).await?.items;
        items.retain(|b| b.spec.store_id == store.as_str());
        items.sort_by_key(|b| b.name_any());
        Ok(items)
    }

    /// One backup of the store: another store's (or instance's) is not found, as a missing one.
    pub async fn get(
        &self,
        store: &StoreId,
        backup: &BackupId,
    ) -> Result<StoreBackup, BackupServiceError> {
        match self.api.get_opt(backup.as_str()).await? {
            Some(b)
                if b.spec.store_id == store.as_str()
                    && super::controller::of_instance(&b, &self.instance) =>
            {
                Ok(b)
            }
            _ => Err(BackupServiceError::NotFound(backup.to_string())),
        }
    }

    /// Deletes the object; its finalizer (the controller) deletes the data first.
    pub async fn delete(
        &self,
        store: &StoreId,
        backup: &BackupId,
    ) -> Result<StoreBackup, BackupServiceError> {
        let b = self.get(store, backup).await?;
        self.api
            .delete(backup.as_str(), &DeleteParams::default())
            .await?;
        Ok(b)
    }
}

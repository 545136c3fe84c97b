//! The API's side of backups: ask for one, list a store's, read one, delete one. A backup is a
//! `StoreBackup` object; this only creates, reads and deletes those (the controller does the work).
//! Who may see the store is decided before (by `StoreService`), exactly as for the store itself.
use chrono::{DateTime, Utc};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use utoipa::ToSchema;

use super::BackupId;
use super::kind::{BackupKind, LABEL_KIND};
use super::types::{StoreBackup, StoreBackupSpec};
use crate::crd::{LABEL_INSTANCE, LABEL_STORE_ID, Store};
use crate::domain::StoreId;
use crate::stores::to_chrono;

/// On a backup: its store's owner, as the store's `spec.owner` (labels cannot hold every owner).
pub const ANNOTATION_OWNER: &str = "storefleet.dev/owner";
/// On a backup: its store's display name, when it has one.
pub const ANNOTATION_STORE_NAME: &str = "storefleet.dev/store-name";

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
    /// Why it was taken: `manual`, `scheduled`, `pre-upgrade`, `safety` (before a restore) or
    /// `final` (before the store was deleted). It decides how long the backup is kept.
    pub kind: BackupKind,
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
            kind: BackupKind::of(b),
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
    stores: Api<Store>,
    instance: String,
    enabled: bool,
}

impl BackupService {
    pub fn new(client: Client, instance: String, enabled: bool) -> Self {
        Self {
            api: Api::all(client.clone()),
            stores: Api::all(client),
            instance,
            enabled,
        }
    }

    /// Deleted stores the caller may bring back (`GET /deleted-stores`).
    pub async fn deleted_stores(
        &self,
        caller: &crate::stores::Caller,
        window: std::time::Duration,
    ) -> Result<Vec<super::deleted::DeletedStore>, BackupServiceError> {
        if !self.enabled {
            return Err(BackupServiceError::NotConfigured);
        }
        Ok(super::deleted::list(
            &self.api.clone().into_client(),
            &self.instance,
            caller,
            window,
        )
        .await?)
    }

    /// What `POST /stores` with `from_backup` clones, if the caller may (`backups/clones`).
    pub async fn clone_source(
        &self,
        caller: &crate::stores::Caller,
        backup: &BackupId,
        engine: crate::domain::Engine,
    ) -> Result<super::clones::CloneSource, super::clones::CloneRefused> {
        if !self.enabled {
            return Err(super::clones::CloneRefused::NotConfigured);
        }
        super::clones::resolve(&self.api, &self.instance, caller, backup, engine).await
    }

    /// Whether the platform has a backup target (and so takes backups at all).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A new backup of `store` (which the caller may see). The id is its start time and 24 random
    /// bits: the object's name, the Job's and the target folder's.
    pub async fn request(&self, store: &StoreId) -> Result<StoreBackup, BackupServiceError> {
        if !self.enabled {
            return Err(BackupServiceError::NotConfigured);
        }
        self.create(store, &BackupId::new(Utc::now()), BackupKind::Manual, None)
            .await
    }

    /// The backup `id` of `store`, made now if it does not exist yet. For a caller that recorded
    /// the id before asking (the rollouts' pre-upgrade backup, a scheduled slot's, a delete's final
    /// one): a control plane killed between the two makes it after its restart, never a second one.
    pub async fn ensure(
        &self,
        store: &StoreId,
        id: &BackupId,
        kind: BackupKind,
    ) -> Result<StoreBackup, BackupServiceError> {
        if !self.enabled {
            return Err(BackupServiceError::NotConfigured);
        }
        self.get_or_create(store, id, kind, None).await
    }

    /// A restore's safety backup: as [`Self::ensure`], the backup also carrying `label` (the
    /// restore it is for).
    pub async fn ensure_safety(
        &self,
        store: &StoreId,
        id: &BackupId,
        label: (&str, &str),
    ) -> Result<StoreBackup, BackupServiceError> {
        if !self.enabled {
            return Err(BackupServiceError::NotConfigured);
        }
        self.get_or_create(store, id, BackupKind::Safety, Some(label))
            .await
    }

    async fn get_or_create(
        &self,
        store: &StoreId,
        id: &BackupId,
        kind: BackupKind,
        label: Option<(&str, &str)>,
    ) -> Result<StoreBackup, BackupServiceError> {
        if let Some(b) = self.api.get_opt(id.as_str()).await? {
            return Ok(b);
        }
        match self.create(store, id, kind, label).await {
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
        kind: BackupKind,
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
        b.labels_mut()
            .insert(LABEL_KIND.into(), kind.as_str().into());
        if let Some((k, v)) = label {
            b.labels_mut().insert(k.into(), v.into());
        }
        // Who owns the store and what it is called, kept on the backup: once the store is gone,
        // this is how its owner (and nobody else) finds its backups and brings it back.
        if let Some(s) = self.stores.get_opt(store.as_str()).await? {
            b.annotations_mut()
                .insert(ANNOTATION_OWNER.into(), s.spec.owner.clone());
            if let Some(name) = &s.spec.name {
                b.annotations_mut()
                    .insert(ANNOTATION_STORE_NAME.into(), name.clone());
            }
            // What a clone of this backup needs to know without the store: its engine, and the
            // address its URLs name.
            b.annotations_mut().insert(
                super::clones::ANNOTATION_ENGINE.into(),
                s.spec.engine.as_str().into(),
            );
            if let Some(url) = s.status.as_ref().and_then(|st| st.url.clone()) {
                b.annotations_mut()
                    .insert(super::clones::ANNOTATION_SITE_URL.into(), url);
            }
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

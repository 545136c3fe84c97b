//! Where backups are kept: a folder on a volume (the zero-setup default) or an S3-compatible bucket,
//! both through `object_store`, which gives streaming multipart uploads and streaming downloads.
//!
//! Layout, one folder per backup, so a backup is listed, copied or deleted as a unit:
//!
//! ```text
//! <prefix>/<store-id>/<backup-id>/manifest.json
//! <prefix>/<store-id>/<backup-id>/database.sql.zst.enc
//! <prefix>/<store-id>/<backup-id>/files.tar.zst.enc
//! ```
//!
//! The manifest is written last: a folder without one is an unfinished backup, never restored.
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart,
};
use tokio::io::AsyncRead;

use super::manifest::PartName;
use super::{BackupError, BackupId};
use crate::domain::StoreId;

/// S3 wants parts of at least 5 MiB (except the last); this is also the upload's memory unit.
const UPLOAD_PART: usize = 5 * 1024 * 1024;
/// Parts uploading at once. Memory held by an upload is at most `(this + 1) * UPLOAD_PART`.
const UPLOADS_IN_FLIGHT: usize = 2;

/// The storage a platform keeps its backups in.
#[derive(Clone, Debug)]
pub enum Target {
    /// A directory, typically a PersistentVolume mounted into the control plane and the backup Jobs.
    Filesystem {
        root: PathBuf,
    },
    S3(S3Target),
}

/// An S3-compatible bucket (AWS, MinIO, Ceph RGW, Garage, a cloud provider's object storage).
#[derive(Clone, Debug)]
pub struct S3Target {
    /// `https://s3.example.net`; unset: AWS's endpoint for `region`.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`: what most
    /// self-hosted servers (MinIO, Garage) expect.
    pub path_style: bool,
    /// Plain HTTP to the endpoint (an in-cluster MinIO); parts are encrypted before they leave anyway.
    pub allow_http: bool,
    /// Unset: the usual AWS sources (environment, web identity, instance metadata).
    pub credentials: Option<S3Credentials>,
}

#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A [`Target`] opened, with the prefix every backup lives under.
#[derive(Clone, Debug)]
pub struct BackupStore {
    objects: Arc<dyn ObjectStore>,
    prefix: Path,
}

fn storage(what: impl Into<String>) -> impl FnOnce(object_store::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Storage { what, source }
}

impl BackupStore {
    /// `prefix` is a `/`-separated path inside the target (`backups`, `prod/backups`; empty: the root).
    pub fn open(target: &Target, prefix: &str) -> Result<Self, BackupError> {
        let objects: Arc<dyn ObjectStore> = match target {
            Target::Filesystem { root } => {
                std::fs::create_dir_all(root).map_err(|e| BackupError::Io {
                    what: format!("creating the backup folder {}", root.display()),
                    source: e,
                })?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(root)
                        .map_err(storage(format!("opening {}", root.display())))?
                        // An aborted upload leaves no empty folders behind.
                        .with_automatic_cleanup(true),
                )
            }
            Target::S3(s3) => {
                let mut b = AmazonS3Builder::from_env()
                    // Bounded: an unreachable server must end a backup as Failed with the reason
                    // within seconds, not after object_store's default of three minutes of retries
                    // (the next scheduled backup tries again).
                    .with_retry(RetryConfig {
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(20),
                        backoff: BackoffConfig::default(),
                    })
                    .with_client_options(
                        ClientOptions::new().with_connect_timeout(Duration::from_secs(5)),
                    )
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(!s3.path_style)
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    b = b.with_endpoint(endpoint);
                }
                if let Some(c) = &s3.credentials {
                    b = b
                        .with_access_key_id(&c.access_key_id)
                        .with_secret_access_key(&c.secret_access_key);
                }
                Arc::new(
                    b.build()
                        .map_err(storage(format!("configuring the S3 bucket {}", s3.bucket)))?,
                )
            }
        };
        Self::with_objects(objects, prefix)
    }

    /// Over any `object_store` (tests use its in-memory one).
    pub fn with_objects(objects: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self, BackupError> {
        let prefix = Path::parse(prefix).map_err(|e| BackupError::InvalidPrefix(e.to_string()))?;
        Ok(Self { objects, prefix })
    }

    fn backup_folder(&self, store: &StoreId, backup: &BackupId) -> Path {
        self.prefix
            .clone()
            .join(store.as_str())
            .join(backup.as_str())
    }

    pub fn manifest_path(&self, store: &StoreId, backup: &BackupId) -> Path {
        self.backup_folder(store, backup).join("manifest.json")
    }

    pub fn part_path(&self, store: &StoreId, backup: &BackupId, part: PartName) -> Path {
        self.backup_folder(store, backup).join(part.object_name())
    }

    /// Writes a small object at once (the manifest).
    pub async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<(), BackupError> {
        self.objects
            .put(path, Bytes::from(bytes).into())
            .await
            .map(drop)
            .map_err(storage(format!("writing {path}")))
    }

    /// Reads a small object at once (the manifest); `None` if there is none.
    pub async fn get_small(&self, path: &Path) -> Result<Option<Bytes>, BackupError> {
        match self.objects.get(path).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(storage(format!("reading {path}"))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage(format!("reading {path}"))(e)),
        }
    }

    /// The object's size, or `None` if there is none.
    pub async fn size(&self, path: &Path) -> Result<Option<u64>, BackupError> {
        match self.objects.head(path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage(format!("looking up {path}"))(e)),
        }
    }

    /// Streams an object; `None` if there is none.
    pub async fn download(
        &self,
        path: &Path,
    ) -> Result<Option<impl AsyncRead + Send + Unpin + 'static>, BackupError> {
        match self.objects.get(path).await {
            Ok(r) => {
                let what = format!("reading {path}");
                let stream = r
                    .into_stream()
                    .map_err(move |e| std::io::Error::other(format!("{what}: {e}")));
                Ok(Some(tokio_util::io::StreamReader::new(stream)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage(format!("reading {path}"))(e)),
        }
    }

    /// Starts a streaming upload; nothing is visible at `path` until [`Upload::finish`].
    pub async fn upload(&self, path: &Path) -> Result<Upload, BackupError> {
        let multipart = self
            .objects
            .put_multipart(path)
            .await
            .map_err(storage(format!("starting the upload of {path}")))?;
        Ok(Upload {
            writer: WriteMultipart::new_with_chunk_size(multipart, UPLOAD_PART),
            path: path.clone(),
        })
    }

    /// The backups of a store that have a manifest, oldest first.
    pub async fn list(&self, store: &StoreId) -> Result<Vec<BackupId>, BackupError> {
        let folder = self.prefix.clone().join(store.as_str());
        let listing = self
            .objects
            .list_with_delimiter(Some(&folder))
            .await
            .map_err(storage(format!("listing {folder}")))?;
        let mut ids = Vec::new();
        for dir in listing.common_prefixes {
            // Foreign folders are skipped, not errors: the bucket may be shared.
            let Some(Ok(id)) = dir.filename().map(BackupId::parse) else {
                continue;
            };
            if self.size(&self.manifest_path(store, &id)).await?.is_some() {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

impl BackupStore {
    /// Deletes every object of one backup (its parts, its manifest, or what an unfinished backup
    /// left); the manifest goes first, so a backup interrupted while being deleted is never listed
    /// as complete again. Deleting what is not there is not an error.
    pub async fn delete_backup(
        &self,
        store: &StoreId,
        backup: &BackupId,
    ) -> Result<(), BackupError> {
        let manifest = self.manifest_path(store, backup);
        match self.objects.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage(format!("deleting {manifest}"))(e)),
        }
        let folder = self.backup_folder(store, backup);
        let objects: Vec<_> = self
            .objects
            .list(Some(&folder))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(storage(format!("listing {folder}")))?;
        for path in objects {
            match self.objects.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage(format!("deleting {path}"))(e)),
            }
        }
        Ok(())
    }
}

/// A streaming upload with back-pressure: [`Upload::write`] waits while
/// `UPLOADS_IN_FLIGHT` parts are on their way, so memory stays bounded however large the object.
pub struct Upload {
    writer: WriteMultipart,
    path: Path,
}

impl Upload {
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.writer
            .wait_for_capacity(UPLOADS_IN_FLIGHT)
            .await
            .map_err(storage(format!("uploading {}", self.path)))?;
        self.writer.write(bytes);
        Ok(())
    }

    pub async fn finish(self) -> Result<(), BackupError> {
        let Self { writer, path } = self;
        writer
            .finish()
            .await
            .map(drop)
            .map_err(storage(format!("completing the upload of {path}")))
    }

    /// Drops what was uploaded so far (a failed backup leaves no partial part behind).
    pub async fn abort(self) {
        let Self { writer, path } = self;
        if let Err(e) = writer.abort().await {
            tracing::warn!("aborting the upload of {path}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_prefix_store_backup_object() {
        let store = BackupStore::with_objects(
            Arc::new(object_store::memory::InMemory::new()),
            "prod/backups",
        )
        .unwrap();
        let s = StoreId::parse("store-00aa11").unwrap();
        let b = BackupId::parse("backup-20260102-030405-abcdef").unwrap();
        assert_eq!(
            store.manifest_path(&s, &b).as_ref(),
            "prod/backups/store-00aa11/backup-20260102-030405-abcdef/manifest.json"
        );
        assert_eq!(
            store.part_path(&s, &b, PartName::Database).as_ref(),
            "prod/backups/store-00aa11/backup-20260102-030405-abcdef/database.sql.zst.enc"
        );
    }

    #[test]
    fn prefixes_are_parsed() {
        let mem = || Arc::new(object_store::memory::InMemory::new());
        assert!(BackupStore::with_objects(mem(), "").is_ok());
        assert!(BackupStore::with_objects(mem(), "a/../b").is_err());
        assert!(BackupStore::with_objects(mem(), "a//b").is_err());
    }

    #[test]
    fn credentials_never_print_the_secret() {
        let c = S3Credentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "very-secret".into(),
        };
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[tokio::test]
    async fn listing_shows_only_finished_backups_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = BackupStore::open(
            &Target::Filesystem {
                root: dir.path().join("backups"),
            },
            "",
        )
        .unwrap();
        let s = StoreId::parse("store-00aa11").unwrap();
        let old = BackupId::parse("backup-20260102-030405-abcdef").unwrap();
        let new = BackupId::parse("backup-20260103-030405-000000").unwrap();
        let unfinished = BackupId::parse("backup-20260104-030405-000000").unwrap();
        for id in [&new, &old] {
            store
                .put(&store.manifest_path(&s, id), b"{}".to_vec())
                .await
                .unwrap();
        }
        store
            .put(
                &store.part_path(&s, &unfinished, PartName::Database),
                b"x".to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(store.list(&s).await.unwrap(), vec![old, new]);
    }
}

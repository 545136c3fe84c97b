//! A restore run. Order matters, so that a refused or failed restore changes as little as possible:
//! 1. the manifest's seal and the whole backup ([`crate::backups::verify`]: every part present, of its
//!    size and SHA-256, every chunk authentic): any doubt, and nothing is touched;
//! 2. `wp-content` unpacked into a sibling folder (the live one untouched);
//! 3. the dump fed into `mariadb` (the one step that changes the store before it is whole: it runs
//!    only on a verified backup, and each chunk is authenticated again before it is passed on);
//! 4. the folders swapped by renames.
use anyhow::Context;

use super::AgentArgs;
use crate::backups::{PartName, open_manifest, read_part, verify};

/// How a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Before anything of the store was changed (the backup's checks, its files unpacked beside
    /// the live ones): the store is exactly as it was, nothing needs to be put back.
    #[error("refused, nothing was changed: {0:#}")]
    Refused(anyhow::Error),
    /// While or after the database was being replaced: the store may be partly restored.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

pub async fn run(args: &AgentArgs) -> Result<String, RestoreError> {
    let staging = refusable(args).await.map_err(RestoreError::Refused)?;
    let (staging, manifest, backup_id, source) = staging;
    let settings = args.target.settings().map_err(RestoreError::Failed)?;
    let (store, key) = (&settings.store, &*settings.key);
    args.database
        .import(|stdin| read_part(store, key, &manifest, PartName::Database, stdin))
        .await
        .context("restoring the database (wp-content is unchanged)")
        .map_err(RestoreError::Failed)?;
    staging.swap().map_err(RestoreError::Failed)?;
    Ok(format!(
        "restored backup {backup_id} of store {source} into store {} (taken {})",
        args.store_id, manifest.started_at
    ))
}

/// Steps 1 and 2: everything that can go wrong before the store is touched.
async fn refusable(
    args: &AgentArgs,
) -> anyhow::Result<(
    super::files::Staging,
    crate::backups::Manifest,
    crate::backups::BackupId,
    crate::domain::StoreId,
)> {
    let backup_id = args
        .backup_id
        .clone()
        .context("a restore needs --backup-id (STOREFLEET_BACKUP_ID)")?;
    let settings = args.target.settings()?;
    let (store, key) = (&settings.store, &*settings.key);
    // A clone restores another store's backup into this one: the backup is read as that store's.
    let source = args.source_store_id.as_ref().unwrap_or(&args.store_id);
    let refused = || format!("refusing to restore backup {backup_id} of store {source}");
    let manifest = open_manifest(store, key, source, &backup_id)
        .await
        .with_context(refused)?;
    verify(store, key, &manifest).await.with_context(refused)?;

    let staging = super::files::Staging::beside(&args.wp_content)?;
    staging
        .unpack(|pipe| read_part(store, key, &manifest, PartName::Files, pipe))
        .await
        .context("restoring wp-content (the live files are unchanged)")?;
    Ok((staging, manifest, backup_id, source.clone()))
}

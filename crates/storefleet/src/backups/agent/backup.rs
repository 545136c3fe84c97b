//! A backup run: the database dump, then `wp-content`, then the manifest, which is what makes the
//! backup exist. If anything fails, whatever was written of this backup is deleted again, so the
//! target holds either a whole, sealed backup or nothing under its id.
use anyhow::{Context, bail};
use chrono::Utc;

use super::AgentArgs;
use crate::backups::{BackupId, BackupWriter, Manifest, PartName};
use crate::domain::Engine;

pub async fn run(args: &AgentArgs, engine: Engine) -> anyhow::Result<Manifest> {
    let settings = args.target.settings()?;
    let (store, key) = (&settings.store, &*settings.key);
    let backup_id = args
        .backup_id
        .clone()
        .unwrap_or_else(|| BackupId::new(Utc::now()));
    // A Job run again (a retried pod) must never overwrite a backup that already finished.
    if store
        .size(&store.manifest_path(&args.store_id, &backup_id))
        .await?
        .is_some()
    {
        bail!(
            "backup {backup_id} of store {} already exists; refusing to overwrite it",
            args.store_id
        );
    }
    let mut writer = BackupWriter::begin_as(
        store,
        key,
        args.store_id.clone(),
        backup_id.clone(),
        engine,
        args.chart_version.clone(),
    );
    let written = async {
        let dump = args.database.dump()?;
        writer
            .write_part(PartName::Database, dump)
            .await
            .context("backing up the database")?;
        let files = super::files::pack(&args.wp_content)?;
        writer
            .write_part(PartName::Files, files)
            .await
            .context("backing up wp-content")?;
        anyhow::Ok(())
    }
    .await;
    let finished = match written {
        Ok(()) => writer.finish().await.map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match finished {
        Ok(manifest) => Ok(manifest),
        Err(e) => {
            if let Err(cleanup) = store.delete_backup(&args.store_id, &backup_id).await {
                tracing::warn!("removing what backup {backup_id} left: {cleanup}");
            }
            Err(e.context(format!(
                "backup {backup_id} of store {} failed",
                args.store_id
            )))
        }
    }
}

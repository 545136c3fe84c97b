//! Gives each clone its restore, and marks the clone done when the restore ended. A pass every
//! 2 seconds over this instance's stores; restart-safe because the restore's id is derived from
//! the store ([`super::restore_id`]): a second create is a 409, never a second restore.
use std::time::Duration;

use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use super::{ANNOTATION_DONE, CloneSource, pending, restore_id};
use crate::backups::restores::{StoreRestore, StoreRestoreSpec};
use crate::crd::{LABEL_INSTANCE, LABEL_STORE_ID, Store};

const PASS: Duration = Duration::from_secs(2);

pub async fn run(client: Client, instance: String) {
    let stores = Api::<Store>::all(client.clone());
    let restores = Api::<StoreRestore>::all(client);
    loop {
        match stores
            .list(&ListParams::default().labels(&format!("{LABEL_INSTANCE}={instance}")))
            .await
        {
            Ok(list) => {
                for store in list.items.iter().filter(|s| !s.is_deleting()) {
                    let Some(source) = pending(store) else {
                        continue;
                    };
                    if let Err(e) = pass(&stores, &restores, &instance, store, &source).await {
                        tracing::warn!(store = %store.name_any(), "clone: {e:#}");
                    }
                }
            }
            Err(e) => tracing::warn!("listing stores for clones: {e}"),
        }
        tokio::time::sleep(PASS).await;
    }
}

async fn pass(
    stores: &Api<Store>,
    restores: &Api<StoreRestore>,
    instance: &str,
    store: &Store,
    source: &CloneSource,
) -> anyhow::Result<()> {
    let id = restore_id(store).ok_or_else(|| anyhow::anyhow!("the store has no uid yet"))?;
    match restores.get_opt(id.as_str()).await? {
        Some(r) if r.phase().is_finished() => {
            let patch = serde_json::json!({
                "metadata": { "annotations": { ANNOTATION_DONE: r.phase().as_str() } }
            });
            stores
                .patch(
                    &store.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            tracing::info!(store = %store.name_any(), restore = %id, phase = r.phase().as_str(), "clone ended");
        }
        Some(_) => {}
        None => {
            let mut r = StoreRestore::new(
                id.as_str(),
                StoreRestoreSpec {
                    store_id: store.name_any(),
                    backup_id: source.backup_id.to_string(),
                    source_store_id: Some(source.store_id.to_string()),
                    source_url: Some(source.site_url.clone()),
                },
            );
            r.labels_mut()
                .insert(LABEL_INSTANCE.into(), instance.to_owned());
            r.labels_mut()
                .insert(LABEL_STORE_ID.into(), store.name_any());
            match restores.create(&PostParams::default(), &r).await {
                Ok(_) => {
                    tracing::info!(store = %store.name_any(), restore = %id, backup = %source.backup_id, "clone restore asked for")
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

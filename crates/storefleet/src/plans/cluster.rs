//! What the API server says about a store's volumes: its PVCs, the StorageClass each really uses, and
//! the MariaDB StatefulSet's volumeClaimTemplate. Read live (not from a cache): a check against a
//! stale size could let a shrink through.
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use super::StorageSize;
use super::volumes::{ClassInfo, ExistingVolume, Observed, Volume};
use crate::domain::StoreId;

const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const DEFAULT_CLASS_BETA: &str = "storageclass.beta.kubernetes.io/is-default-class";

fn requested(pvc: &PersistentVolumeClaim) -> Option<StorageSize> {
    let raw = pvc
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    StorageSize::parse(&raw.0).ok()
}

async fn claim(
    client: &Client,
    id: &StoreId,
    volume: Volume,
) -> kube::Result<Option<PersistentVolumeClaim>> {
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), id.as_str())
        .get_opt(&volume.claim_name(id.as_str()))
        .await
}

/// The store's PVCs that exist, each with the class it uses: its `spec.storageClassName`, or the
/// cluster's default class when it names none (empty means no class: static binding).
pub async fn existing_volumes(client: &Client, id: &StoreId) -> kube::Result<Vec<ExistingVolume>> {
    let classes = Api::<StorageClass>::all(client.clone());
    let mut out = Vec::new();
    for volume in Volume::ALL {
        let Some(pvc) = claim(client, id, volume).await? else {
            continue;
        };
        let Some(size) = requested(&pvc) else {
            continue;
        };
        let named = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone());
        let class = match named.as_deref() {
            Some("") => None,
            Some(name) => Some(match classes.get_opt(name).await? {
                Some(c) => info(&c),
                // A class deleted after the claim was made: nothing allows the expansion.
                None => ClassInfo {
                    name: name.to_owned(),
                    allows_expansion: false,
                },
            }),
            None => classes
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .find(|c| is_default(c))
                .map(info),
        };
        out.push(ExistingVolume {
            volume,
            claim: pvc.name_any(),
            size,
            class,
        });
    }
    Ok(out)
}

fn is_default(class: &StorageClass) -> bool {
    let annotations = class.annotations();
    [DEFAULT_CLASS, DEFAULT_CLASS_BETA]
        .iter()
        .any(|a| annotations.get(*a).map(String::as_str) == Some("true"))
}

fn info(class: &StorageClass) -> ClassInfo {
    ClassInfo {
        name: class.name_any(),
        allows_expansion: class.allow_volume_expansion == Some(true),
    }
}

/// The sizes the controller must respect at an upgrade.
pub async fn observe(client: &Client, id: &StoreId) -> kube::Result<Observed> {
    let wordpress = claim(client, id, Volume::WordpressFiles)
        .await?
        .as_ref()
        .and_then(requested);
    let database = claim(client, id, Volume::DatabaseData)
        .await?
        .as_ref()
        .and_then(requested);
    let statefulset = Api::<StatefulSet>::namespaced(client.clone(), id.as_str())
        .get_opt(&format!("{id}-mariadb"))
        .await?;
    let database_template = statefulset
        .as_ref()
        .and_then(|s| s.spec.volume_claim_templates.as_ref())
        .and_then(|t| {
            t.iter()
                .find(|c| c.metadata.name.as_deref() == Some("data"))
        })
        .and_then(requested);
    Ok(Observed {
        wordpress,
        database,
        database_template,
    })
}

/// Grows the MariaDB PVC to `to` if it is smaller. `Some((from, to))` when it did. The API server's
/// admission decides: PersistentVolumeClaimResize refuses a class without expansion, ResourceQuota a
/// size beyond the quota.
pub async fn grow_database(
    client: &Client,
    id: &StoreId,
    to: &StorageSize,
) -> kube::Result<Option<(StorageSize, StorageSize)>> {
    let Some(pvc) = claim(client, id, Volume::DatabaseData).await? else {
        // Not made yet: the StatefulSet makes it from the template; the next upgrade grows it.
        return Ok(None);
    };
    let Some(from) = requested(&pvc) else {
        return Ok(None);
    };
    if from >= *to {
        return Ok(None);
    }
    let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": to.as_str()}}}});
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), id.as_str())
        .patch(
            &pvc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(Some((from, to.clone())))
}

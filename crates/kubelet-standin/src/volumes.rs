//! The storage-provisioner half of the stand-in: unbound claims whose StorageClass names our
//! provisioner get a hostPath PersistentVolume under `--volume-dir` (the controller-manager's PV
//! controller then binds them), and such volumes are deleted once Released, since reclaim policy
//! `Delete` is the external provisioner's job.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::{Error, ignore_gone};

/// The provisioner name the test cluster's default StorageClass `standard` points at.
pub const PROVISIONER: &str = "storefleet.dev/kubelet-standin";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

struct Ctx {
    client: Client,
    volume_dir: PathBuf,
}

pub async fn run(client: Client, volume_dir: PathBuf) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        volume_dir,
    });
    let claims = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(provision, retry, ctx.clone())
    .for_each(|_| async {});
    let volumes = Controller::new(
        Api::<PersistentVolume>::all(client),
        watcher::Config::default(),
    )
    .run(reclaim, retry, ctx)
    .for_each(|_| async {});
    futures::join!(claims, volumes);
}

fn retry<K: ResourceExt>(obj: Arc<K>, err: &Error, _: Arc<Ctx>) -> Action {
    warn!(object = %obj.name_any(), "kubelet stand-in (provisioner): {err}; retrying in 3s");
    Action::requeue(Duration::from_secs(3))
}

/// The PV's folder: always directly under `--volume-dir`, named after the PV.
fn volume_path(dir: &Path, pv: &str) -> PathBuf {
    dir.join(pv)
}

/// The StorageClass a claim asks for: its own, or the default class when it names none.
async fn class_of(
    client: &Client,
    pvc: &PersistentVolumeClaim,
) -> Result<Option<StorageClass>, Error> {
    let api = Api::<StorageClass>::all(client.clone());
    match pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
    {
        Some("") => Ok(None), // explicitly no class: static binding only
        Some(name) => Ok(api.get_opt(name).await?),
        None => Ok(api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|c| c.annotations().get(DEFAULT_CLASS).map(String::as_str) == Some("true"))),
    }
}

async fn provision(pvc: Arc<PersistentVolumeClaim>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let spec = pvc.spec.clone().unwrap_or_default();
    let unbound = spec.volume_name.as_deref().unwrap_or_default().is_empty();
    // Dynamic provisioning does not serve claims that select volumes or clone data sources.
    if !unbound
        || pvc.metadata.deletion_timestamp.is_some()
        || spec.selector.is_some()
        || spec.data_source.is_some()
    {
        return Ok(Action::await_change());
    }
    let Some(class) = class_of(&ctx.client, &pvc).await? else {
        return Ok(Action::await_change());
    };
    if class.provisioner != PROVISIONER {
        return Ok(Action::await_change());
    }
    let Some(size) = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    else {
        warn!(claim = %pvc.name_any(), "kubelet stand-in (provisioner): claim requests no storage; skipped");
        return Ok(Action::await_change());
    };

    let uid = pvc.metadata.uid.clone().unwrap_or_default();
    let name = format!("pvc-{uid}"); // the external-provisioner convention: one PV per claim uid
    let path = volume_path(&ctx.volume_dir, &name);
    tokio::fs::create_dir_all(&path)
        .await
        .map_err(|e| Error::Volume(path.clone(), e))?;
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": { PROVISIONED_BY: PROVISIONER },
            "labels": { "storefleet.dev/provisioner": "kubelet-standin" },
        },
        "spec": {
            "capacity": { "storage": size },
            "accessModes": spec.access_modes,
            "volumeMode": spec.volume_mode,
            "storageClassName": class.name_any(),
            "persistentVolumeReclaimPolicy": class.reclaim_policy.as_deref().unwrap_or("Delete"),
            "mountOptions": class.mount_options,
            "hostPath": { "path": path, "type": "DirectoryOrCreate" },
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": pvc.namespace(),
                "name": pvc.name_any(),
                "uid": uid,
            },
        },
    }))?;
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .create(&PostParams::default(), &pv)
        .await
    {
        Ok(_) => info!(
            claim = %format!("{}/{}", pvc.namespace().unwrap_or_default(), pvc.name_any()),
            volume = %name,
            size = %size.0,
            "kubelet stand-in (provisioner): provisioned hostPath volume"
        ),
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

async fn reclaim(pv: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ours = pv.annotations().get(PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER);
    let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
    let delete = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        == Some("Delete");
    if !(ours && released && delete) || pv.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = pv.name_any();
    // Only ever remove the folder we made for this PV, never a path the PV merely names.
    let path = volume_path(&ctx.volume_dir, &name);
    let host_path = pv
        .spec
        .as_ref()
        .and_then(|s| s.host_path.as_ref())
        .map(|h| PathBuf::from(&h.path));
    if host_path.as_deref() == Some(path.as_path()) {
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Volume(path, e)),
        }
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pv.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    if ignore_gone(
        Api::<PersistentVolume>::all(ctx.client.clone())
            .delete(&name, &params)
            .await
            .map(|_| ()),
    )?
    .is_some()
    {
        info!(volume = %name, "kubelet stand-in (provisioner): deleted released volume");
    }
    Ok(Action::await_change())
}

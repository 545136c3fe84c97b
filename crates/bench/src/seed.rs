//! Many Store objects for the instance under test, written straight to the API server while its
//! control plane is stopped: copies of a store the controller really provisioned, Ready, with their
//! own ids, each with its namespace (labelled and owned as the controller makes it, or the
//! controller would self-heal the store by provisioning it again). The restarted control plane then
//! holds them all (watch cache) and serves them. What they do NOT have is a Helm release and pods:
//! one stand-in node cannot run 1,000 stores.
use std::collections::HashSet;

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::provision::random_id;
use crate::watch::{LABEL_INSTANCE, stores_api};

const PARALLEL: usize = 16;

/// Creates `n` Stores like `template` (labels, finalizer, spec; the status via the status
/// subresource, as the controller writes it) with fresh ids.
pub async fn create(client: &Client, template: &DynamicObject, n: usize) -> anyhow::Result<()> {
    let old_id = template
        .metadata
        .name
        .clone()
        .context("template has no name")?;
    let mut ids = HashSet::new();
    while ids.len() < n {
        ids.insert(random_id());
    }
    let api = stores_api(client);
    let namespaces = Api::<Namespace>::all(client.clone());
    stream::iter(ids)
        .map(|id| {
            let api = api.clone();
            let namespaces = namespaces.clone();
            let old_id = old_id.clone();
            async move {
                let mut store = DynamicObject::new(&id, &crate::watch::store_resource());
                store.metadata.labels = template.metadata.labels.clone();
                if let Some(labels) = store.metadata.labels.as_mut() {
                    for v in labels.values_mut() {
                        *v = v.replace(&old_id, &id);
                    }
                }
                store.metadata.finalizers = template.metadata.finalizers.clone();
                store.data = json!({ "spec": template.data["spec"].clone() });
                let created = api.create(&PostParams::default(), &store).await?;
                create_namespace(&namespaces, &created).await?;
                let status = renamed(&template.data["status"], &old_id, &id);
                api.patch_status(
                    &id,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The store's namespace as the controller creates it: the store-id label and a controller owner
/// reference to the Store (the garbage collector removes it with the Store).
async fn create_namespace(api: &Api<Namespace>, store: &DynamicObject) -> anyhow::Result<()> {
    let id = store
        .metadata
        .name
        .as_deref()
        .context("a Store has a name")?;
    let uid = store
        .metadata
        .uid
        .as_deref()
        .context("a created Store has a uid")?;
    let mut labels = store.metadata.labels.clone().unwrap_or_default();
    labels.insert("storefleet.dev/store-id".into(), id.into());
    labels.insert("app.kubernetes.io/managed-by".into(), "storefleet".into());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {
            "name": id,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "storefleet.dev/v1alpha1", "kind": "Store", "name": id, "uid": uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
    }))?;
    api.create(&PostParams::default(), &ns).await?;
    Ok(())
}

/// Removes the seeded Stores (finalizer first: there is nothing behind them to clean up). Run it
/// with the control plane stopped, or it would try to uninstall 1,000 releases that never existed.
pub async fn remove(client: &Client, instance: &str) -> anyhow::Result<usize> {
    let api = stores_api(client);
    let lp = ListParams::default().labels(&format!("{LABEL_INSTANCE}={instance}"));
    let names: Vec<String> = api
        .list_metadata(&lp)
        .await?
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    let count = names.len();
    stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                )
                .await?;
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => anyhow::Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(count)
}

/// Waits until no namespace of the instance's seeded Stores is left (the garbage collector deletes
/// them after their Stores, and the namespace controller empties each first: at 10,000 this takes
/// a while, and it loads the API server).
pub async fn wait_namespaces_gone(
    client: &Client,
    instance: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let api = Api::<Namespace>::all(client.clone());
    let lp = ListParams::default().labels(&format!("{LABEL_INSTANCE}={instance}"));
    let t0 = std::time::Instant::now();
    loop {
        let left = api.list_metadata(&lp).await?.items.len();
        if left == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            t0.elapsed() < timeout,
            "{left} namespaces of seeded stores still there after {timeout:?}"
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The status with every mention of the template's id (url, messages) replaced.
fn renamed(status: &Value, old: &str, new: &str) -> Value {
    serde_json::from_str(&status.to_string().replace(old, new)).unwrap_or_else(|_| status.clone())
}

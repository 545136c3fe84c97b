//! Provisioning one store through Storefleet, and the same store directly with helm (the baseline).
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use kube::{Api, Client};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::control_plane::ControlPlane;
use crate::watch::{self, NamespaceWatch};

const READY_TIMEOUT: Duration = Duration::from_secs(300);
const GONE_TIMEOUT: Duration = Duration::from_secs(300);

/// One store provisioned through Storefleet.
pub struct Provisioned {
    pub id: String,
    /// POST /stores to the Store's status Ready (as seen by the bench's watch).
    pub total: Duration,
    /// The last pod turning Ready (or its Job's pod Succeeded) to the Store's status Ready.
    pub after_last_pod: Option<Duration>,
    /// The workloads being ready by the controller's rule (as the bench saw them) to status Ready.
    pub after_workloads: Option<Duration>,
    /// The Store as the controller left it, Ready.
    pub object: DynamicObject,
}

/// `POST /stores`; answers the new store id.
pub async fn post_store(cp: &ControlPlane) -> anyhow::Result<String> {
    let resp = cp
        .request(Method::POST, "/stores")
        .json(&json!({}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if status != StatusCode::ACCEPTED {
        bail!("POST /stores answered {status}: {body}");
    }
    body["store_id"]
        .as_str()
        .map(str::to_owned)
        .context("no store_id in the answer")
}

pub async fn via_storefleet(
    cp: &ControlPlane,
    client: &Client,
    instance: &str,
) -> anyhow::Result<Provisioned> {
    let t0 = Instant::now();
    let id = post_store(cp).await?;
    // Nothing runs in the namespace before helm does, seconds later: the watch is in time.
    let ns = NamespaceWatch::start(client, &id);
    let ids = HashSet::from([id.clone()]);
    let ready = watch::stores_ready(client, instance, &ids, READY_TIMEOUT).await?[&id];
    let object = watch::stores_api(client).get(&id).await?;
    if let Some(w) = ns.workloads_ready_at()
        && w > ready
    {
        eprintln!(
            "[bench] {id}: workloads seen ready {} after the Store",
            crate::stats::millis(w - ready)
        );
    }
    Ok(Provisioned {
        total: ready - t0,
        after_last_pod: ns.last_pod_ready(ready).map(|t| ready - t),
        after_workloads: ns
            .workloads_ready_at()
            .filter(|t| *t <= ready)
            .map(|t| ready - t),
        object,
        id,
    })
}

/// `DELETE /stores/{id}` and wait until the Store (and so its namespace) is gone.
pub async fn delete_via_storefleet(
    cp: &ControlPlane,
    client: &Client,
    instance: &str,
    ids: &[String],
) -> anyhow::Result<()> {
    request_deletes(cp, ids).await?;
    watch::stores_gone(client, instance, GONE_TIMEOUT).await
}

/// `DELETE /stores/{id}` for each; each must be accepted (`202`).
async fn request_deletes(cp: &ControlPlane, ids: &[String]) -> anyhow::Result<()> {
    for id in ids {
        let resp = cp
            .request(Method::DELETE, &format!("/stores/{id}"))
            .send()
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            bail!("DELETE /stores/{id} answered {}", resp.status());
        }
    }
    Ok(())
}

/// `DELETE /stores/{id}` for each, then waits until each of those Stores is gone. The finalizer
/// releases a Store only once its namespace is gone, so its pods are gone too. Unlike
/// [`delete_via_storefleet`] this leaves the instance's other Stores (a pool) alone.
pub async fn delete_via_api(
    cp: &ControlPlane,
    client: &Client,
    ids: &[String],
) -> anyhow::Result<()> {
    request_deletes(cp, ids).await?;
    let api = watch::stores_api(client);
    let deadline = Instant::now() + GONE_TIMEOUT;
    for id in ids {
        while api.get_opt(id).await?.is_some() {
            if Instant::now() > deadline {
                bail!("store {id} still there after {GONE_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

/// `n` stores requested at once; answers the wall time from the first request to the last Ready.
pub async fn batch(
    cp: &ControlPlane,
    client: &Client,
    instance: &str,
    n: usize,
) -> anyhow::Result<(Duration, Vec<String>)> {
    let t0 = Instant::now();
    let ids: Vec<String> = futures::future::try_join_all((0..n).map(|_| post_store(cp))).await?;
    let wanted: HashSet<String> = ids.iter().cloned().collect();
    let ready = watch::stores_ready(client, instance, &wanted, READY_TIMEOUT * 2).await?;
    let last = ready.values().max().copied().unwrap_or(t0);
    Ok((last - t0, ids))
}

/// The baseline: what the controller does for a store, run directly.
pub struct Direct {
    pub helm: PathBuf,
    pub chart: PathBuf,
    /// HELM_*_HOME, as the controller sets them.
    pub helm_home: tempfile::TempDir,
}

impl Direct {
    pub fn new(helm: PathBuf, chart: PathBuf) -> anyhow::Result<Self> {
        Ok(Self {
            helm,
            chart,
            helm_home: tempfile::tempdir()?,
        })
    }

    /// Creates namespace `id`, runs the controller's `helm upgrade --install` argv (environment
    /// values file, then a generated one with the same keys) and waits, with a watch, for the
    /// workloads to be ready by the controller's rule. Answers the time from namespace create to
    /// that moment.
    pub async fn provision(&self, client: &Client, id: &str) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let namespaces = Api::<Namespace>::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": id}}))?;
        namespaces.create(&PostParams::default(), &ns).await?;
        let mut watch = NamespaceWatch::start(client, id);
        let generated = tempfile::NamedTempFile::new()?;
        // The controller writes YAML; JSON is YAML with the same content.
        std::fs::write(
            generated.path(),
            serde_json::to_vec(&json!({
                "storeId": id,
                "host": format!("{id}.localhost"),
                "siteTitle": id,
                "siteUrl": format!("http://{id}.localhost"),
            }))?,
        )?;
        let mut args: Vec<OsString> = vec!["upgrade".into(), "--install".into(), id.into()];
        args.push(self.chart.clone().into());
        args.extend(["-n".into(), id.into()]);
        args.extend(["-f".into(), self.chart.join("values-local.yaml").into()]);
        args.extend(["-f".into(), generated.path().into()]);
        self.helm(args).await?;
        let ready = watch.workloads_ready(READY_TIMEOUT).await?;
        Ok(ready - t0)
    }

    /// `helm uninstall` and delete the namespace; waits until it is gone.
    pub async fn remove(&self, client: &Client, id: &str) -> anyhow::Result<()> {
        self.helm(vec!["uninstall".into(), id.into(), "-n".into(), id.into()])
            .await?;
        let namespaces = Api::<Namespace>::all(client.clone());
        namespaces.delete(id, &DeleteParams::default()).await?;
        watch::namespace_gone(client, id, GONE_TIMEOUT).await
    }

    async fn helm(&self, args: Vec<OsString>) -> anyhow::Result<()> {
        let home = self.helm_home.path();
        let out = tokio::process::Command::new(&self.helm)
            .args(&args)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {}", self.helm.display()))?;
        if !out.status.success() {
            bail!(
                "helm {:?} failed: {}",
                args.first(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// A fresh store id (`store-` + 6 hex digits).
pub fn random_id() -> String {
    use rand::Rng;
    format!("store-{:06x}", rand::rng().random_range(0..0x100_0000u32))
}

pub fn chart_ok(chart: &Path) -> anyhow::Result<()> {
    if !chart.join("Chart.yaml").is_file() {
        bail!("no chart at {}", chart.display());
    }
    Ok(())
}

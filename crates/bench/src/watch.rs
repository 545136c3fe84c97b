//! What the bench sees happen, timestamped locally the moment a watch event arrives. Every watch
//! runs in this process on one client, so times taken from different watches are comparable.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

pub const LABEL_INSTANCE: &str = "storefleet.dev/instance";
const COMPONENT: &str = "app.kubernetes.io/component";

pub fn store_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("storefleet.dev", "v1alpha1", "Store"),
        "stores",
    )
}

pub fn stores_api(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &store_resource())
}

pub fn phase(store: &DynamicObject) -> Option<&str> {
    store.data["status"]["phase"].as_str()
}

/// Waits until every store in `ids` has phase Ready; answers when each was first seen Ready.
pub async fn stores_ready(
    client: &Client,
    instance: &str,
    ids: &HashSet<String>,
    timeout: Duration,
) -> anyhow::Result<HashMap<String, Instant>> {
    let config = watcher::Config::default().labels(&format!("{LABEL_INSTANCE}={instance}"));
    let mut events = watcher::watcher(stores_api(client), config).boxed();
    let mut ready = HashMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while ready.len() < ids.len() {
        let event = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .with_context(|| {
                format!(
                    "stores not Ready within {timeout:?}: {} of {}",
                    ready.len(),
                    ids.len()
                )
            })?
            .context("watching stores")?
            .context("the store watch ended")?;
        let now = Instant::now();
        if let Event::Apply(s) | Event::InitApply(s) = event {
            let id = s.name_any();
            if !ids.contains(&id) {
                continue;
            }
            match phase(&s) {
                Some("Ready") => {
                    ready.entry(id).or_insert(now);
                }
                Some("Failed") => bail!(
                    "store {id} Failed: {}",
                    s.data["status"]["message"].as_str().unwrap_or_default()
                ),
                _ => {}
            }
        }
    }
    Ok(ready)
}

/// Watches one store namespace: when each pod turned Ready (Job pods: Succeeded) and when the
/// workloads became ready by the controller's own rule (every Deployment and StatefulSet current
/// and fully ready, the setup Job succeeded).
pub struct NamespaceWatch {
    state: Arc<Mutex<State>>,
    ready: watch::Receiver<Option<Instant>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    deployments: HashMap<String, Deployment>,
    statefulsets: HashMap<String, StatefulSet>,
    jobs: HashMap<String, Job>,
    pod_ready: HashMap<String, Instant>,
    workloads_ready: Option<Instant>,
}

enum Change {
    Deployment(Box<Event<Deployment>>),
    StatefulSet(Box<Event<StatefulSet>>),
    Job(Box<Event<Job>>),
    Pod(Box<Event<Pod>>),
}

impl NamespaceWatch {
    pub fn start(client: &Client, ns: &str) -> Self {
        let cfg = watcher::Config::default;
        let changes = stream::select_all([
            watcher::watcher(Api::<Deployment>::namespaced(client.clone(), ns), cfg())
                .map_ok(|e| Change::Deployment(Box::new(e)))
                .boxed(),
            watcher::watcher(Api::<StatefulSet>::namespaced(client.clone(), ns), cfg())
                .map_ok(|e| Change::StatefulSet(Box::new(e)))
                .boxed(),
            watcher::watcher(Api::<Job>::namespaced(client.clone(), ns), cfg())
                .map_ok(|e| Change::Job(Box::new(e)))
                .boxed(),
            watcher::watcher(Api::<Pod>::namespaced(client.clone(), ns), cfg())
                .map_ok(|e| Change::Pod(Box::new(e)))
                .boxed(),
        ]);
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, ready) = watch::channel(None);
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                let mut changes = changes;
                while let Some(change) = changes.next().await {
                    let now = Instant::now();
                    let Ok(change) = change else { continue };
                    let mut st = state.lock().expect("not poisoned");
                    match change {
                        Change::Deployment(e) => apply(&mut st.deployments, *e),
                        Change::StatefulSet(e) => apply(&mut st.statefulsets, *e),
                        Change::Job(e) => apply(&mut st.jobs, *e),
                        Change::Pod(e) => {
                            if let Event::Apply(p) | Event::InitApply(p) = *e
                                && pod_done(&p)
                            {
                                st.pod_ready.entry(p.name_any()).or_insert(now);
                            }
                        }
                    }
                    if st.workloads_ready.is_none()
                        && workloads_ready(&st.deployments, &st.statefulsets, &st.jobs)
                    {
                        st.workloads_ready = Some(now);
                        let _ = tx.send(Some(now));
                    }
                }
            }
        });
        Self { state, ready, task }
    }

    /// Waits until the workloads are ready; answers when that was first seen.
    pub async fn workloads_ready(&mut self, timeout: Duration) -> anyhow::Result<Instant> {
        let seen = tokio::time::timeout(timeout, self.ready.wait_for(Option::is_some))
            .await
            .with_context(|| format!("workloads not ready within {timeout:?}"))?
            .context("namespace watch ended")?;
        Ok(seen.expect("waited for Some"))
    }

    /// When the workloads were first seen ready, if they were.
    pub fn workloads_ready_at(&self) -> Option<Instant> {
        self.state.lock().expect("not poisoned").workloads_ready
    }

    /// The last pod to turn Ready (or Succeeded) no later than `until`.
    pub fn last_pod_ready(&self, until: Instant) -> Option<Instant> {
        let st = self.state.lock().expect("not poisoned");
        st.pod_ready.values().copied().filter(|t| *t <= until).max()
    }
}

impl Drop for NamespaceWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn apply<K: kube::Resource>(map: &mut HashMap<String, K>, event: Event<K>) {
    match event {
        Event::Apply(o) | Event::InitApply(o) => {
            map.insert(o.name_any(), o);
        }
        Event::Delete(o) => {
            map.remove(&o.name_any());
        }
        Event::Init | Event::InitDone => {}
    }
}

/// Ready (or, for a Job's pod, Succeeded). Pods of the CronJob come and go on their schedule and are
/// not part of provisioning.
fn pod_done(p: &Pod) -> bool {
    if p.labels().get(COMPONENT).is_some_and(|c| c == "cron") {
        return false;
    }
    let Some(status) = &p.status else {
        return false;
    };
    status.phase.as_deref() == Some("Succeeded")
        || status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The controller's readiness rule (crates/storefleet/src/controller/readiness.rs), restated so the
/// direct-helm baseline waits for exactly the same thing.
fn workloads_ready(
    deployments: &HashMap<String, Deployment>,
    statefulsets: &HashMap<String, StatefulSet>,
    jobs: &HashMap<String, Job>,
) -> bool {
    if deployments.is_empty() && statefulsets.is_empty() {
        return false;
    }
    let deployments_ok = deployments.values().all(|d| {
        let desired = d.spec.replicas.unwrap_or(1);
        let st = d.status.clone().unwrap_or_default();
        st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
            && st.ready_replicas.unwrap_or(0) == desired
            && st.updated_replicas.unwrap_or(0) == desired
            && st.replicas.unwrap_or(0) == desired
    });
    let statefulsets_ok = statefulsets.values().all(|s| {
        let desired = s.spec.replicas.unwrap_or(1);
        let st = s.status.clone().unwrap_or_default();
        st.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0)
            && st.ready_replicas.unwrap_or(0) == desired
    });
    let setup: Vec<&Job> = jobs
        .values()
        .filter(|j| j.labels().get(COMPONENT).is_some_and(|c| c == "setup"))
        .collect();
    let setup_ok = !setup.is_empty()
        && setup
            .iter()
            .all(|j| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) >= 1);
    deployments_ok && statefulsets_ok && setup_ok
}

/// Polls (every 250 ms; cleanup is not measured) until nothing of `instance` is left.
pub async fn stores_gone(client: &Client, instance: &str, timeout: Duration) -> anyhow::Result<()> {
    let api = stores_api(client);
    let lp = kube::api::ListParams::default().labels(&format!("{LABEL_INSTANCE}={instance}"));
    let deadline = Instant::now() + timeout;
    loop {
        let left = api.list_metadata(&lp).await?.items.len();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{left} store(s) of {instance} still there after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls until the namespace is gone.
pub async fn namespace_gone(client: &Client, ns: &str, timeout: Duration) -> anyhow::Result<()> {
    let api = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    let deadline = Instant::now() + timeout;
    while api.get_opt(ns).await?.is_some() {
        if Instant::now() > deadline {
            bail!("namespace {ns} still there after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

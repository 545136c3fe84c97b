//! The Store controller (kube-runtime): wiring, shared context, error policy.
//!
//! Per store, [`reconcile::apply`] picks the next single action from what it observes (namespace,
//! release, workloads) and [`cleanup::cleanup`] tears a store down behind the finalizer. The controller
//! runs one reconcile per store at a time, which is what makes the Helm unlock in [`release`] safe.
mod cleanup;
mod events;
mod mail;
mod namespace;
pub(crate) mod readiness;
mod reconcile;
pub(crate) mod release;
mod rolebinding;
pub mod status;
pub(crate) mod watch_backoff;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Future, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store as StoreCache};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::Instrument;

use events::EventPublisher;
pub use events::EventType;

use crate::backups::settings::JobEgress;
use crate::config::{StoreAccess, StoreUrls, WorkloadWatch};
use crate::crd::{DEFAULT_INSTANCE, FINALIZER, LABEL_INSTANCE, LABEL_STORE_ID, Store};
use crate::helm::Helm;
use crate::mail::MailRelay;
use crate::metrics::Metrics;
use crate::plans::PlanTable;
use crate::storage::{AuditEntry, AuditLog};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Not a failure: the next step needs something to happen first (a namespace to go away).
    #[error("waiting: {0}")]
    Waiting(String),
    #[error(transparent)]
    Finalizer(#[from] Box<finalizer::Error<Error>>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How often a provisioning store is looked at when no workload watch wakes the controller.
const POLL: Duration = Duration::from_secs(2);
/// Watch events for a store within this window make one reconcile. A burst (a pod turning Ready,
/// then its Deployment's status) arrives within a few tens of ms; 300 ms made readiness late.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Reconciles at once. At start every Store is reconciled; unbounded, a thousand stores mean a
/// thousand requests in flight and their buffers at once (memory the allocator keeps afterwards).
/// Helm operations have their own, smaller limit (`--max-parallel`).
const CONCURRENCY: u16 = 16;

/// The controller's settings (from the command line).
pub struct Settings {
    pub instance: String,
    pub urls: StoreUrls,
    pub provision_timeout: Duration,
    pub store_access: Option<StoreAccess>,
    pub workload_watch: WorkloadWatch,
    pub mail: Option<MailRelay>,
    pub backup_egress: Option<JobEgress>,
    pub plans: Arc<PlanTable>,
}

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub stores: Api<Store>,
    pub helm: Helm,
    pub events: EventPublisher,
    pub audit: AuditLog,
    pub instance: String,
    pub urls: StoreUrls,
    pub provision_timeout: Duration,
    /// Bound in each store namespace right after it is created; `None` with an admin identity.
    pub store_access: Option<StoreAccess>,
    pub workload_watch: WorkloadWatch,
    /// The SMTP relay every store gets at its next install; `None`: stores send no mail.
    pub mail: Option<MailRelay>,
    /// With an S3 backup target: where backup and restore Jobs connect, which every store's
    /// NetworkPolicy opens to them at its next install; `None`: nothing to open.
    pub backup_egress: Option<JobEgress>,
    /// The size plans: what a store's `spec.plan` means in chart values.
    pub plans: Arc<PlanTable>,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per store, for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        helm: Helm,
        audit: AuditLog,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        let Settings {
            instance,
            urls,
            provision_timeout,
            store_access,
            workload_watch,
            mail,
            backup_egress,
            plans,
        } = settings;
        Self {
            stores: Api::all(client.clone()),
            events: EventPublisher::new(client.clone(), &instance),
            client,
            helm,
            audit,
            instance,
            urls,
            provision_timeout,
            store_access,
            workload_watch,
            mail,
            backup_egress,
            plans,
            metrics,
            failures: Mutex::default(),
        }
    }

    /// When to look again at a store whose workloads are not ready yet, at the latest: without
    /// workload watches nothing else wakes the controller.
    pub fn readiness_poll(&self) -> Option<Duration> {
        match self.workload_watch {
            WorkloadWatch::Cluster => None,
            WorkloadWatch::Off => Some(POLL),
        }
    }

    /// Publishes a Kubernetes Event on the Store (in namespace `default`, the Store being
    /// cluster-scoped). Best effort: a lost event must not stop provisioning.
    pub async fn event(
        &self,
        store: &Store,
        type_: EventType,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        let note = truncate_bytes(note.into(), 1000);
        if let Err(e) = self
            .events
            .publish(store, type_, reason, action, &note)
            .await
        {
            tracing::warn!(store_id = %store.name_any(), reason, "could not publish an event: {e}");
        }
    }

    pub async fn audit(&self, entry: AuditEntry) {
        self.audit.record(entry).await;
    }

    fn next_backoff(&self, store: &str) -> Duration {
        let mut failures = self.failures.lock().expect("not poisoned");
        let n = failures.entry(store.to_owned()).or_default();
        *n = n.saturating_add(1);
        // 2 s, 4 s, ... capped at 60 s.
        Duration::from_secs(2u64.saturating_pow((*n).min(6)).min(60))
    }

    fn reset_backoff(&self, store: &str) {
        self.failures.lock().expect("not poisoned").remove(store);
    }

    /// The backoff after a failed Helm operation (counts as a failure).
    pub fn helm_backoff(&self, store: &str) -> Duration {
        self.next_backoff(store)
    }
}

fn truncate_bytes(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Stores of `instance`: by label, except `default`, which also owns unlabelled Stores (a label
/// selector cannot say "= default or absent", so those are filtered in [`reconcile_store`]).
pub fn store_watcher_config(instance: &str) -> watcher::Config {
    if instance == DEFAULT_INSTANCE {
        watcher::Config::default()
    } else {
        watcher::Config::default().labels(&format!("{LABEL_INSTANCE}={instance}"))
    }
}

/// Objects of a store's namespace map back to the Store named by their label (= namespace).
fn owning_store<K: Resource>(obj: K) -> Option<ObjectRef<Store>> {
    let id = obj
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_STORE_ID))
        .cloned()
        .or_else(|| obj.meta().namespace.clone())?;
    Some(ObjectRef::new(&id))
}

/// Builds the controller; answers the future that runs it and the cache of Stores it watches.
pub fn run(ctx: Arc<Context>) -> (impl Future<Output = ()> + Send, StoreCache<Store>) {
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(LABEL_STORE_ID);
    // As `Controller::new` builds it, but without `managedFields` in the cache: nothing here reads
    // them, and with ten thousand Stores they are a good part of its memory. (`for_stream` is behind
    // kube's `unstable-runtime` feature.)
    let (cache, writer) = reflector::store();
    let stores = reflector::reflector(
        writer,
        watcher(ctx.stores.clone(), store_watcher_config(&ctx.instance))
            .modify(|store| store.managed_fields_mut().clear()),
    )
    .applied_objects();
    // Namespaces are watched in both modes (the identity may list and watch them cluster-wide).
    let mut controller = Controller::for_stream(stores, cache).watches(
        Api::<Namespace>::all(client.clone()),
        owned.clone(),
        owning_store,
    );
    if ctx.workload_watch == WorkloadWatch::Cluster {
        controller = controller
            .watches(
                Api::<Deployment>::all(client.clone()),
                owned.clone(),
                owning_store,
            )
            .watches(
                Api::<StatefulSet>::all(client.clone()),
                owned.clone(),
                owning_store,
            )
            .watches(Api::<Job>::all(client.clone()), owned.clone(), owning_store)
            .watches(Api::<Pod>::all(client), owned, owning_store);
    }
    let controller = controller
        // Pods of a store change in bursts; one look after the burst is enough. Short, because it is
        // also the floor of how late a store is seen Ready (docs/benchmarks.md, bench 5).
        .with_config(
            controller::Config::default()
                .debounce(DEBOUNCE)
                .concurrency(CONCURRENCY),
        )
        // Back on its feet within seconds after an API-server outage (watch_backoff.rs).
        .trigger_backoff(watch_backoff::WatchBackoff::default())
        // On SIGTERM/Ctrl-C, let running reconciles (and their helm processes) finish.
        .shutdown_on_signal();
    let cache = controller.store();
    let metrics = ctx.metrics.clone();
    let fut = controller
        .run(reconcile_store, error_policy, ctx)
        .for_each(move |result| {
            // Lets a restart be observed: every store had its first look once this reaches the
            // store count (docs/benchmarks.md, bench 4).
            if let Ok((obj, _)) = &result {
                metrics.store_reconciled(&obj.name);
            }
            async move {
                match result {
                    Ok((obj, _)) => tracing::debug!(store_id = %obj.name, "reconciled"),
                    Err(controller::Error::ReconcilerFailed(e, _)) if e.is_waiting() => {}
                    Err(controller::Error::ReconcilerFailed(e, obj)) => {
                        tracing::warn!(store_id = %obj.name, "reconcile failed: {e}");
                    }
                    // A wake-up for a Store deleted meanwhile: nothing to do.
                    Err(controller::Error::ObjectNotFound(obj)) => {
                        tracing::debug!(store_id = %obj.name, "reconciling a store that is gone");
                    }
                    Err(e) => tracing::warn!("reconcile failed: {e}"),
                }
            }
        });
    (fut, cache)
}

async fn reconcile_store(store: Arc<Store>, ctx: Arc<Context>) -> Result<Action> {
    let span = tracing::info_span!("reconcile", store_id = %store.name_any());
    async move {
        if store.instance() != ctx.instance {
            return Ok(Action::await_change());
        }
        if store.store_id().is_none() {
            return reconcile::reject_bad_name(&store, &ctx).await;
        }
        let action = finalizer(&ctx.stores, FINALIZER, store, |event| async {
            match event {
                finalizer::Event::Apply(store) => reconcile::apply(store, &ctx).await,
                finalizer::Event::Cleanup(store) => cleanup::cleanup(store, &ctx).await,
            }
        })
        .await
        .map_err(Box::new)?;
        Ok(action)
    }
    .instrument(span)
    .await
}

impl Error {
    /// The `reason` label of `storefleet_reconcile_errors_total` (a small, fixed set).
    fn reason(&self) -> &'static str {
        match self {
            Error::Kube(e) => kube_reason(e),
            Error::Waiting(_) => "waiting",
            Error::Finalizer(e) => match &**e {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.reason(),
                finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
                    kube_reason(e)
                }
                _ => "finalizer",
            },
        }
    }

    /// The Kubernetes API was unreachable or overloaded (see [`kube_unavailable`]).
    fn is_api_unavailable(&self) -> bool {
        match self {
            Error::Kube(e) => kube_unavailable(e),
            Error::Waiting(_) => false,
            Error::Finalizer(e) => match &**e {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.is_api_unavailable()
                }
                finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
                    kube_unavailable(e)
                }
                _ => false,
            },
        }
    }

    /// Waiting is not failing: no warning, no backoff.
    fn is_waiting(&self) -> bool {
        match self {
            Error::Waiting(_) => true,
            Error::Finalizer(e) => matches!(
                **e,
                finalizer::Error::CleanupFailed(Error::Waiting(_))
                    | finalizer::Error::ApplyFailed(Error::Waiting(_))
            ),
            Error::Kube(_) => false,
        }
    }
}

/// 5 to 10 s, the same offset for a store every time (a hash of its name, no shared RNG).
fn unavailable_retry(store: &str) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    store.hash(&mut h);
    Duration::from_secs(5) + Duration::from_millis(h.finish() % 5000)
}

/// The API server did not answer, or answered that it cannot now (5xx, 429): a transient state of
/// the cluster, not of the store.
fn kube_unavailable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

fn kube_reason(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 409 => "kube_conflict",
        kube::Error::Api(s) if s.code == 403 => "kube_forbidden",
        kube::Error::Api(s) if s.code == 404 => "kube_not_found",
        kube::Error::Api(_) => "kube_api",
        _ => "kube_unreachable",
    }
}

fn error_policy(store: Arc<Store>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_waiting() {
        // The watch on the namespace usually wakes us first; this is the safety net (without
        // workload watches, the poll interval).
        return Action::requeue(ctx.readiness_poll().unwrap_or(Duration::from_secs(3)));
    }
    ctx.metrics.reconcile_error(error.reason());
    if error.is_api_unavailable() {
        // The API server is down or overloaded: not this store's failure, so its backoff does not
        // grow. Escalated through an outage it reached 32-60 s, and a store waited that long after
        // the API server was back (faults_outage). The relist when the watch comes back wakes every
        // store anyway; this timer is the safety net, spread per store so a fleet does not retry
        // in step.
        let delay = unavailable_retry(&store.name_any());
        tracing::warn!(store_id = %store.name_any(), retry_in = ?delay, "{error}");
        return Action::requeue(delay);
    }
    let delay = ctx.next_backoff(&store.name_any());
    tracing::warn!(store_id = %store.name_any(), retry_in = ?delay, "{error}");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_api_does_not_grow_a_stores_backoff() {
        let refused = Error::Kube(kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ))));
        assert!(refused.is_api_unavailable());
        let status = |code: u16| {
            Error::Kube(kube::Error::Api(
                kube::core::Status::failure("x", "y")
                    .with_code(code)
                    .boxed(),
            ))
        };
        assert!(status(503).is_api_unavailable());
        assert!(status(429).is_api_unavailable());
        assert!(!status(403).is_api_unavailable());
        assert!(!status(409).is_api_unavailable());
        let wrapped = Error::Finalizer(Box::new(finalizer::Error::ApplyFailed(status(504))));
        assert!(wrapped.is_api_unavailable());
        let a = unavailable_retry("store-abcdef");
        assert_eq!(a, unavailable_retry("store-abcdef"));
        assert!(a >= Duration::from_secs(5) && a < Duration::from_secs(10));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = truncate_bytes("é".repeat(600), 1000);
        assert!(s.len() <= 1000);
        assert!(s.ends_with('…'));
        assert_eq!(truncate_bytes("short".into(), 1000), "short");
    }

    #[test]
    fn objects_map_to_their_store() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "store-abcdef", "labels": {LABEL_STORE_ID: "store-abcdef"}}
        })).unwrap();
        assert_eq!(owning_store(pod).unwrap().name, "store-abcdef");
        let unlabelled: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "store-123456"}
        }))
        .unwrap();
        assert_eq!(owning_store(unlabelled).unwrap().name, "store-123456");
    }
}

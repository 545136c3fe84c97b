//! The pool's controller (leader only, beside the store controller): every pass plans from the
//! controller's cache of Stores ([`super::refill::plan`]) and, when there is something to do,
//! plans again from the API server under the create lock (`storage/lock.rs`) and does it. The
//! cache only says *whether* to look: it lags behind the creates just made, and a plan made from
//! it would make stores twice. Under the lock, no `POST /stores` counts or claims meanwhile, on
//! any replica. The stores themselves are provisioned (and, once claimed, re-provisioned as their
//! owner's) by the store controller, like any other. Every few passes it also looks at its Ready
//! stores' workloads ([`super::health`]) and replaces one that broke while waiting.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::Store as StoreCache;
use kube::{Api, Client, ResourceExt};

use super::claim::claimed_at;
use super::health::{self, ANNOTATION_BROKEN_SINCE, Verdict};
use super::refill::{self, LABEL_POOL, POOL_OWNER, Step};
use super::{PoolKind, PoolTargets};
use crate::controller::readiness;
use crate::crd::{LABEL_INSTANCE, Store, StoreSpec};
use crate::domain::StoreId;
use crate::metrics::Metrics;
use crate::storage::{Action, AuditEntry, AuditLog, Database, LockName};

/// How often the pool is looked at: a claim is answered from what is Ready now, so this only
/// bounds how soon a claimed store is replaced.
const PASS: Duration = Duration::from_secs(1);
/// After the provision timeout, how long the store controller has to fail a pool store itself (its
/// Failed says why, in the store's status) before the pool gives up on it anyway.
const STUCK_GRACE: Duration = Duration::from_secs(60);
/// Every how many passes the Ready pool stores' workloads are read (two lists per store): a store
/// that breaks is out of the candidates within about this many seconds.
const HEALTH_EVERY: u64 = 5;
/// The title a pool store has until it is claimed (never shown to a member: a claim replaces it).
pub const POOL_TITLE: &str = "Pool store";

#[derive(Clone, Debug)]
pub struct Settings {
    pub instance: String,
    pub targets: PoolTargets,
    pub max_stores: u32,
    /// The store controller fails a store not Ready this long after its creation, and the pool
    /// replaces it; one still not Ready (nor Failed) a grace period later is replaced too.
    pub provision_timeout: Duration,
}

pub async fn run(
    client: Client,
    db: Database,
    cache: StoreCache<Store>,
    settings: Settings,
    metrics: Arc<Metrics>,
) {
    if settings.targets.is_empty() {
        return std::future::pending().await;
    }
    metrics
        .pool
        .known(settings.targets.iter().map(|(k, _)| k.clone()));
    let _ = cache.wait_until_ready().await;
    let mut pool = Pool {
        api: Api::all(client.clone()),
        client,
        passes: 0,
        db: db.clone(),
        audit: db.audit(),
        settings,
        metrics,
        measured: HashSet::new(),
        started: Timestamp::now(),
    };
    loop {
        if let Err(e) = pool.pass(&cache).await {
            tracing::warn!("pool pass failed: {e}");
        }
        tokio::time::sleep(PASS).await;
    }
}

struct Pool {
    api: Api<Store>,
    client: Client,
    passes: u64,
    db: Database,
    audit: AuditLog,
    settings: Settings,
    metrics: Arc<Metrics>,
    /// Claimed stores whose time to Ready was observed by this term (each once).
    measured: HashSet<String>,
    started: Timestamp,
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl Pool {
    async fn pass(&mut self, cache: &StoreCache<Store>) -> Result<(), PassError> {
        let cached = cache.state();
        let ours: Vec<&Store> = cached
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| s.instance() == self.settings.instance)
            .collect();
        self.observe(&ours);
        self.passes += 1;
        if self.passes.is_multiple_of(HEALTH_EVERY) {
            self.look_after(&ours).await?;
        }
        if self.plan(&ours).is_empty() {
            return Ok(());
        }
        let _serialised = self
            .db
            .exclusive(LockName::StoreCreate {
                instance: &self.settings.instance,
            })
            .await?;
        let fresh = self
            .api
            .list(
                &ListParams::default()
                    .labels(&format!("{LABEL_INSTANCE}={}", self.settings.instance)),
            )
            .await?
            .items;
        let fresh: Vec<&Store> = fresh.iter().collect();
        for step in self.plan(&fresh) {
            match step {
                Step::Create(kind) => self.create(&kind).await?,
                Step::Delete { store_id, why } => self.delete(&store_id, why).await?,
            }
        }
        Ok(())
    }

    /// The Ready pool stores' workloads (health.rs): marks one that broke, unmarks one that
    /// recovered, deletes one broken for longer than the grace. Every write is guarded by the
    /// resourceVersion read, so a store a claim took meanwhile is never marked or deleted: the write
    /// answers 409, and the next look sees it claimed.
    async fn look_after(&self, stores: &[&Store]) -> Result<(), PassError> {
        let grace = self.settings.provision_timeout.min(health::GRACE_MAX);
        for store in stores.iter().filter(|s| health::watched(s)) {
            let Ok(id) = StoreId::parse(&store.name_any()) else {
                continue;
            };
            // One store that cannot be read now is looked at again next time; the others still are.
            let workloads = match readiness::workloads(&self.client, &id).await {
                Ok(check) => check,
                Err(e) => {
                    tracing::warn!(store_id = %id, "pool: reading its workloads: {e}");
                    continue;
                }
            };
            let since = health::broken_since(store);
            let rv = store.resource_version();
            let guarded = |value: serde_json::Value| {
                serde_json::json!({ "metadata": {
                    "resourceVersion": rv,
                    "annotations": { ANNOTATION_BROKEN_SINCE: value },
                }})
            };
            let result = match health::judge(since, workloads.ok, Timestamp::now(), grace) {
                Verdict::Keep => continue,
                Verdict::Mark => {
                    tracing::warn!(store_id = %id, "pool store broke: {}", workloads.message);
                    let now = Timestamp::now().to_string();
                    self.api
                        .patch(
                            id.as_str(),
                            &PatchParams::default(),
                            &Patch::Merge(guarded(now.into())),
                        )
                        .await
                        .map(drop)
                }
                Verdict::Clear => {
                    tracing::info!(store_id = %id, "pool store recovered");
                    self.api
                        .patch(
                            id.as_str(),
                            &PatchParams::default(),
                            &Patch::Merge(guarded(serde_json::Value::Null)),
                        )
                        .await
                        .map(drop)
                }
                Verdict::Replace => {
                    let why = format!("it broke while waiting in the pool: {}", workloads.message);
                    let params = DeleteParams {
                        preconditions: Some(Preconditions {
                            resource_version: rv,
                            uid: store.uid(),
                        }),
                        ..DeleteParams::default()
                    };
                    self.delete_with(id.as_str(), &why, &params).await?;
                    continue;
                }
            };
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn plan(&self, stores: &[&Store]) -> Vec<Step> {
        refill::plan(
            &self.settings.targets,
            stores,
            self.settings.max_stores,
            |s| self.older_than_timeout(s),
        )
    }

    fn older_than_timeout(&self, store: &Store) -> bool {
        let Some(created) = store.metadata.creation_timestamp.as_ref() else {
            return false;
        };
        let age = Timestamp::now().duration_since(created.0);
        Duration::try_from(age).is_ok_and(|age| age > self.settings.provision_timeout + STUCK_GRACE)
    }

    /// The gauges, and the time to Ready of stores claimed since the last pass.
    fn observe(&mut self, stores: &[&Store]) {
        for kind in super::status::of(&self.settings.targets, stores) {
            self.metrics
                .pool
                .sizes(&kind.kind(), kind.stores, kind.ready);
        }
        for s in stores {
            let Some(claimed) = claimed_at(s) else {
                continue;
            };
            let ready_at = s.status.as_ref().and_then(|st| st.ready_at.as_ref());
            let Some(ready_at) = ready_at.map(|t| t.0) else {
                continue;
            };
            // Ready as the owner's (not the pool's Ready before the claim), and seen by this term.
            if ready_at < claimed || claimed < self.started {
                continue;
            }
            if self.measured.insert(s.name_any()) {
                let took = ready_at.duration_since(claimed).as_secs_f64();
                self.metrics.pool.claim_ready(took);
            }
        }
        // Bounded by the stores there are.
        let names: HashSet<String> = stores.iter().map(|s| s.name_any()).collect();
        self.measured.retain(|n| names.contains(n));
    }

    async fn create(&self, kind: &PoolKind) -> Result<(), PassError> {
        for _ in 0..16 {
            let id = StoreId::random();
            let store = crate::stores::store_object(
                &self.settings.instance,
                &id,
                StoreSpec {
                    name: Some(POOL_TITLE.to_owned()),
                    engine: kind.engine,
                    owner: POOL_OWNER.to_owned(),
                    plan: Some(kind.plan.as_str().to_owned()),
                    release: None,
                    domains: Vec::new(),
                    identity_generation: 0,
                },
                (LABEL_POOL, kind.label_value()),
            );
            match self.api.create(&PostParams::default(), &store).await {
                Ok(_) => {
                    tracing::info!(store_id = %id, %kind, "pool store created");
                    self.record(Action::Create, &id, format!("pool store ({kind})"))
                        .await;
                    return Ok(());
                }
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        tracing::warn!(%kind, "could not pick a free store id for a pool store");
        Ok(())
    }

    async fn delete(&self, store_id: &str, why: &str) -> Result<(), PassError> {
        self.delete_with(store_id, why, &DeleteParams::default())
            .await
    }

    /// Deletes a pool store (a 404 or a failed precondition, 409: it is gone or changed, nothing
    /// to do) and records why.
    async fn delete_with(
        &self,
        store_id: &str,
        why: &str,
        params: &DeleteParams,
    ) -> Result<(), PassError> {
        match self.api.delete(store_id, params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(store_id, "pool store deleted: {why}");
        let id = StoreId::parse(store_id).expect("pool stores have store ids");
        self.record(Action::Delete, &id, format!("pool store: {why}"))
            .await;
        Ok(())
    }

    async fn record(&self, action: Action, id: &StoreId, detail: String) {
        self.audit
            .record(AuditEntry {
                actor: POOL_OWNER.to_owned(),
                action,
                store_id: Some(id.to_string()),
                store_owner: Some(POOL_OWNER.to_owned()),
                outcome: "accepted".into(),
                detail,
                remote_addr: None,
            })
            .await;
    }
}

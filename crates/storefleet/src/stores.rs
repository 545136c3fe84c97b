//! The stores service: the domain core behind the REST API. Creating (with quota, idempotency keys
//! and de-duplication by name), listing, reading, deleting and following stores. Handlers stay thin.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use either::Either;
use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::backups::BackupId;
use crate::backups::safety_net::{self, DeleteWith};
use crate::backups::service::{BackupService, BackupServiceError};
use crate::config::StoreUrls;
use crate::crd::{
    DEFAULT_INSTANCE, FINALIZER, LABEL_INSTANCE, LABEL_OWNER, Phase, Store, StoreSpec,
};
use crate::domain::{Engine, IdempotencyKey, Owner, Role, StoreId, StoreName, UserId};
use crate::metrics::Metrics;
use crate::plans::{PlanName, PlanTable, UnknownPlan, VolumeRefusal};
use crate::pool::{PoolKind, PoolTargets};
use crate::storage::{
    Action, AuditEntry, AuditLog, Database, Exclusive, IdempotencyStore, LockName, StoredAnswer,
    User,
};
use crate::store_feed::{FeedEvent, StoreFeed};
use crate::store_list::{self, Listing, StoreQuery};
use crate::store_reads::StoreReads;
use crate::view_cache::ViewCache;

/// A store as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct StoreView {
    #[schema(example = "store-7016ff")]
    pub store_id: String,
    #[schema(example = "My Shop")]
    pub name: String,
    pub engine: Engine,
    /// Provisioning, Ready, Failed, Deleting or Restoring.
    pub status: Phase,
    #[schema(example = "http://store-7016ff.localhost")]
    pub url: String,
    #[schema(example = "http://store-7016ff.localhost/wp-admin/")]
    pub admin_url: String,
    /// The store's namespace (= store id).
    pub namespace: String,
    pub owner: String,
    /// The size plan (the platform's default for a store that names none).
    #[schema(example = "small")]
    pub plan: String,
    pub created_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    /// What is happening now, or why it failed.
    pub message: Option<String>,
    pub conditions: Vec<ConditionView>,
    /// An unclaimed store of the warm pool (docs/pool.md): only admins see these. Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pool: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ConditionView {
    /// NamespaceReady, Released, WorkloadsReady, SetupComplete, Ready or MailConfigured.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: Option<DateTime<Utc>>,
}

/// A change of one store, for `?wait=true` and Server-Sent Events.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreChange {
    Updated(Box<StoreView>),
    Deleted,
}

/// Validated body of `POST /stores`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewStore {
    pub engine: Engine,
    pub name: Option<StoreName>,
    /// A plan of the platform's table; `None`: its default plan.
    pub plan: Option<PlanName>,
    /// A clone: the backup it is made from, checked (`crate::backups::clones`).
    pub clone: Option<crate::backups::clones::CloneSource>,
}

impl NewStore {
    /// Identifies the request for idempotency keys: same meaning, same fingerprint (formatting and
    /// surrounding whitespace of the name do not matter, nor naming the default plan or not). The
    /// default plan leaves the fingerprint as it was before plans, so keys stored then still match.
    fn fingerprint(&self, default_plan: &PlanName) -> String {
        let mut canonical = serde_json::json!({"engine": self.engine, "name": self.name.as_ref().map(StoreName::as_str)});
        if let Some(plan) = self.plan.as_ref().filter(|p| *p != default_plan) {
            canonical["plan"] = plan.as_str().into();
        }
        if let Some(clone) = &self.clone {
            canonical["from_backup"] = clone.backup_id.as_str().into();
        }
        hex(&Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Validated body of `PATCH /stores/{id}`: what to change (at least one of them).
#[derive(Clone, Debug, PartialEq)]
pub struct StoreUpdate {
    pub name: Option<StoreName>,
    /// A plan of the platform's table.
    pub plan: Option<PlanName>,
}

/// Who is asking (resolved from their token or session on every request), for ownership, isolation,
/// the quota and the audit log.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: UserId,
    /// The user's name: the owner of the stores they create.
    pub owner: Owner,
    pub role: Role,
    /// The user's own quota; the global `--max-stores` applies as well.
    pub max_stores: u32,
    pub remote_addr: Option<String>,
    /// The token or session the request came with (event streams end when it does).
    pub credential: Option<crate::api::auth::Credential>,
}

impl Caller {
    pub fn new(user: &User, remote_addr: Option<String>) -> Self {
        Self {
            user_id: user.user_id.clone(),
            owner: Owner::from(&user.name),
            role: user.role,
            max_stores: user.max_stores,
            remote_addr,
            credential: None,
        }
    }

    pub fn with_credential(mut self, credential: crate::api::auth::Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Admins see and manage every store; members only their own.
    pub fn may_see(&self, store_owner: &str) -> bool {
        self.is_admin() || self.owner.as_str() == store_owner
    }
}

/// How a create request ended.
#[derive(Debug)]
pub enum Created {
    /// A new store (`202`).
    New(StoreView),
    /// The owner already has a store of that name (`200`).
    Existing(StoreView),
    /// The idempotency key was used before with the same request: the first answer, verbatim.
    Replayed { status: u16, body: String },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("there is no store {0}")]
    NotFound(String),
    /// The global `--max-stores`.
    #[error("the limit of {max} store(s) is reached for this platform; delete a store first")]
    QuotaExceeded { max: u32 },
    /// The caller's own `max_stores`.
    #[error("your limit of {max} store(s) is reached; delete one of your stores first")]
    UserQuotaExceeded { max: u32 },
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("could not pick a free store id")]
    NoFreeId,
    /// Another of the owner's stores already has this name (names are unique per owner: a create
    /// with a taken name answers that store).
    #[error("you already have a store named {0:?}")]
    NameTaken(String),
    #[error("store {0} is being deleted")]
    Deleting(String),
    /// The final backup of a delete could not be asked for.
    #[error("{0}")]
    Backup(String),
    #[error(transparent)]
    UnknownPlan(#[from] UnknownPlan),
    /// The plan would shrink a volume, or grow one whose StorageClass cannot expand.
    #[error(transparent)]
    Volume(#[from] Box<VolumeRefusal>),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

pub struct StoreService {
    api: Api<Store>,
    /// For what a plan change must look at besides Stores: the store's PVCs and StorageClasses.
    client: kube::Client,
    plans: Arc<PlanTable>,
    instance: String,
    urls: StoreUrls,
    max_stores: u32,
    /// Holds the lock that serialises count-then-create across every replica (`storage/lock.rs`), so
    /// both quotas (per user and global) and idempotency keys hold under concurrent requests.
    db: Database,
    idempotency: IdempotencyStore,
    audit: AuditLog,
    /// `list` and `get` read the API's watch cache (with read-your-writes).
    reads: StoreReads,
    views: ViewCache,
    /// Store changes for event streams and `?wait=true`.
    feed: StoreFeed,
    /// The warm pool's kinds (`--pool`): a create of one of them claims a Ready pool store.
    pool: PoolTargets,
    metrics: Arc<Metrics>,
}

impl StoreService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        plans: Arc<PlanTable>,
        feed: StoreFeed,
        instance: String,
        urls: StoreUrls,
        max_stores: u32,
        db: Database,
        idempotency_ttl: std::time::Duration,
    ) -> Self {
        let api = Api::all(client.clone());
        Self {
            reads: StoreReads::new(feed.cache(), feed.version(), api.clone()),
            views: ViewCache::default(),
            feed,
            api,
            client,
            plans,
            instance,
            urls,
            max_stores,
            idempotency: db.idempotency(idempotency_ttl),
            audit: db.audit(),
            db,
            pool: PoolTargets::default(),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Creates of these kinds claim a Ready pool store when there is one (docs/pool.md).
    pub fn with_pool(mut self, pool: PoolTargets, metrics: Arc<Metrics>) -> Self {
        self.pool = pool;
        self.metrics = metrics;
        self
    }

    /// Count-then-create, one at a time across the replicas: the count is read from the API server
    /// (not a cache, which lags behind the creates just made) while this is held.
    async fn create_lock(&self) -> Result<Exclusive, sqlx::Error> {
        self.db
            .exclusive(LockName::StoreCreate {
                instance: &self.instance,
            })
            .await
    }

    /// The global quota: stores of this instance that may exist at once, whoever owns them.
    pub fn max_stores(&self) -> u32 {
        self.max_stores
    }

    /// The control plane instance whose stores (and rollouts) this service serves.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The platform's plans (requests name them; views show them).
    pub fn plans(&self) -> &PlanTable {
        &self.plans
    }

    pub async fn create(
        &self,
        caller: &Caller,
        new: NewStore,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, StoreError> {
        let _serialised = self.create_lock().await?;
        let fingerprint = new.fingerprint(self.plans.default_plan());
        if let Some(key) = &key
            && let Some(first) = self
                .idempotency
                .find(caller.owner.as_str(), key.as_str())
                .await?
        {
            if first.request_hash != fingerprint {
                self.deny(
                    caller,
                    "idempotency-key-reused",
                    format!(
                        "Idempotency-Key {:?} reused with another request",
                        key.as_str()
                    ),
                )
                .await;
                return Err(StoreError::IdempotencyKeyReused);
            }
            return Ok(Created::Replayed {
                status: first.status,
                body: first.body,
            });
        }
        // Read from the API server, not a cache: a cache would lag behind the creates just made.
        let existing: Vec<Store> = self
            .api
            .list(&self.list_params())
            .await?
            .items
            .into_iter()
            .filter(|s| self.is_ours(s))
            .collect();
        if let Some(name) = &new.name
            && let Some(same) = existing.iter().find(|s| {
                !s.deletion_requested()
                    && s.spec.owner == caller.owner.as_str()
                    && s.spec.name.as_deref() == Some(name.as_str())
            })
        {
            let view = self.view(same);
            self.remember(caller, key.as_ref(), &fingerprint, 200, &view)
                .await?;
            return Ok(Created::Existing(view));
        }
        // A claim takes a store the platform already counts: possible at the global limit too.
        let kind = self.pool_kind(&new);
        let claimable: Vec<&Store> = match &kind {
            Some(kind) => {
                let all: Vec<&Store> = existing.iter().collect();
                crate::pool::claim::candidates(kind, &all)
            }
            None => Vec::new(),
        };
        // Stores being deleted still count (their namespaces and volumes are still there).
        if existing.len() >= self.max_stores as usize && claimable.is_empty() {
            return Err(self.platform_limit_reached(caller).await);
        }
        let own = existing
            .iter()
            .filter(|s| s.spec.owner == caller.owner.as_str())
            .count();
        if own >= caller.max_stores as usize {
            self.deny(
                caller,
                "user-quota-exceeded",
                format!(
                    "{own} store(s) of {}; their limit is {}",
                    caller.owner, caller.max_stores
                ),
            )
            .await;
            return Err(StoreError::UserQuotaExceeded {
                max: caller.max_stores,
            });
        }
        if let Some(kind) = &kind {
            let claimed = crate::pool::claim::take(
                &self.api,
                kind,
                claimable,
                &caller.owner,
                new.name.as_ref(),
            )
            .await?;
            if let Some(store) = claimed {
                self.reads.wrote(&store, false);
                self.metrics.pool.claimed(kind);
                tracing::info!(store_id = %store.name_any(), owner = %caller.owner, %kind, "pool store claimed");
                return self
                    .created(caller, key, &fingerprint, &new, &store, " (from the pool)")
                    .await;
            }
            self.metrics.pool.fallback(kind, "empty");
            if existing.len() >= self.max_stores as usize {
                // Every claimable store went meanwhile: the limit holds as for any create.
                return Err(self.platform_limit_reached(caller).await);
            }
        }
        let store = self.create_with_free_id(caller, &new).await?;
        self.created(caller, key, &fingerprint, &new, &store, "")
            .await
    }

    /// `--max-stores` is reached: audited, and the error to answer.
    async fn platform_limit_reached(&self, caller: &Caller) -> StoreError {
        // Members read their own denials: the detail names the limit, not how many stores exist.
        self.deny(
            caller,
            "quota-exceeded",
            format!(
                "the platform limit of {} store(s) is reached",
                self.max_stores
            ),
        )
        .await;
        StoreError::QuotaExceeded {
            max: self.max_stores,
        }
    }

    /// The warm pool as this replica's cache has it (admins' `GET /pool`).
    pub fn pool_status(&self) -> Vec<crate::pool::status::PoolKindView> {
        let cached = self.feed.cache().state();
        let ours: Vec<&Store> = cached
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| self.is_ours(s))
            .collect();
        crate::pool::status::of(&self.pool, &ours)
    }

    /// The pool kind a create would claim from: none for a clone (it is made from its backup), nor
    /// for a kind the pool does not keep.
    fn pool_kind(&self, new: &NewStore) -> Option<PoolKind> {
        let kind = PoolKind {
            engine: new.engine,
            plan: self.plans.effective(new.plan.as_ref()).clone(),
        };
        (new.clone.is_none() && self.pool.of(&kind) > 0).then_some(kind)
    }

    /// After a create or a claim: the view, the audit entry (the same for both, but for
    /// `how`, which only admins read) and the idempotency record.
    async fn created(
        &self,
        caller: &Caller,
        key: Option<IdempotencyKey>,
        fingerprint: &str,
        new: &NewStore,
        store: &Store,
        how: &str,
    ) -> Result<Created, StoreError> {
        let view = self.view(store);
        tracing::info!(store_id = %view.store_id, owner = %caller.owner, "store created");
        self.audit
            .record(AuditEntry {
                actor: caller.owner.to_string(),
                action: Action::Create,
                store_id: Some(view.store_id.clone()),
                store_owner: Some(caller.owner.to_string()),
                outcome: "accepted".into(),
                detail: format!(
                    "engine {}, name {:?}, plan {}{how}",
                    new.engine.as_str(),
                    view.name,
                    view.plan
                ),
                remote_addr: caller.remote_addr.clone(),
            })
            .await;
        self.remember(caller, key.as_ref(), fingerprint, 202, &view)
            .await?;
        Ok(Created::New(view))
    }

    async fn create_with_free_id(
        &self,
        caller: &Caller,
        new: &NewStore,
    ) -> Result<Store, StoreError> {
        for _ in 0..16 {
            let id = StoreId::random();
            let mut store = store_object(
                &self.instance,
                &id,
                StoreSpec {
                    name: new.name.clone().map(StoreName::into_string),
                    engine: new.engine,
                    owner: caller.owner.to_string(),
                    // Always written: `kubectl get stores` shows it, and a later change of the
                    // platform's default plan does not resize stores made before.
                    plan: Some(self.plans.effective(new.plan.as_ref()).as_str().to_owned()),
                    release: None,
                    domains: Vec::new(),
                    identity_generation: 0,
                },
                (LABEL_OWNER, caller.owner.label_value()),
            );
            // A clone is one from birth: the clone controller gives it its restore.
            if let Some(clone) = &new.clone {
                store.metadata.annotations = Some(
                    [(
                        crate::backups::clones::ANNOTATION_FROM.to_owned(),
                        serde_json::to_string(clone).expect("clone sources serialise"),
                    )]
                    .into(),
                );
            }
            match self.api.create(&PostParams::default(), &store).await {
                Ok(created) => {
                    self.reads.wrote(&created, false);
                    return Ok(created);
                }
                // Taken (maybe by another instance): never reuse an id while it exists, draw again.
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::NoFreeId)
    }

    async fn remember(
        &self,
        caller: &Caller,
        key: Option<&IdempotencyKey>,
        fingerprint: &str,
        status: u16,
        view: &StoreView,
    ) -> Result<(), StoreError> {
        if let Some(key) = key {
            let answer = StoredAnswer {
                request_hash: fingerprint.to_owned(),
                status,
                body: serde_json::to_string(view).expect("views serialise"),
            };
            self.idempotency
                .save(
                    caller.owner.as_str(),
                    key.as_str(),
                    &answer,
                    Some(&view.store_id),
                )
                .await?;
        }
        Ok(())
    }

    /// Records a refused request (about no particular store) in the audit log.
    pub async fn deny(&self, caller: &Caller, outcome: &str, detail: String) {
        self.audit
            .record(AuditEntry {
                actor: caller.owner.to_string(),
                action: Action::Denied,
                store_id: None,
                store_owner: None,
                outcome: outcome.to_owned(),
                detail,
                remote_addr: caller.remote_addr.clone(),
            })
            .await;
    }

    /// Stores of this owner, counted as the quota counts them (deleting ones included).
    pub async fn count_owned(&self, owner: &Owner) -> Result<usize, StoreError> {
        Ok(self
            .reads
            .list(&self.list_params())
            .await?
            .iter()
            .filter(|s| self.is_ours(s) && s.spec.owner == owner.as_str())
            .count())
    }

    /// The stores the caller may see (admins: all of this instance) that `query` selects, oldest
    /// first, as `GET /stores` answers them: the JSON array, or one page
    /// (`store_list::page_json`). Only the selected stores' views are rendered, from per-store
    /// cached bytes.
    pub async fn list_json(
        &self,
        caller: &Caller,
        query: &StoreQuery,
    ) -> Result<Vec<u8>, StoreError> {
        let sorted = self.reads.list_in_order(&self.list_params()).await?;
        let visible = |s: &Store| self.is_ours(s) && caller.may_see(&s.spec.owner);
        let selection = store_list::select(&sorted, visible, query, phase_of);
        let items = self.views.render_list(&selection.stores, &sorted, |s| {
            view_of(s, &self.urls, self.plans.default_plan())
        });
        Ok(match query.listing {
            Listing::All => items,
            Listing::Page { .. } => store_list::page_json(items, selection.next.as_ref()),
        })
    }

    /// One store, if the caller may see it: another user's store is `NotFound`, exactly as one that
    /// does not exist (store ids of other users are not disclosed).
    pub async fn get(&self, caller: &Caller, id: &StoreId) -> Result<StoreView, StoreError> {
        Ok(self.view(&*self.get_store(caller, id).await?))
    }

    /// A Store as another room of this process just wrote it (e.g. the backup schedule): reads
    /// wait until the cache shows it, so the caller's next GET is not older than its own write.
    pub fn wrote(&self, store: &Store) {
        self.reads.wrote(store, false);
    }

    pub async fn get_store(&self, caller: &Caller, id: &StoreId) -> Result<Arc<Store>, StoreError> {
        let store = match self.reads.get(id.as_str()).await? {
            Some(store) if self.is_ours(&store) => store,
            _ => return Err(StoreError::NotFound(id.to_string())),
        };
        if caller.may_see(&store.spec.owner) {
            return Ok(store);
        }
        // Audited as about the owner's store: the owner and admins read it, the caller does not (an
        // entry of their own would tell them the store exists). Written in the background, so the
        // answer takes no longer than for a store that does not exist.
        let audit = self.audit.clone();
        let entry = AuditEntry {
            actor: caller.owner.to_string(),
            action: Action::Denied,
            store_id: Some(id.to_string()),
            store_owner: Some(store.spec.owner.clone()),
            outcome: "not-owner".into(),
            detail: "a store of another user; answered as if it did not exist".into(),
            remote_addr: caller.remote_addr.clone(),
        };
        tokio::spawn(async move { audit.record(entry).await });
        Err(StoreError::NotFound(id.to_string()))
    }

    /// Changes a store: its name (its title in WordPress) and/or its size plan. The Store's spec
    /// changes, its generation with it, and the controller upgrades the release. What is already so
    /// changes nothing (no new generation, no upgrade). Read from the API server, as a create is:
    /// names are unique per owner, and a plan is checked against the volumes as they are now.
    pub async fn update(
        &self,
        caller: &Caller,
        id: &StoreId,
        update: StoreUpdate,
    ) -> Result<StoreView, StoreError> {
        let store = self.get_store(caller, id).await?;
        if store.deletion_requested() {
            return Err(StoreError::Deleting(id.to_string()));
        }
        let old_name = store.display_name();
        let name = update
            .name
            .filter(|n| store.spec.name.as_deref() != Some(n.as_str()));
        let old_plan = self.plan_of(&store);
        let plan = update.plan.filter(|p| *p != old_plan);
        if name.is_none() && plan.is_none() {
            return Ok(self.view(&store));
        }
        if let Some(plan) = &plan
            && let Err(refusal) = self.check_plan(id, plan).await
        {
            self.deny_change(caller, id, &store, &refusal).await;
            return Err(refusal);
        }
        // Serialised with creates: a create and a rename must not both take one name.
        let _one_at_a_time = self.create_lock().await?;
        if let Some(name) = &name {
            let taken = self
                .api
                .list(&self.list_params())
                .await?
                .items
                .into_iter()
                .any(|s| {
                    self.is_ours(&s)
                        && !s.deletion_requested()
                        && s.name_any() != id.as_str()
                        && s.spec.owner == store.spec.owner
                        && s.spec.name.as_deref() == Some(name.as_str())
                });
            if taken {
                return Err(StoreError::NameTaken(name.to_string()));
            }
        }
        let mut spec = serde_json::Map::new();
        let mut changed = Vec::new();
        if let Some(name) = &name {
            spec.insert("name".into(), name.as_str().into());
            changed.push(format!("name {old_name:?} → {:?}", name.as_str()));
        }
        if let Some(plan) = &plan {
            spec.insert("plan".into(), plan.as_str().into());
            changed.push(format!("plan {old_plan} → {plan}"));
        }
        let patch = serde_json::json!({ "spec": spec });
        let updated = self
            .api
            .patch(id.as_str(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.reads.wrote(&updated, false);
        let detail = changed.join("; ");
        tracing::info!(store_id = %id, owner = %caller.owner, "store changed: {detail}");
        self.audit
            .record(AuditEntry {
                actor: caller.owner.to_string(),
                action: Action::Update,
                store_id: Some(id.to_string()),
                store_owner: Some(store.spec.owner.clone()),
                outcome: "accepted".into(),
                detail,
                remote_addr: caller.remote_addr.clone(),
            })
            .await;
        Ok(self.view(&updated))
    }

    /// The plan a store has: its own, or the platform's default when it names none.
    fn plan_of(&self, store: &Store) -> PlanName {
        let own = store
            .spec
            .plan
            .as_deref()
            .and_then(|p| PlanName::parse(p).ok());
        self.plans.effective(own.as_ref()).clone()
    }

    /// Whether `plan` may be given to the store as its volumes are: grow, never shrink, and grow
    /// only on a StorageClass that allows expansion (plans::volumes).
    async fn check_plan(&self, id: &StoreId, plan: &PlanName) -> Result<(), StoreError> {
        let sizes = self.plans.get(plan)?;
        let existing = crate::plans::cluster::existing_volumes(&self.client, id).await?;
        crate::plans::volumes::check_change(plan.as_str(), sizes, &existing)?;
        Ok(())
    }

    /// A refused change of a store, in the audit log (its owner and admins read it).
    async fn deny_change(&self, caller: &Caller, id: &StoreId, store: &Store, why: &StoreError) {
        let outcome = match why {
            StoreError::UnknownPlan(_) => "unknown-plan",
            StoreError::Volume(refusal) => match **refusal {
                VolumeRefusal::Shrink { .. } => "volume-shrink",
                VolumeRefusal::NotExpandable { .. } => "volume-not-expandable",
            },
            _ => return,
        };
        self.audit
            .record(AuditEntry {
                actor: caller.owner.to_string(),
                action: Action::Denied,
                store_id: Some(id.to_string()),
                store_owner: Some(store.spec.owner.clone()),
                outcome: outcome.into(),
                detail: why.to_string(),
                remote_addr: caller.remote_addr.clone(),
            })
            .await;
    }

    /// Starts deleting; deleting a store already being deleted is fine. With `safety_net` (the
    /// platform has a backup target), a Ready store first gets a final backup and the controller
    /// deletes it once that succeeded (`backups::safety_net`); `skip_final_backup` (admins only,
    /// checked by the caller) deletes at once. Answers the final backup's id when there is one.
    pub async fn delete(
        &self,
        caller: &Caller,
        id: &StoreId,
        safety_net: Option<&BackupService>,
        skip_final_backup: bool,
    ) -> Result<Option<BackupId>, StoreError> {
        let store = self.get_store(caller, id).await?;
        let mut final_backup = None;
        let (outcome, detail) = if store.is_deleting() {
            ("already-deleting", String::new())
        } else if store.deletion_requested() && skip_final_backup {
            // An admin who does not want to wait for the final backup under way.
            self.delete_now(id, &store).await?;
            tracing::info!(store_id = %id, owner = %caller.owner, "store deletion requested: final backup skipped while it ran");
            (
                "accepted",
                "final backup skipped by an admin while it ran".to_owned(),
            )
        } else if store.deletion_requested() {
            final_backup = safety_net::final_backup_of(&store);
            ("already-deleting", String::new())
        } else {
            match safety_net::decide(&store, safety_net.is_some(), skip_final_backup) {
                DeleteWith::FinalBackup(backup) => {
                    let backups = safety_net.expect("decided with a safety net");
                    let mut marked =
                        safety_net::begin(&self.api, backups, &store, id, &backup).await;
                    // The store changed since it was read (the read may come from a cache that
                    // lags): once more against the API server's own copy, unless someone else
                    // asked for its deletion meanwhile.
                    if let Err(BackupServiceError::Kube(kube::Error::Api(e))) = &marked
                        && e.code == 409
                    {
                        match self.api.get_opt(id.as_str()).await? {
                            Some(fresh) if !fresh.deletion_requested() => {
                                marked = safety_net::begin(&self.api, backups, &fresh, id, &backup)
                                    .await;
                            }
                            Some(_) => return Err(StoreError::Deleting(id.to_string())),
                            None => return Err(StoreError::NotFound(id.to_string())),
                        }
                    }
                    match marked {
                        Ok(marked) => self.reads.wrote(&marked, false),
                        Err(BackupServiceError::Kube(kube::Error::Api(e))) if e.code == 409 => {
                            return Err(StoreError::Deleting(id.to_string()));
                        }
                        Err(BackupServiceError::Kube(e)) => return Err(e.into()),
                        Err(e) => return Err(StoreError::Backup(e.to_string())),
                    }
                    tracing::info!(store_id = %id, owner = %caller.owner, backup = %backup, "store deletion requested: final backup first");
                    let detail = format!("final backup {backup} first");
                    final_backup = Some(backup);
                    ("final-backup", detail)
                }
                DeleteWith::NoFinalBackup(why) => {
                    self.delete_now(id, &store).await?;
                    tracing::info!(store_id = %id, owner = %caller.owner, "store deletion requested ({why})");
                    let detail = if safety_net.is_some() {
                        why.to_owned()
                    } else {
                        String::new()
                    };
                    ("accepted", detail)
                }
            }
        };
        self.audit
            .record(AuditEntry {
                actor: caller.owner.to_string(),
                action: Action::Delete,
                store_id: Some(id.to_string()),
                store_owner: Some(store.spec.owner.clone()),
                outcome: outcome.into(),
                detail,
                remote_addr: caller.remote_addr.clone(),
            })
            .await;
        Ok(final_backup)
    }

    async fn delete_now(&self, id: &StoreId, store: &Store) -> Result<(), StoreError> {
        // Foreground: the garbage collector deletes the store's namespace (owned by the Store)
        // while the finalizer holds the Store, so it is gone even if the controller may not delete it.
        match self
            .api
            .delete(id.as_str(), &DeleteParams::foreground())
            .await
        {
            // Marked for deletion (the finalizer holds it), or already gone.
            Ok(Either::Left(marked)) => self.reads.wrote(&marked, true),
            Ok(Either::Right(_)) => self.reads.wrote_gone(store),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                return Err(StoreError::NotFound(id.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Changes of one store: its state at the start (when this process has seen it), then every
    /// change, then `Deleted` (and the end). From the one shared watch (`store_feed`): no API-server
    /// watch per caller. Check access with [`StoreService::get`] first; a store's owner never changes.
    pub fn changes(
        &self,
        id: &StoreId,
    ) -> impl Stream<Item = StoreChange> + Send + 'static + use<> {
        let mut feed = self.feed.subscribe();
        let cache = self.feed.cache();
        let id = id.to_string();
        let instance = self.instance.clone();
        let urls = self.urls.clone();
        let default_plan = self.plans.default_plan().clone();
        // Read-your-writes for streams too: a change older than this process's own last write of
        // the store (the pool's view of a store just claimed, say) is not news, it is the past.
        let floor = self.reads.floor(&id);
        let outdated = move |s: &Store| {
            floor.is_some_and(|floor| {
                s.resource_version()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|v| v < floor)
            })
        };
        let change = move |s: &Store| {
            if belongs_to(s, &instance) {
                StoreChange::Updated(Box::new(view_of(s, &urls, &default_plan)))
            } else {
                StoreChange::Deleted
            }
        };
        async_stream::stream! {
            let key = ObjectRef::<Store>::new(&id);
            // Absent after a re-list counts as gone only for a store this stream has seen: a store
            // created a moment ago may not have reached the cache yet.
            let mut seen = false;
            if let Some(s) = cache.get(&key).filter(|s| !outdated(s)) {
                seen = true;
                let first = change(&s);
                let gone = first == StoreChange::Deleted;
                yield first;
                if gone {
                    return;
                }
            }
            while let Some(event) = feed.next().await {
                let out = match event {
                    FeedEvent::Changed(s) if s.name_any() == id && !outdated(&s) => {
                        seen = true;
                        change(&s)
                    }
                    FeedEvent::Deleted(s) if s.name_any() == id => StoreChange::Deleted,
                    FeedEvent::Resynced => match cache.get(&key) {
                        Some(s) if outdated(&s) => continue,
                        Some(s) => {
                            seen = true;
                            change(&s)
                        }
                        None if seen => StoreChange::Deleted,
                        None => continue,
                    },
                    _ => continue,
                };
                let gone = out == StoreChange::Deleted;
                yield out;
                if gone {
                    break;
                }
            }
        }
    }

    /// Waits (on the shared watch) until the store is Ready or Failed, or `limit` passes. `None`: it is gone.
    pub async fn wait_settled(
        &self,
        caller: &Caller,
        id: &StoreId,
        limit: Duration,
    ) -> Result<Option<StoreView>, StoreError> {
        let settled = self.changes(id).filter(|change| {
            futures::future::ready(match change {
                StoreChange::Updated(v) => matches!(v.status, Phase::Ready | Phase::Failed),
                StoreChange::Deleted => true,
            })
        });
        let mut settled = std::pin::pin!(settled);
        match tokio::time::timeout(limit, settled.next()).await {
            Ok(Some(StoreChange::Updated(view))) => Ok(Some(*view)),
            Ok(Some(StoreChange::Deleted) | None) => Ok(None),
            Err(_) => match self.get(caller, id).await {
                Ok(view) => Ok(Some(view)),
                Err(StoreError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Stores of this instance by phase (for metrics).
    pub fn is_ours(&self, store: &Store) -> bool {
        belongs_to(store, &self.instance)
    }

    fn list_params(&self) -> ListParams {
        if self.instance == DEFAULT_INSTANCE {
            ListParams::default()
        } else {
            ListParams::default().labels(&format!("{LABEL_INSTANCE}={}", self.instance))
        }
    }

    /// The shared watch of Stores (event streams).
    pub fn feed(&self) -> &StoreFeed {
        &self.feed
    }

    pub fn view(&self, store: &Store) -> StoreView {
        view_of(store, &self.urls, self.plans.default_plan())
    }
}

/// A new Store of `instance`, labelled with it and `label`, with the cleanup finalizer set at birth
/// (so that even a store deleted before the controller saw it goes through cleanup).
pub(crate) fn store_object(
    instance: &str,
    id: &StoreId,
    spec: StoreSpec,
    label: (&str, String),
) -> Store {
    let mut store = Store::new(id.as_str(), spec);
    store.metadata.labels = Some(
        [
            (LABEL_INSTANCE.to_owned(), instance.to_owned()),
            (label.0.to_owned(), label.1),
        ]
        .into(),
    );
    store.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    store
}

fn belongs_to(store: &Store, instance: &str) -> bool {
    store.instance() == instance
}

/// The status a store's view reports (and `GET /stores?status=` filters by).
pub(crate) fn phase_of(store: &Store) -> Phase {
    if store.deletion_requested() {
        return Phase::Deleting;
    }
    if crate::pool::claim::awaiting_identity(store) {
        return Phase::Provisioning;
    }
    match store.phase().unwrap_or(Phase::Provisioning) {
        // Provisioned, but the backup is not in yet: not the shop its owner asked for.
        Phase::Ready if crate::backups::clones::pending(store).is_some() => Phase::Restoring,
        p => p,
    }
}

pub(crate) fn view_of(store: &Store, urls: &StoreUrls, default_plan: &PlanName) -> StoreView {
    let id = store.name_any();
    let status = store.status.clone().unwrap_or_default();
    let final_backup = crate::backups::safety_net::final_backup_of(store);
    let clone = crate::backups::clones::pending(store);
    let phase = phase_of(store);
    let claimed = crate::pool::claim::claimed_at(store);
    let url = status
        .url
        .clone()
        .unwrap_or_else(|| match StoreId::parse(&id) {
            Ok(sid) => urls.url(&sid),
            Err(_) => String::new(),
        });
    StoreView {
        name: store.display_name(),
        engine: store.spec.engine,
        status: phase,
        admin_url: format!("{url}/wp-admin/"),
        url,
        namespace: id.clone(),
        owner: store.spec.owner.clone(),
        plan: store
            .spec
            .plan
            .clone()
            .unwrap_or_else(|| default_plan.to_string()),
        // A claimed pool store was born for its owner when it was claimed; its Ready before that
        // was the pool's.
        created_at: match &claimed {
            Some(at) => DateTime::from_timestamp(at.as_second(), at.subsec_nanosecond() as u32),
            None => store
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(to_chrono),
        },
        ready_at: status
            .ready_at
            .as_ref()
            .filter(|t| claimed.is_none_or(|at| t.0 >= at))
            .and_then(to_chrono),
        message: if let (false, Some(backup)) = (store.is_deleting(), &final_backup) {
            Some(format!("taking a final backup ({backup}) before deleting"))
        } else if store.is_deleting() && status.phase != Some(Phase::Deleting) {
            Some("deletion requested".into())
        } else if let Some(why) = crate::backups::safety_net::cancelled_because(store) {
            Some(why.to_owned())
        } else if let (Some(c), Some(Phase::Ready)) = (&clone, status.phase) {
            Some(format!(
                "about to restore backup {} of store {} into this new store",
                c.backup_id, c.store_id
            ))
        } else {
            status.message.clone()
        },
        conditions: status
            .conditions
            .iter()
            .map(|c| ConditionView {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: to_chrono(&c.last_transition_time),
            })
            .collect(),
        pool: crate::pool::refill::kind_label(store).is_some(),
        store_id: id,
    }
}

/// A Kubernetes time as the API shows times (also for backups and restores).
pub(crate) fn to_chrono(t: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(
        t.0.as_second(),
        u32::try_from(t.0.subsec_nanosecond()).unwrap_or(0),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_formatting_only() {
        let a = NewStore {
            engine: Engine::Woocommerce,
            name: Some(StoreName::parse(" My Shop ").unwrap()),
            plan: None,
            clone: None,
        };
        let b = NewStore {
            engine: Engine::Woocommerce,
            name: Some(StoreName::parse("My Shop").unwrap()),
            plan: None,
            clone: None,
        };
        let c = NewStore {
            engine: Engine::Woocommerce,
            name: Some(StoreName::parse("My Other Shop").unwrap()),
            plan: None,
            clone: None,
        };
        let d = NewStore {
            engine: Engine::Woocommerce,
            name: None,
            plan: None,
            clone: None,
        };
        let small = PlanName::parse("small").unwrap();
        let fp = |n: &NewStore| n.fingerprint(&small);
        assert_eq!(fp(&a), fp(&b));
        assert_ne!(fp(&a), fp(&c));
        assert_ne!(fp(&a), fp(&d));
        // Naming the default plan is not naming one; another plan is another request.
        let named_default = NewStore {
            plan: Some(small.clone()),
            ..d.clone()
        };
        assert_eq!(fp(&named_default), fp(&d));
        let medium = NewStore {
            plan: Some(PlanName::parse("medium").unwrap()),
            ..d.clone()
        };
        assert_ne!(fp(&medium), fp(&d));
        // A clone is another request than a new store, and clones of two backups are two.
        let source = |backup: &str| crate::backups::clones::CloneSource {
            backup_id: crate::backups::BackupId::parse(backup).unwrap(),
            store_id: crate::domain::StoreId::parse("store-abc123").unwrap(),
            site_url: "http://store-abc123.localhost".into(),
        };
        let clone = |backup: &str| NewStore {
            clone: Some(source(backup)),
            ..d.clone()
        };
        assert_ne!(fp(&clone("backup-20261201-221500-3fa2c1")), fp(&d));
        assert_ne!(
            fp(&clone("backup-20261201-221500-3fa2c1")),
            fp(&clone("backup-20261201-221500-3fa2c2"))
        );
        // Keys stored before plans existed still match (the canonical JSON has no `plan`).
        assert_eq!(
            fp(&d),
            hex(&Sha256::digest(br#"{"engine":"woocommerce","name":null}"#))
        );
    }

    #[test]
    fn views_show_provisioning_before_the_controller_writes() {
        let urls = StoreUrls {
            scheme: crate::config::UrlScheme::Http,
            base_domain: "localhost".into(),
        };
        let store = Store::new(
            "store-00ff00",
            StoreSpec {
                name: Some("Shop".into()),
                engine: Engine::Woocommerce,
                owner: "admin".into(),
                plan: None,
                release: None,
                domains: Vec::new(),
                identity_generation: 0,
            },
        );
        let v = view_of(&store, &urls, &PlanName::parse("small").unwrap());
        assert_eq!(v.plan, "small");
        assert_eq!(v.status, Phase::Provisioning);
        assert_eq!(v.url, "http://store-00ff00.localhost");
        assert_eq!(v.admin_url, "http://store-00ff00.localhost/wp-admin/");
        assert_eq!(v.namespace, "store-00ff00");
        assert_eq!(v.name, "Shop");
    }
}

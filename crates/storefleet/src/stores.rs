//! The stores service: the domain core behind the REST API. Creating (with quota, idempotency keys
//! and de-duplication by name), listing, reading, deleting and following stores. Handlers stay thin.
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::config::StoreUrls;
use crate::crd::{
    DEFAULT_INSTANCE, FINALIZER, LABEL_INSTANCE, LABEL_OWNER, Phase, Store, StoreSpec,
};
use crate::domain::{Engine, IdempotencyKey, Owner, StoreId, StoreName};
use crate::storage::{Action, AuditEntry, AuditLog, IdempotencyStore, StoredAnswer};

/// A store as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct StoreView {
    #[schema(example = "store-7016ff")]
    pub store_id: String,
    #[schema(example = "My Shop")]
    pub name: String,
    pub engine: Engine,
    /// Provisioning, Ready, Failed or Deleting.
    pub status: Phase,
    #[schema(example = "http://store-7016ff.localhost")]
    pub url: String,
    #[schema(example = "http://store-7016ff.localhost/wp-admin/")]
    pub admin_url: String,
    /// The store's namespace (= store id).
    pub namespace: String,
    pub owner: String,
    pub created_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    /// What is happening now, or why it failed.
    pub message: Option<String>,
    pub conditions: Vec<ConditionView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ConditionView {
    /// NamespaceReady, Released, WorkloadsReady, SetupComplete or Ready.
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
}

impl NewStore {
    /// Identifies the request for idempotency keys: same meaning, same fingerprint (formatting and
    /// surrounding whitespace of the name do not matter).
    fn fingerprint(&self) -> String {
        let canonical = serde_json::json!({"engine": self.engine, "name": self.name.as_ref().map(StoreName::as_str)});
        hex(&Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Who is asking, for ownership and the audit log.
#[derive(Clone, Debug)]
pub struct Caller {
    pub owner: Owner,
    pub remote_addr: Option<String>,
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
    #[error("the limit of {max} store(s) is reached; delete a store first")]
    QuotaExceeded { max: u32 },
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("could not pick a free store id")]
    NoFreeId,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

pub struct StoreService {
    api: Api<Store>,
    instance: String,
    urls: StoreUrls,
    max_stores: u32,
    /// Serialises count-then-create, so the quota holds under concurrent requests. One control plane
    /// per instance is the deployment model; several replicas would need a lease instead.
    create_lock: tokio::sync::Mutex<()>,
    idempotency: IdempotencyStore,
    audit: AuditLog,
}

impl StoreService {
    pub fn new(
        api: Api<Store>,
        instance: String,
        urls: StoreUrls,
        max_stores: u32,
        idempotency: IdempotencyStore,
        audit: AuditLog,
    ) -> Self {
        Self {
            api,
            instance,
            urls,
            max_stores,
            create_lock: tokio::sync::Mutex::new(()),
            idempotency,
            audit,
        }
    }

    /// The quota: stores that may exist at once.
    pub fn max_stores(&self) -> u32 {
        self.max_stores
    }

    pub async fn create(
        &self,
        caller: &Caller,
        new: NewStore,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, StoreError> {
        let _serialised = self.create_lock.lock().await;
        let fingerprint = new.fingerprint();
        if let Some(key) = &key
            && let Some(first) = self
                .idempotency
                .find(caller.owner.as_str(), key.as_str())
                .await?
        {
            if first.request_hash != fingerprint {
                self.deny(
                    caller,
                    None,
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
                !s.is_deleting()
                    && s.spec.owner == caller.owner.as_str()
                    && s.spec.name.as_deref() == Some(name.as_str())
            })
        {
            let view = self.view(same);
            self.remember(caller, key.as_ref(), &fingerprint, 200, &view)
                .await?;
            return Ok(Created::Existing(view));
        }
        if existing.len() >= self.max_stores as usize {
            self.deny(
                caller,
                None,
                "quota-exceeded",
                format!(
                    "{} stores exist; the limit is {}",
                    existing.len(),
                    self.max_stores
                ),
            )
            .await;
            return Err(StoreError::QuotaExceeded {
                max: self.max_stores,
            });
        }
        let store = self.create_with_free_id(caller, &new).await?;
        let view = self.view(&store);
        tracing::info!(store_id = %view.store_id, owner = %caller.owner, "store created");
        self.audit
            .record(AuditEntry {
                actor: caller.owner.to_string(),
                action: Action::Create,
                store_id: Some(view.store_id.clone()),
                outcome: "accepted".into(),
                detail: format!("engine {}, name {:?}", new.engine.as_str(), view.name),
                remote_addr: caller.remote_addr.clone(),
            })
            .await;
        self.remember(caller, key.as_ref(), &fingerprint, 202, &view)
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
            let mut store = Store::new(
                id.as_str(),
                StoreSpec {
                    name: new.name.clone().map(StoreName::into_string),
                    engine: new.engine,
                    owner: caller.owner.to_string(),
                },
            );
            store.metadata.labels = Some(
                [
                    (LABEL_INSTANCE.to_owned(), self.instance.clone()),
                    (LABEL_OWNER.to_owned(), caller.owner.label_value()),
                ]
                .into(),
            );
            // Set at birth, so that even a store deleted before the controller saw it goes through cleanup.
            store.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
            match self.api.create(&PostParams::default(), &store).await {
                Ok(created) => return Ok(created),
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

    /// Records a refused request in the audit log.
    pub async fn deny(
        &self,
        caller: &Caller,
        store_id: Option<&str>,
        outcome: &str,
        detail: String,
    ) {
        self.audit
            .record(AuditEntry {
                actor: caller.owner.to_string(),
                action: Action::Denied,
                store_id: store_id.map(str::to_owned),
                outcome: outcome.to_owned(),
                detail,
                remote_addr: caller.remote_addr.clone(),
            })
            .await;
    }

    pub async fn list(&self) -> Result<Vec<StoreView>, StoreError> {
        let mut stores: Vec<Store> = self
            .api
            .list(&self.list_params())
            .await?
            .items
            .into_iter()
            .filter(|s| self.is_ours(s))
            .collect();
        stores.sort_by(|a, b| {
            a.creation_timestamp()
                .cmp(&b.creation_timestamp())
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
        Ok(stores.iter().map(|s| self.view(s)).collect())
    }

    pub async fn get(&self, id: &StoreId) -> Result<StoreView, StoreError> {
        Ok(self.view(&self.get_store(id).await?))
    }

    async fn get_store(&self, id: &StoreId) -> Result<Store, StoreError> {
        match self.api.get_opt(id.as_str()).await? {
            Some(store) if self.is_ours(&store) => Ok(store),
            _ => Err(StoreError::NotFound(id.to_string())),
        }
    }

    /// Starts deleting; deleting a store already being deleted is fine.
    pub async fn delete(&self, caller: &Caller, id: &StoreId) -> Result<(), StoreError> {
        let store = self.get_store(id).await?;
        let outcome = if store.is_deleting() {
            "already-deleting"
        } else {
            // Foreground: the garbage collector deletes the store's namespace (owned by the Store)
            // while the finalizer holds the Store, so it is gone even if the controller may not delete it.
            match self
                .api
                .delete(id.as_str(), &DeleteParams::foreground())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    return Err(StoreError::NotFound(id.to_string()));
                }
                Err(e) => return Err(e.into()),
            }
            tracing::info!(store_id = %id, owner = %caller.owner, "store deletion requested");
            "accepted"
        };
        self.audit
            .record(AuditEntry {
                actor: caller.owner.to_string(),
                action: Action::Delete,
                store_id: Some(id.to_string()),
                outcome: outcome.into(),
                detail: String::new(),
                remote_addr: caller.remote_addr.clone(),
            })
            .await;
        Ok(())
    }

    /// Changes of one store: its state at the start, then every change, then `Deleted` (and the end).
    pub fn changes(
        &self,
        id: &StoreId,
    ) -> impl Stream<Item = StoreChange> + Send + 'static + use<> {
        let fields = format!("metadata.name={id}");
        let api = self.api.clone();
        let instance = self.instance.clone();
        let urls = self.urls.clone();
        let events = watcher(api, watcher::Config::default().fields(&fields)).default_backoff();
        // A (re)list that does not contain the store means it is gone, even if the Delete was missed.
        events
            .scan((false, false), move |(seen, done), event| {
                let out = match event {
                    _ if *done => return futures::future::ready(None),
                    Ok(watcher::Event::Init) => {
                        *seen = false;
                        None
                    }
                    Ok(watcher::Event::InitApply(s) | watcher::Event::Apply(s)) => {
                        *seen = true;
                        if belongs_to(&s, &instance) {
                            Some(StoreChange::Updated(Box::new(view_of(&s, &urls))))
                        } else {
                            *done = true;
                            Some(StoreChange::Deleted)
                        }
                    }
                    Ok(watcher::Event::InitDone) if !*seen => {
                        *done = true;
                        Some(StoreChange::Deleted)
                    }
                    Ok(watcher::Event::InitDone) => None,
                    Ok(watcher::Event::Delete(_)) => {
                        *done = true;
                        Some(StoreChange::Deleted)
                    }
                    Err(e) => {
                        tracing::warn!("watching a store: {e}");
                        None
                    }
                };
                futures::future::ready(Some(out))
            })
            .filter_map(futures::future::ready)
    }

    /// Waits (on a watch) until the store is Ready or Failed, or `limit` passes. `None`: it is gone.
    pub async fn wait_settled(
        &self,
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
            Err(_) => match self.get(id).await {
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

    pub fn view(&self, store: &Store) -> StoreView {
        view_of(store, &self.urls)
    }
}

fn belongs_to(store: &Store, instance: &str) -> bool {
    store.instance() == instance
}

fn view_of(store: &Store, urls: &StoreUrls) -> StoreView {
    let id = store.name_any();
    let status = store.status.clone().unwrap_or_default();
    let phase = if store.is_deleting() {
        Phase::Deleting
    } else {
        status.phase.unwrap_or(Phase::Provisioning)
    };
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
        created_at: store
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(to_chrono),
        ready_at: status.ready_at.as_ref().and_then(to_chrono),
        message: if store.is_deleting() && status.phase != Some(Phase::Deleting) {
            Some("deletion requested".into())
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
        store_id: id,
    }
}

fn to_chrono(t: &Time) -> Option<DateTime<Utc>> {
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
        };
        let b = NewStore {
            engine: Engine::Woocommerce,
            name: Some(StoreName::parse("My Shop").unwrap()),
        };
        let c = NewStore {
            engine: Engine::Woocommerce,
            name: Some(StoreName::parse("My Other Shop").unwrap()),
        };
        let d = NewStore {
            engine: Engine::Woocommerce,
            name: None,
        };
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), d.fingerprint());
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
            },
        );
        let v = view_of(&store, &urls);
        assert_eq!(v.status, Phase::Provisioning);
        assert_eq!(v.url, "http://store-00ff00.localhost");
        assert_eq!(v.admin_url, "http://store-00ff00.localhost/wp-admin/");
        assert_eq!(v.namespace, "store-00ff00");
        assert_eq!(v.name, "Shop");
    }
}

//! The domains core behind `/stores/{id}/domains`: who may, how many, claim, then the Store's
//! `spec.domains` (so the controller upgrades the release), audit. Handlers stay thin.
//!
//! Order, so that a refusal or a failure leaves nothing behind: the store is checked (visible,
//! not deleting, under its limit) before anything is written; the claim comes next (the one step
//! that can lose a race, decided by the API server); then the Store's spec, written against the
//! resourceVersion just read (a concurrent change of the same store is re-read, never lost); a
//! failure after the claim releases the claim this request made.
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use utoipa::ToSchema;

use super::claim::{self, Claimed};
use super::name::{DomainName, DomainNameError};
use super::types::{DomainClaim, DomainState};
use crate::crd::{Store, StoreDomain};
use crate::domain::StoreId;
use crate::storage::{Action, AuditEntry, AuditLog};
use crate::stores::{Caller, StoreError, StoreService};

/// Platform settings of custom domains.
#[derive(Clone, Debug)]
pub struct DomainSettings {
    /// The platform's base domain: never a store's own domain, nor anything under it.
    pub base_domain: String,
    /// Domains one store may have (`--max-domains-per-store`).
    pub max_per_store: u32,
}

/// The default of `--max-domains-per-store`: a shop with a few brands or country domains.
pub const DEFAULT_MAX_PER_STORE: u32 = 5;

/// One of a store's domains as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DomainView {
    /// In ASCII (punycode), lowercase: what DNS, the route and the certificate use.
    #[schema(example = "xn--bcher-kva.example.com")]
    pub domain: String,
    /// The same name as people read it.
    #[schema(example = "bücher.example.com")]
    pub display_name: String,
    /// WordPress's `home`/`siteurl` use it; the platform host stays an alias.
    pub primary: bool,
    /// WaitingForDns, CertificatePending, Active or Failed (WaitingForDns until first checked).
    pub state: DomainState,
    pub message: String,
}

/// How a `PUT` ended.
#[derive(Debug, PartialEq)]
pub enum Put {
    Added(DomainView),
    /// Already the store's: its `primary` flag now as asked.
    Kept(DomainView),
}

#[derive(Debug, thiserror::Error)]
pub enum DomainsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invalid(#[from] DomainNameError),
    /// Another store holds it; which one is not said.
    #[error("{0} is already in use by another store")]
    Taken(String),
    #[error("this store already has {max} domain(s), the platform's limit; remove one first")]
    LimitReached { max: u32 },
    /// The Store changed under every attempt to write it.
    #[error("store {0} kept changing while its domains were written; try again")]
    Busy(String),
    #[error("store {store} has no domain {domain}")]
    NotFound { store: String, domain: String },
}

impl From<kube::Error> for DomainsError {
    fn from(e: kube::Error) -> Self {
        Self::Store(StoreError::Kube(e))
    }
}

pub struct DomainService {
    client: Client,
    stores: Arc<StoreService>,
    audit: AuditLog,
    settings: DomainSettings,
}

/// Optimistic writes of one Store's spec: re-read and retry this often on a conflict.
const WRITE_ATTEMPTS: usize = 5;

impl DomainService {
    pub fn new(
        client: Client,
        stores: Arc<StoreService>,
        audit: AuditLog,
        settings: DomainSettings,
    ) -> Self {
        Self {
            client,
            stores,
            audit,
            settings,
        }
    }

    pub fn settings(&self) -> &DomainSettings {
        &self.settings
    }

    /// The store's domains, primary first, then by name, with their state.
    pub async fn list(
        &self,
        caller: &Caller,
        id: &StoreId,
    ) -> Result<Vec<DomainView>, DomainsError> {
        let store = self.visible_store(caller, id).await?;
        let mut out = Vec::new();
        for d in &store.spec.domains {
            let claim = claim::api(&self.client).get_opt(&d.name).await?;
            out.push(view(d, claim.as_ref()));
        }
        out.sort_by(|a, b| {
            b.primary
                .cmp(&a.primary)
                .then_with(|| a.domain.cmp(&b.domain))
        });
        Ok(out)
    }

    /// Adds `raw` to the store (or sets its `primary` flag if it has it already).
    pub async fn put(
        &self,
        caller: &Caller,
        id: &StoreId,
        raw: &str,
        primary: bool,
    ) -> Result<Put, DomainsError> {
        let store = self.changeable_store(caller, id).await?;
        let domain = match DomainName::parse(raw, &self.settings.base_domain) {
            Ok(d) => d,
            Err(e) => {
                self.deny(caller, &store, "invalid-domain", e.to_string())
                    .await;
                return Err(e.into());
            }
        };
        if let Some(existing) = store
            .spec
            .domains
            .iter()
            .find(|d| d.name == domain.as_str())
        {
            if existing.primary == primary {
                let claim = claim::api(&self.client).get_opt(domain.as_str()).await?;
                return Ok(Put::Kept(view(existing, claim.as_ref())));
            }
            let updated = self.write(id, &domain, Change::Primary(primary)).await?;
            self.record(
                caller,
                &store,
                "domain-primary",
                format!(
                    "domain {domain}: primary {}",
                    if primary { "on" } else { "off" }
                ),
            )
            .await;
            return Ok(Put::Kept(self.view_of(&updated, &domain).await?));
        }
        self.check_limit(caller, &store).await?;
        let made = match claim::claim(&self.client, &domain, id, self.stores.instance()).await? {
            Claimed::Taken => {
                let why = DomainsError::Taken(domain.to_string());
                // The refusal names the domain, never the store that holds it.
                self.deny(caller, &store, "domain-taken", why.to_string())
                    .await;
                return Err(why);
            }
            Claimed::New(c) => Some(c),
            Claimed::Already(_) => None,
        };
        match self.write(id, &domain, Change::Add(primary)).await {
            Ok(updated) => {
                let mut detail = format!("domain {domain} added");
                if primary {
                    detail.push_str(" (primary)");
                }
                self.record(caller, &store, "domain-added", detail).await;
                Ok(Put::Added(self.view_of(&updated, &domain).await?))
            }
            Err(e) => {
                if let Some(c) = made
                    && let Err(undo) = claim::delete_exactly(&claim::api(&self.client), &c).await
                {
                    tracing::warn!(store_id = %id, domain = %domain, "releasing the claim after a failed add: {undo}");
                }
                if let DomainsError::LimitReached { .. } = e {
                    self.deny(caller, &store, "domain-limit", e.to_string())
                        .await;
                }
                Err(e)
            }
        }
    }

    /// Removes `raw` from the store: its spec first (the route loses the name at the next
    /// release), then the claim (another store may take the name).
    pub async fn remove(
        &self,
        caller: &Caller,
        id: &StoreId,
        raw: &str,
    ) -> Result<(), DomainsError> {
        let store = self.changeable_store(caller, id).await?;
        // A name that does not parse is no domain of this store: 404 as for any other.
        let not_found = || DomainsError::NotFound {
            store: id.to_string(),
            domain: raw.to_owned(),
        };
        let Some(domain) = DomainName::parse_stored(raw.trim().trim_end_matches('.')) else {
            return Err(not_found());
        };
        if !store.spec.domains.iter().any(|d| d.name == domain.as_str()) {
            return Err(not_found());
        }
        self.write(id, &domain, Change::Remove).await?;
        claim::release(&self.client, domain.as_str(), id.as_str()).await?;
        self.record(
            caller,
            &store,
            "domain-removed",
            format!("domain {domain} removed"),
        )
        .await;
        Ok(())
    }

    /// The Store as the API server has it now, if the caller may see it (else `NotFound`, as the
    /// store routes answer). A store being deleted is still read, like `GET /stores/{id}`.
    async fn visible_store(&self, caller: &Caller, id: &StoreId) -> Result<Store, DomainsError> {
        // Ownership and visibility exactly as the store routes (and their audit of a non-owner).
        self.stores.get(caller, id).await?;
        Ok(Api::<Store>::all(self.client.clone())
            .get_opt(id.as_str())
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?)
    }

    /// [`Self::visible_store`], for a change: a store being deleted takes none (409).
    async fn changeable_store(&self, caller: &Caller, id: &StoreId) -> Result<Store, DomainsError> {
        let store = self.visible_store(caller, id).await?;
        if store.deletion_requested() {
            return Err(StoreError::Deleting(id.to_string()).into());
        }
        Ok(store)
    }

    async fn check_limit(&self, caller: &Caller, store: &Store) -> Result<(), DomainsError> {
        let max = self.settings.max_per_store;
        if store.spec.domains.len() >= max as usize {
            let e = DomainsError::LimitReached { max };
            self.deny(caller, store, "domain-limit", e.to_string())
                .await;
            return Err(e);
        }
        Ok(())
    }

    /// One change of the Store's `spec.domains`, against the resourceVersion it read.
    async fn write(
        &self,
        id: &StoreId,
        domain: &DomainName,
        change: Change,
    ) -> Result<Store, DomainsError> {
        let api = Api::<Store>::all(self.client.clone());
        for _ in 0..WRITE_ATTEMPTS {
            let mut store = api
                .get_opt(id.as_str())
                .await?
                .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            if store.deletion_requested() {
                return Err(StoreError::Deleting(id.to_string()).into());
            }
            let version = store.resource_version();
            let domains = &mut store.spec.domains;
            let name = domain.as_str();
            match change {
                Change::Add(primary) => {
                    if !domains.iter().any(|d| d.name == name) {
                        // Re-checked here: two adds at once both passed the first check.
                        if domains.len() >= self.settings.max_per_store as usize {
                            return Err(DomainsError::LimitReached {
                                max: self.settings.max_per_store,
                            });
                        }
                        domains.push(StoreDomain {
                            name: name.to_owned(),
                            primary: false,
                        });
                    }
                    set_primary(domains, name, primary);
                }
                Change::Primary(primary) => set_primary(domains, name, primary),
                Change::Remove => domains.retain(|d| d.name != name),
            }
            // A merge patch carrying the resourceVersion read: the API server refuses it (409) if
            // the Store changed since, and we re-read. (No `update` right needed, only `patch`.)
            let patch = serde_json::json!({
                "metadata": { "resourceVersion": version },
                "spec": { "domains": if domains.is_empty() { serde_json::Value::Null } else { serde_json::to_value(&*domains).expect("domains serialise") } },
            });
            match api
                .patch(id.as_str(), &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(updated) => return Ok(updated),
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainsError::Busy(id.to_string()))
    }

    async fn view_of(
        &self,
        store: &Store,
        domain: &DomainName,
    ) -> Result<DomainView, DomainsError> {
        let entry = store
            .spec
            .domains
            .iter()
            .find(|d| d.name == domain.as_str())
            .cloned()
            .unwrap_or(StoreDomain {
                name: domain.to_string(),
                primary: false,
            });
        let claim = claim::api(&self.client).get_opt(domain.as_str()).await?;
        Ok(view(&entry, claim.as_ref()))
    }

    async fn record(&self, caller: &Caller, store: &Store, outcome: &str, detail: String) {
        tracing::info!(store_id = %store.name_any(), owner = %caller.owner, "{detail}");
        self.audit
            .record(AuditEntry {
                actor: caller.owner.to_string(),
                action: Action::Update,
                store_id: Some(store.name_any()),
                store_owner: Some(store.spec.owner.clone()),
                outcome: outcome.into(),
                detail,
                remote_addr: caller.remote_addr.clone(),
            })
            .await;
    }

    async fn deny(&self, caller: &Caller, store: &Store, outcome: &str, detail: String) {
        self.audit
            .record(AuditEntry {
                actor: caller.owner.to_string(),
                action: Action::Denied,
                store_id: Some(store.name_any()),
                store_owner: Some(store.spec.owner.clone()),
                outcome: outcome.into(),
                detail,
                remote_addr: caller.remote_addr.clone(),
            })
            .await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Change {
    Add(bool),
    Primary(bool),
    Remove,
}

/// At most one primary: making one primary makes every other not.
fn set_primary(domains: &mut [StoreDomain], name: &str, primary: bool) {
    for d in domains.iter_mut() {
        if d.name == name {
            d.primary = primary;
        } else if primary {
            d.primary = false;
        }
    }
}

fn view(entry: &StoreDomain, claim: Option<&DomainClaim>) -> DomainView {
    let status = claim.and_then(|c| c.status.clone()).unwrap_or_default();
    DomainView {
        domain: entry.name.clone(),
        display_name: idna::domain_to_unicode(&entry.name).0,
        primary: entry.primary,
        state: status.state.unwrap_or(DomainState::WaitingForDns),
        message: status
            .message
            .unwrap_or_else(|| "not checked yet".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str, primary: bool) -> StoreDomain {
        StoreDomain {
            name: name.into(),
            primary,
        }
    }

    #[test]
    fn one_primary_at_most() {
        let mut ds = vec![d("a.com", true), d("b.com", false)];
        set_primary(&mut ds, "b.com", true);
        assert_eq!(ds, [d("a.com", false), d("b.com", true)]);
        set_primary(&mut ds, "a.com", false);
        assert_eq!(ds, [d("a.com", false), d("b.com", true)]);
        set_primary(&mut ds, "b.com", false);
        assert_eq!(ds, [d("a.com", false), d("b.com", false)]);
    }
}

//! What this process knows of the things it depends on: the `Store` CRD, its own watch of Stores, and
//! the database. One background task keeps it current; `/readyz` and the 503 answers read it, so a
//! probe or a flood of probes costs no call to the Kubernetes API server.
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

use crate::storage::Database;

/// The group/version the control plane serves Stores from.
pub const STORE_GROUP_VERSION: &str = "storefleet.dev/v1alpha1";

/// What a user must do when the CRD is missing or outdated: named at start, in `/readyz` and in every 503.
pub const INSTALL_CRD: &str = "install it with `kubectl apply --server-side -f charts/storefleet/crds/` \
     (or `storefleet crd | kubectl apply --server-side -f -`), or start `storefleet serve --install-crd`";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrdState {
    /// Not looked at yet.
    Unknown,
    Served,
    Missing,
    /// Served, but not as this version of Storefleet needs it.
    Outdated(String),
}

impl CrdState {
    /// Why the CRD stands in the way, with the command that fixes it; `None` when served.
    pub fn problem(&self) -> Option<String> {
        match self {
            CrdState::Served => None,
            CrdState::Unknown => Some(
                "the Kubernetes API server has not been reached yet to look for the Store CRD"
                    .into(),
            ),
            CrdState::Missing => Some(format!(
                "the Store CRD (stores.storefleet.dev, {STORE_GROUP_VERSION}) is not installed in this cluster: {INSTALL_CRD}"
            )),
            CrdState::Outdated(why) => Some(format!(
                "the Store CRD in this cluster is outdated ({why}): {INSTALL_CRD}"
            )),
        }
    }
}

pub struct Dependencies {
    crd: watch::Sender<CrdState>,
    /// `Some(why)` while this process's watch of Stores is not in sync.
    store_watch: RwLock<Option<String>>,
    database: RwLock<Option<String>>,
    /// Set on SIGTERM: the process drains and must leave the Service's endpoints.
    shutting_down: AtomicBool,
}

impl Default for Dependencies {
    fn default() -> Self {
        Self {
            crd: watch::Sender::new(CrdState::Unknown),
            store_watch: RwLock::new(Some("the watch of Stores has not started yet".into())),
            database: RwLock::new(None),
            shutting_down: AtomicBool::new(false),
        }
    }
}

impl Dependencies {
    pub fn crd(&self) -> CrdState {
        self.crd.borrow().clone()
    }

    /// Resolves once the CRD is served (at once if it is).
    pub async fn crd_served(&self) {
        let mut rx = self.crd.subscribe();
        let _ = rx.wait_for(|s| *s == CrdState::Served).await;
    }

    pub fn store_watch_synced(&self) {
        // Called on every event: take the write lock only to clear a failure.
        if self.store_watch.read().expect("not poisoned").is_some() {
            *self.store_watch.write().expect("not poisoned") = None;
        }
    }

    pub fn store_watch_failed(&self, why: String) {
        *self.store_watch.write().expect("not poisoned") = Some(why);
    }

    /// From now on `/readyz` answers 503: the process is stopping (requests are still served).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Why this process is not ready, if it is not: shutting down, else the first of CRD, watch,
    /// database.
    pub fn not_ready(&self) -> Option<String> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Some("shutting down: this replica finishes its requests and stops".into());
        }
        if let Some(crd) = self.crd().problem() {
            return Some(crd);
        }
        if let Some(watch) = self.store_watch.read().expect("not poisoned").clone() {
            return Some(format!("Kubernetes API: {watch}"));
        }
        self.database
            .read()
            .expect("not poisoned")
            .clone()
            .map(|e| format!("database: {e}"))
    }

    /// Keeps the state current: the CRD through API discovery (which every authenticated identity
    /// may read), the database with a ping. Checks often while something is wrong, rarely when all is
    /// well; logs a change of state, not every check.
    pub async fn keep_current(&self, client: Client, db: Database) {
        let mut quiet_for = Duration::ZERO;
        loop {
            let crd = check_crd(&client).await;
            if let Some(crd) = crd {
                let changed = self.crd.send_if_modified(|old| {
                    let changed = *old != crd;
                    *old = crd.clone();
                    changed
                });
                if changed {
                    match crd.problem() {
                        None => tracing::info!("the Store CRD is served"),
                        Some(problem) => tracing::error!("{problem}"),
                    }
                }
            }
            let db_state = match tokio::time::timeout(Duration::from_secs(5), db.ping()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("no answer within 5s".to_owned()),
            };
            *self.database.write().expect("not poisoned") = db_state;
            // 1 s, doubling to 30 s while the CRD is not served; 30 s once it is.
            quiet_for = if self.crd() == CrdState::Served {
                Duration::from_secs(30)
            } else {
                (quiet_for * 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
            };
            let mut changed = self.crd.subscribe();
            tokio::select! {
                () = tokio::time::sleep(quiet_for) => {}
                // Someone saw a sign of trouble (`recheck`): look again now.
                _ = changed.changed() => {}
            }
        }
    }

    /// A Store request failed in a way that may mean the CRD went away: look again soon.
    pub fn recheck(&self) {
        self.crd.send_modify(|_| {});
    }
}

/// `None`: the API server could not be asked (the state stays as it was).
async fn check_crd(client: &Client) -> Option<CrdState> {
    match client.list_api_group_resources(STORE_GROUP_VERSION).await {
        Ok(list) => {
            let has = |name: &str| list.resources.iter().any(|r| r.name == name);
            Some(if !has("stores") {
                CrdState::Missing
            } else if !has("stores/status") {
                CrdState::Outdated("Stores have no status subresource".into())
            } else {
                CrdState::Served
            })
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Some(CrdState::Missing),
        Err(e) => {
            tracing::debug!("looking for the Store CRD: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_the_fix() {
        assert_eq!(CrdState::Served.problem(), None);
        let missing = CrdState::Missing.problem().unwrap();
        assert!(missing.contains("not installed"), "{missing}");
        assert!(missing.contains("kubectl apply"), "{missing}");
        assert!(missing.contains("--install-crd"), "{missing}");
        let outdated = CrdState::Outdated("x".into()).problem().unwrap();
        assert!(outdated.contains("outdated (x)"), "{outdated}");
    }

    #[test]
    fn readiness_names_the_first_cause() {
        let deps = Dependencies::default();
        assert!(deps.not_ready().unwrap().contains("not been reached"));
        deps.crd.send_replace(CrdState::Served);
        assert!(deps.not_ready().unwrap().contains("watch of Stores"));
        deps.store_watch_synced();
        assert_eq!(deps.not_ready(), None);
        *deps.database.write().unwrap() = Some("locked".into());
        assert_eq!(deps.not_ready().unwrap(), "database: locked");
    }
}

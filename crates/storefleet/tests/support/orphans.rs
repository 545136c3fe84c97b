//! The orphan check every fault test ends with: for one instance, once things have settled, every
//! Store has its namespace and its release, every namespace and release belongs to a live Store, and
//! nothing is there twice.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::{GONE_TIMEOUT, Server};

/// How long a settled state that still breaks a rule may take to heal before the check fails.
const SETTLED_GRACE: Duration = Duration::from_secs(20);

/// What the check found, in words a failing test prints.
#[derive(Debug, Default)]
pub struct OrphanReport {
    /// Still moving (Provisioning, Deleting, a namespace terminating): look again later.
    pub unsettled: Vec<String>,
    /// Broken rules: orphans, missing counterparts, duplicates.
    pub violations: Vec<String>,
}

impl OrphanReport {
    pub fn is_clean(&self) -> bool {
        self.unsettled.is_empty() && self.violations.is_empty()
    }
}

/// A helm release as `helm list -A -a` shows it.
struct Release {
    name: String,
    namespace: String,
    status: String,
}

impl Server {
    /// Waits until the instance has settled and panics unless it is free of orphans and duplicates.
    pub async fn assert_no_orphans(&self) {
        let started = Instant::now();
        let mut broken_since: Option<Instant> = None;
        loop {
            let report = self.orphan_report().await;
            if report.is_clean() {
                return;
            }
            let settled = report.unsettled.is_empty();
            let broken_for = match (settled, broken_since) {
                (true, Some(since)) => since.elapsed(),
                (true, None) => {
                    broken_since = Some(Instant::now());
                    Duration::ZERO
                }
                (false, _) => {
                    broken_since = None;
                    Duration::ZERO
                }
            };
            if broken_for >= SETTLED_GRACE || started.elapsed() >= GONE_TIMEOUT {
                panic!(
                    "orphan check of instance {} failed after {:?}:\nviolations: {:#?}\nnot settled: {:#?}",
                    self.instance,
                    started.elapsed(),
                    report.violations,
                    report.unsettled
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// One look at the instance's Stores, namespaces and helm releases.
    pub async fn orphan_report(&self) -> OrphanReport {
        let mut report = OrphanReport::default();
        let stores = self.cluster_stores().await;
        let namespaces: BTreeMap<String, Namespace> =
            Api::<Namespace>::all(self.cluster.client.clone())
                .list(
                    &ListParams::default()
                        .labels(&format!("storefleet.dev/instance={}", self.instance)),
                )
                .await
                .expect("listing namespaces")
                .items
                .into_iter()
                .map(|ns| (ns.name_any(), ns))
                .collect();
        // Releases in the instance's namespaces, and in any namespace named like one of its stores.
        let ours: BTreeSet<String> = namespaces
            .keys()
            .cloned()
            .chain(stores.iter().map(|s| s.name_any()))
            .collect();
        let mut releases: BTreeMap<String, Vec<Release>> = BTreeMap::new();
        for r in self.all_releases() {
            if ours.contains(&r.namespace) {
                releases.entry(r.namespace.clone()).or_default().push(r);
            }
        }

        // Stores: settled, with their namespace and (when Ready) their one deployed release.
        let mut live: BTreeMap<String, String> = BTreeMap::new(); // name -> uid
        let mut by_owner_and_name: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for store in &stores {
            let id = store.name_any();
            let phase = store
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map(|p| p.as_str().to_owned());
            if let Some(name) = &store.spec.name {
                by_owner_and_name
                    .entry((store.spec.owner.clone(), name.clone()))
                    .or_default()
                    .push(id.clone());
            }
            if store.metadata.deletion_timestamp.is_some() {
                report
                    .unsettled
                    .push(format!("store {id} is being deleted"));
                continue;
            }
            live.insert(id.clone(), store.uid().unwrap_or_default());
            let ns = namespaces.get(&id);
            let owned = ns.is_some_and(|ns| {
                ns.labels().get("storefleet.dev/store-id") == Some(&id)
                    && ns
                        .owner_references()
                        .iter()
                        .any(|r| Some(&r.uid) == store.uid().as_ref())
            });
            let here = releases.get(&id).map(Vec::as_slice).unwrap_or_default();
            match phase.as_deref() {
                Some("Ready") => {
                    if !owned {
                        report.violations.push(format!(
                            "store {id} is Ready without its namespace (labelled and owned)"
                        ));
                    }
                    if !matches!(here, [r] if r.name == id && r.status == "deployed") {
                        report.violations.push(format!(
                            "store {id} is Ready without exactly one deployed release {id}: {:?}",
                            here.iter()
                                .map(|r| format!("{} ({})", r.name, r.status))
                                .collect::<Vec<_>>()
                        ));
                    }
                }
                // Failed may lack a release (helm never installed) or its namespace (taken).
                Some("Failed") => {
                    if ns.is_some() && !owned {
                        report.violations.push(format!(
                            "store {id} is Failed and namespace {id} carries the instance label without being its"
                        ));
                    }
                }
                other => report
                    .unsettled
                    .push(format!("store {id} is {}", other.unwrap_or("new"))),
            }
        }

        // Namespaces: each belongs to a live Store of that name and uid.
        for (name, ns) in &namespaces {
            if ns.metadata.deletion_timestamp.is_some() {
                report
                    .unsettled
                    .push(format!("namespace {name} is terminating"));
                continue;
            }
            let owner_ok = live.get(name).is_some_and(|uid| {
                ns.owner_references()
                    .iter()
                    .any(|r| &r.uid == uid && r.kind == "Store")
            });
            if !owner_ok {
                report.violations.push(format!(
                    "namespace {name} has no live Store that owns it (orphan)"
                ));
            }
        }

        // Releases: one per namespace, named after it, and of a live Store.
        for (ns, list) in &releases {
            if list.len() > 1 {
                report.violations.push(format!(
                    "{} releases in namespace {ns}: {:?}",
                    list.len(),
                    list.iter().map(|r| &r.name).collect::<Vec<_>>()
                ));
            }
            for r in list {
                if r.name != *ns {
                    report.violations.push(format!(
                        "release {} in namespace {ns} is not the store's",
                        r.name
                    ));
                }
                let terminating = namespaces
                    .get(ns)
                    .is_some_and(|n| n.metadata.deletion_timestamp.is_some());
                if !live.contains_key(ns) && !terminating {
                    report.violations.push(format!(
                        "release {} ({}) in namespace {ns} has no live Store (orphan)",
                        r.name, r.status
                    ));
                }
            }
        }

        for ((owner, name), ids) in by_owner_and_name {
            if ids.len() > 1 {
                report.violations.push(format!(
                    "{} stores of {owner} named {name:?}: {ids:?}",
                    ids.len()
                ));
            }
        }
        report
    }

    /// Every helm release in the cluster (any state), from one `helm list -A -a`.
    fn all_releases(&self) -> Vec<Release> {
        let stdout = testkit::run_ok(
            self.cluster
                .helm()
                .args(["list", "-A", "--max", "0", "-o", "json"])
                .args(testkit::HELM_LIST_ALL),
        );
        let list: Vec<Value> = serde_json::from_str(&stdout).expect("helm list -o json");
        list.iter()
            .map(|r| Release {
                name: r["name"].as_str().unwrap_or_default().to_owned(),
                namespace: r["namespace"].as_str().unwrap_or_default().to_owned(),
                status: r["status"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }
}

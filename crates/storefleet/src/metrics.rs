//! Prometheus metrics (`GET /metrics`). Stores by phase and by release are counted from the
//! controller's cache at scrape time (so they cannot drift from what the controller sees);
//! everything else is recorded where it happens: provisioning and Helm durations by the controller,
//! HTTP by a middleware.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::crd::{Phase, Store};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// What a store is released with. Bounded by the chart versions and rollout targets in use, never
/// by the number of stores: every store on the same target shares one series.
/// `chart_version` is the chart this control plane installs: the Store records no chart version
/// of its own, so a store last released by an older control plane (and not upgraded since) is
/// counted under the current one. Its target, from the Store's spec, is exact.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReleaseLabels {
    chart_version: String,
    target: String,
}

/// The `target` label of a store on the platform's values only (no rollout moved it). Not a valid
/// target name (those are lowercase DNS-like), so it cannot collide with one.
pub const NO_TARGET: &str = "(platform)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HelmLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Every label value comes from a closed set: route templates of the router (`unmatched` for the
/// rest), the standard methods (`other` for the rest), and status codes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

/// The `reason` label values of `storefleet_reconcile_errors_total`.
pub const RECONCILE_ERROR_REASONS: [&str; 7] = [
    "helm",
    "kube_conflict",
    "kube_forbidden",
    "kube_not_found",
    "kube_api",
    "kube_unreachable",
    "finalizer",
];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Provisioning takes seconds (stand-in kubelet) to many minutes (real images): 1 s .. ~34 min.
fn provisioning_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 2.0, 12,
    ))
}

/// Helm runs take from a fraction of a second (`list`) to minutes (a slow API server): 0.1 s .. ~410 s.
fn helm_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.1, 2.0, 13,
    ))
}

/// HTTP answers: 5 ms .. ~41 s (the `wait` of POST /stores and event streams are the long tail).
/// 1 s to about 9 h: a small store backs up in seconds, a large one in hours.
fn backup_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 2.0, 16,
    ))
}

fn http_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.005, 2.0, 14,
    ))
}

pub struct Metrics {
    registry: Registry,
    stores: Family<PhaseLabels, Gauge>,
    stores_by_release: Family<ReleaseLabels, Gauge>,
    /// Held while `stores_by_release` is cleared and refilled, so two scrapes at once cannot
    /// interleave and show a half-empty family.
    by_release_refill: Mutex<()>,
    /// The store chart's `version` (Chart.yaml) this control plane installs and upgrades with.
    chart_version: String,
    provisioning: Histogram,
    helm: Histograms<HelmLabels>,
    reconcile_errors: Family<ReasonLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    audit_entries: Gauge,
    audit_pruned: Counter,
    event_streams: Gauge,
    rollbacks: Counter,
    leader: Gauge,
    backup_duration: Histograms<OutcomeLabels>,
    backup_size: Histogram,
    /// One series per store with a successful backup: refilled by each pass of the backup
    /// controller from the `StoreBackup`s themselves, so it is right after a restart too.
    last_backup: Family<StoreLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    last_backup_refill: Mutex<()>,
    stores_reconciled: Gauge,
    reconciled: Mutex<Reconciled>,
    /// The warm pool's (`pool/metrics.rs`).
    pub pool: crate::pool::metrics::PoolMetrics,
}

/// Stores whose reconcile succeeded since this process started, each with the number of the
/// scrape that last saw it in the cache: a name no scrape sees any more (a deleted store) is
/// dropped, so the map is bounded by the stores there are, not by those there ever were.
#[derive(Default)]
struct Reconciled {
    names: HashMap<String, u64>,
    scrape: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(UNKNOWN_CHART_VERSION.into())
    }
}

/// The `chart_version` label when the chart's version could not be read.
const UNKNOWN_CHART_VERSION: &str = "unknown";

/// The `version` of the store chart at `chart` (its Chart.yaml), read once at startup: the chart
/// a running control plane installs does not change under it.
pub fn chart_version(chart: &Path) -> String {
    #[derive(serde::Deserialize)]
    struct ChartYaml {
        version: String,
    }
    std::fs::read_to_string(chart.join("Chart.yaml"))
        .ok()
        .and_then(|text| serde_yaml::from_str::<ChartYaml>(&text).ok())
        .map_or_else(|| UNKNOWN_CHART_VERSION.into(), |c| c.version)
}

impl Metrics {
    /// `chart_version`: the store chart's version (see [`chart_version`]).
    pub fn new(chart_version: String) -> Self {
        let mut registry = Registry::with_prefix("storefleet");
        let stores = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "stores",
            "Stores of this control plane instance, by phase",
            stores.clone(),
        );
        let stores_by_release = Family::<ReleaseLabels, Gauge>::default();
        registry.register(
            "stores_by_release",
            "Stores of this control plane instance by the store chart version this control plane \
             installs and the rollout target in their spec ((platform): none)",
            stores_by_release.clone(),
        );
        let provisioning = provisioning_histogram();
        registry.register_with_unit(
            "store_provisioning_duration",
            "Time from a store's creation to its first Ready",
            Unit::Seconds,
            provisioning.clone(),
        );
        let helm = Histograms::<HelmLabels>::new_with_constructor(helm_histogram);
        registry.register_with_unit(
            "helm_operation_duration",
            "Helm operations by operation and outcome",
            Unit::Seconds,
            helm.clone(),
        );
        let reconcile_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles of stores, by reason",
            reconcile_errors.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            http_requests.clone(),
        );
        let http_duration = Histograms::<RouteLabels>::new_with_constructor(http_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency (until the response head) by route template and method",
            Unit::Seconds,
            http_duration.clone(),
        );
        let audit_entries = Gauge::default();
        registry.register(
            "audit_entries",
            "Entries in the audit log (kept within --audit-max-age and --audit-max-entries)",
            audit_entries.clone(),
        );
        let audit_pruned = Counter::default();
        registry.register(
            "audit_pruned",
            "Audit entries deleted by retention",
            audit_pruned.clone(),
        );
        let event_streams = Gauge::default();
        registry.register(
            "event_streams",
            "Event streams open now",
            event_streams.clone(),
        );
        let rollbacks = Counter::default();
        registry.register(
            "rollout_rollbacks",
            "Stores a fleet rollout rolled back after they failed their gate",
            rollbacks.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this process runs the controllers (holds the leader Lease, or leader election is off), else 0",
            leader.clone(),
        );
        let backup_duration = Histograms::<OutcomeLabels>::new_with_constructor(backup_histogram);
        registry.register_with_unit(
            "backup_duration",
            "Backups by outcome (success: the controller opened the sealed manifest; failure), from the start of their Job to the verdict",
            Unit::Seconds,
            backup_duration.clone(),
        );
        let backup_size = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1024.0 * 1024.0, 2.0, 16),
        );
        registry.register_with_unit(
            "backup_size",
            "Successful backups' size as stored (compressed, encrypted); a failed backup has none",
            Unit::Bytes,
            backup_size.clone(),
        );
        let last_backup =
            Family::<StoreLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register_with_unit(
            "store_last_successful_backup_timestamp",
            "When each store's newest successful backup finished (Unix time): alert when it is over a day old",
            Unit::Seconds,
            last_backup.clone(),
        );
        let stores_reconciled = Gauge::default();
        registry.register(
            "stores_reconciled",
            "Stores of this control plane instance whose reconcile has succeeded at least once since this process started (after a restart: equal to the store count once every store had its first look)",
            stores_reconciled.clone(),
        );
        // Known reasons start at 0, so the family is visible (and `rate()` works) before a failure.
        for reason in RECONCILE_ERROR_REASONS {
            let _ = reconcile_errors.get_or_create(&ReasonLabels { reason });
        }
        let pool = crate::pool::metrics::PoolMetrics::register(&mut registry);
        Self {
            registry,
            pool,
            stores,
            stores_by_release,
            by_release_refill: Mutex::new(()),
            chart_version,
            provisioning,
            helm,
            reconcile_errors,
            http_requests,
            http_duration,
            audit_entries,
            audit_pruned,
            event_streams,
            rollbacks,
            leader,
            backup_duration,
            backup_size,
            last_backup,
            last_backup_refill: Mutex::new(()),
            stores_reconciled,
            reconciled: Mutex::default(),
        }
    }
}

/// Outcome label of an operation.
pub fn outcome<T, E>(result: &Result<T, E>) -> &'static str {
    if result.is_ok() { "success" } else { "error" }
}

impl Metrics {
    /// A store turned Ready for the first time, `elapsed` after it was created.
    pub fn store_ready(&self, elapsed: Duration) {
        self.provisioning.observe(elapsed.as_secs_f64());
    }

    /// The backup controller's verdict on a backup: `outcome` success or failure, `took` from its
    /// start (when known), `stored_bytes` for a success.
    pub fn backup_finished(
        &self,
        outcome: &'static str,
        took: Option<Duration>,
        stored_bytes: Option<u64>,
    ) {
        let h = self
            .backup_duration
            .get_or_create(&OutcomeLabels { outcome });
        if let Some(took) = took {
            h.observe(took.as_secs_f64());
        }
        if let Some(bytes) = stored_bytes {
            self.backup_size.observe(bytes as f64);
        }
    }

    /// Each store's newest successful backup (Unix seconds); stores not listed lose their series.
    pub fn last_backups(&self, newest: &BTreeMap<String, f64>) {
        let _refill = self
            .last_backup_refill
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.last_backup.clear();
        for (store_id, at) in newest {
            self.last_backup
                .get_or_create(&StoreLabels {
                    store_id: store_id.clone(),
                })
                .set(*at);
        }
    }

    /// A fleet rollout rolled a store back.
    pub fn rollout_rollback(&self) {
        self.rollbacks.inc();
    }

    /// `operation`: install, upgrade, uninstall, status, unlock, rollback.
    pub fn helm_operation(&self, operation: &'static str, outcome: &'static str, took: Duration) {
        self.helm
            .get_or_create(&HelmLabels { operation, outcome })
            .observe(took.as_secs_f64());
    }

    /// After a retention pass: entries left, entries deleted.
    pub fn audit_retention(&self, entries: u64, pruned: u64) {
        self.audit_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.audit_pruned.inc_by(pruned);
    }

    /// Whether this process runs the controllers now (`leadership`).
    pub fn leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn event_streams(&self, open: usize) {
        self.event_streams
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    pub fn reconcile_error(&self, reason: &'static str) {
        self.reconcile_errors
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// `route` is the matched route template (bounded), never the raw path; `method` a label of
    /// `api::methods::label`.
    pub fn http_request(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method,
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method,
            })
            .observe(took.as_secs_f64());
    }

    /// A reconcile of the store ended without an error (a no-op counts).
    pub fn store_reconciled(&self, store_id: &str) {
        let mut reconciled = self
            .reconciled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Kept until the scrape after next at least, so a store the scraped cache does not show
        // yet is not dropped.
        let next = reconciled.scrape + 1;
        if let Some(seen) = reconciled.names.get_mut(store_id) {
            *seen = (*seen).max(next);
        } else {
            reconciled.names.insert(store_id.to_owned(), next);
        }
    }

    pub fn render<'a>(&self, stores: impl Iterator<Item = &'a Store>) -> String {
        let mut counts = [0i64; Phase::ALL.len()];
        // One pass over the cache for all three families; a map keyed by target, not by store.
        let mut by_target: BTreeMap<&str, i64> = BTreeMap::new();
        let mut reconciled = self
            .reconciled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        reconciled.scrape += 1;
        let scrape = reconciled.scrape;
        let mut reconciled_count = 0;
        for store in stores {
            if let Some(seen) = store
                .metadata
                .name
                .as_deref()
                .and_then(|name| reconciled.names.get_mut(name))
            {
                *seen = scrape;
                reconciled_count += 1;
            }
            let target = store
                .spec
                .release
                .as_ref()
                .map_or(NO_TARGET, |r| r.target.as_str());
            *by_target.entry(target).or_default() += 1;
            let phase = if store.is_deleting() {
                Phase::Deleting
            } else {
                store.phase().unwrap_or(Phase::Provisioning)
            };
            counts[Phase::ALL
                .iter()
                .position(|p| *p == phase)
                .expect("every phase is listed")] += 1;
        }
        reconciled.names.retain(|_, seen| *seen >= scrape);
        drop(reconciled);
        self.stores_reconciled.set(reconciled_count);
        for (phase, count) in Phase::ALL.iter().zip(counts) {
            self.stores
                .get_or_create(&PhaseLabels {
                    phase: phase.as_str(),
                })
                .set(count);
        }
        let mut text = String::new();
        {
            // Cleared first: a target no store runs any more disappears instead of staying at 0
            // forever (targets come and go with rollouts; phases are a fixed set).
            let _refill = self
                .by_release_refill
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.stores_by_release.clear();
            for (target, count) in by_target {
                self.stores_by_release
                    .get_or_create(&ReleaseLabels {
                        chart_version: self.chart_version.clone(),
                        target: target.to_owned(),
                    })
                    .set(count);
            }
            encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        }
        text
    }
}

/// Middleware: counts every HTTP request by route template, method and status, and times it.
pub async fn track_http(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = crate::telemetry::route(&req).to_owned();
    let method = crate::api::methods::label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.http_request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{StoreSpec, StoreStatus};
    use crate::domain::Engine;

    #[test]
    fn counts_stores_by_phase() {
        let mut ready = Store::new(
            "store-000001",
            StoreSpec {
                name: None,
                engine: Engine::Woocommerce,
                owner: "admin".into(),
                plan: None,
                release: None,
                domains: Vec::new(),
                identity_generation: 0,
            },
        );
        ready.status = Some(StoreStatus {
            phase: Some(Phase::Ready),
            ..Default::default()
        });
        let fresh = Store::new(
            "store-000002",
            StoreSpec {
                name: None,
                engine: Engine::Woocommerce,
                owner: "admin".into(),
                plan: None,
                release: None,
                domains: Vec::new(),
                identity_generation: 0,
            },
        );
        let text = Metrics::default().render([&ready, &fresh, &ready.clone()].into_iter());
        assert!(
            text.contains(r#"storefleet_stores{phase="Ready"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"storefleet_stores{phase="Provisioning"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"storefleet_stores{phase="Failed"} 0"#),
            "{text}"
        );
    }

    fn store(id: &str, target: Option<&str>) -> Store {
        Store::new(
            id,
            StoreSpec {
                name: None,
                engine: Engine::Woocommerce,
                owner: "admin".into(),
                plan: None,
                release: target.map(|t| crate::crd::StoreRelease {
                    target: t.into(),
                    values: serde_json::json!({}),
                }),
                domains: Vec::new(),
                identity_generation: 0,
            },
        )
    }

    #[test]
    fn counts_stores_by_release_and_forgets_targets_no_store_runs() {
        let m = Metrics::new("0.1.0".into());
        let (a, b, c) = (
            store("store-000001", None),
            store("store-000002", Some("wp-6.9")),
            store("store-000003", Some("wp-6.9")),
        );
        let text = m.render([&a, &b, &c].into_iter());
        for line in [
            "# TYPE storefleet_stores_by_release gauge",
            r#"storefleet_stores_by_release{chart_version="0.1.0",target="(platform)"} 1"#,
            r#"storefleet_stores_by_release{chart_version="0.1.0",target="wp-6.9"} 2"#,
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
        let text = m.render([&a].into_iter());
        assert!(!text.contains(r#"target="wp-6.9""#), "{text}");
    }

    #[test]
    fn counts_stores_reconciled_since_start_and_forgets_deleted_ones() {
        let m = Metrics::default();
        let (a, b) = (store("store-000001", None), store("store-000002", None));
        let text = m.render([&a, &b].into_iter());
        assert!(text.contains("storefleet_stores_reconciled 0\n"), "{text}");
        m.store_reconciled("store-000001");
        m.store_reconciled("store-000001");
        // Reconciled, but not in the scraped cache yet: not counted, not forgotten.
        m.store_reconciled("store-000003");
        let text = m.render([&a, &b].into_iter());
        assert!(text.contains("storefleet_stores_reconciled 1\n"), "{text}");
        m.store_reconciled("store-000002");
        let text = m.render([&a, &b].into_iter());
        assert!(text.contains("storefleet_stores_reconciled 2\n"), "{text}");
        // store-000001 deleted; store-000003 never showed up in a scrape and is gone too.
        let text = m.render([&b].into_iter());
        assert!(text.contains("storefleet_stores_reconciled 1\n"), "{text}");
        let names = &m.reconciled.lock().expect("not poisoned").names;
        assert_eq!(names.keys().collect::<Vec<_>>(), ["store-000002"]);
    }

    #[test]
    fn reads_the_chart_version_of_the_store_chart() {
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/store");
        let version = chart_version(&chart);
        assert!(
            version.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{version}"
        );
        assert_eq!(chart_version(Path::new("/nonexistent")), "unknown");
    }

    #[test]
    fn families_follow_prometheus_conventions() {
        let m = Metrics::default();
        m.store_ready(Duration::from_secs(42));
        m.helm_operation("install", "success", Duration::from_millis(700));
        m.reconcile_error("helm");
        m.http_request("/stores/{store_id}", "GET", 404, Duration::from_millis(3));
        let text = m.render(std::iter::empty());
        for line in [
            "# TYPE storefleet_store_provisioning_duration_seconds histogram",
            "storefleet_store_provisioning_duration_seconds_count 1",
            r#"storefleet_store_provisioning_duration_seconds_bucket{le="64.0"} 1"#,
            r#"storefleet_helm_operation_duration_seconds_count{operation="install",outcome="success"} 1"#,
            r#"storefleet_reconcile_errors_total{reason="helm"} 1"#,
            r#"storefleet_reconcile_errors_total{reason="kube_conflict"} 0"#,
            r#"storefleet_http_requests_total{route="/stores/{store_id}",method="GET",status="404"} 1"#,
            r#"storefleet_http_request_duration_seconds_count{route="/stores/{store_id}",method="GET"} 1"#,
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
    }
}

//! The pool's metrics (part of `GET /metrics`): how many pool stores there are and how many are
//! ready (set by the leader's pool pass), claims and fallbacks to the cold path (counted by the
//! replica that served the `POST /stores`), and how long a claimed store took to be Ready as its
//! owner's (observed by the leader's pool pass).
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::PoolKind;

/// `kind` is `<engine>/<plan>` of the pool's settings: bounded by `--pool`, never by users.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Why a create took the cold path although the pool has stores of its kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    kind: String,
    reason: &'static str,
}

pub struct PoolMetrics {
    size: Family<KindLabels, Gauge>,
    ready: Family<KindLabels, Gauge>,
    claims: Family<KindLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    claim_ready: Histogram,
}

impl PoolMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let size = Family::<KindLabels, Gauge>::default();
        registry.register(
            "pool_stores",
            "Unclaimed pool stores, by kind (set by the leader)",
            size.clone(),
        );
        let ready = Family::<KindLabels, Gauge>::default();
        registry.register(
            "pool_ready_stores",
            "Unclaimed pool stores that are Ready to be claimed, by kind (set by the leader)",
            ready.clone(),
        );
        let claims = Family::<KindLabels, Counter>::default();
        registry.register(
            "pool_claims",
            "POST /stores answered with a pool store, by kind",
            claims.clone(),
        );
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        registry.register(
            "pool_fallbacks",
            "POST /stores of a pooled kind that took the cold path, by kind and reason (empty: no Ready pool store)",
            fallbacks.clone(),
        );
        // The claimed store is Ready once its setup Job has run again: a few seconds, or minutes
        // on a slow cluster. 0.25 s .. ~17 min.
        let claim_ready = Histogram::new(exponential_buckets(0.25, 2.0, 13));
        registry.register_with_unit(
            "pool_claim_ready_duration",
            "From a claim to the claimed store being Ready as its owner's (new title, URL, password)",
            Unit::Seconds,
            claim_ready.clone(),
        );
        Self {
            size,
            ready,
            claims,
            fallbacks,
            claim_ready,
        }
    }

    fn labels(kind: &PoolKind) -> KindLabels {
        KindLabels {
            kind: kind.to_string(),
        }
    }

    /// The leader's count of one kind's unclaimed pool stores (`kind`: `<engine>/<plan>`).
    pub fn sizes(&self, kind: &str, size: usize, ready: usize) {
        let labels = KindLabels {
            kind: kind.to_owned(),
        };
        self.size
            .get_or_create(&labels)
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        self.ready
            .get_or_create(&labels)
            .set(i64::try_from(ready).unwrap_or(i64::MAX));
    }

    pub fn claimed(&self, kind: &PoolKind) {
        self.claims.get_or_create(&Self::labels(kind)).inc();
    }

    /// `reason`: `empty` (no Ready pool store of the kind).
    pub fn fallback(&self, kind: &PoolKind, reason: &'static str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                kind: kind.to_string(),
                reason,
            })
            .inc();
    }

    pub fn claim_ready(&self, seconds: f64) {
        self.claim_ready.observe(seconds);
    }

    /// Every kind of the settings starts at 0, so the series exist (and `rate()` works) before
    /// the first claim.
    pub fn known(&self, kinds: impl Iterator<Item = PoolKind>) {
        for kind in kinds {
            let labels = Self::labels(&kind);
            let _ = self.size.get_or_create(&labels);
            let _ = self.ready.get_or_create(&labels);
            let _ = self.claims.get_or_create(&labels);
            let _ = self.fallbacks.get_or_create(&FallbackLabels {
                kind: labels.kind.clone(),
                reason: "empty",
            });
        }
    }
}

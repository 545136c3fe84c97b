//! Keeps the database within its bounds: audit entries past `--audit-max-age` or beyond
//! `--audit-max-entries` go, and so do idempotency keys past `--idempotency-ttl`. Runs at start and
//! every few minutes; the audit log's size is a metric (`storefleet_audit_entries`).
use std::sync::Arc;
use std::time::Duration;

use super::Database;
use crate::metrics::Metrics;

/// The database's bounds (`storefleet serve` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub audit_max_age: Option<Duration>,
    pub audit_max_entries: Option<u64>,
    pub idempotency_ttl: Duration,
}

const EVERY: Duration = Duration::from_secs(5 * 60);

pub struct Housekeeping {
    db: Database,
    retention: Retention,
    metrics: Arc<Metrics>,
}

impl Housekeeping {
    pub fn new(db: Database, retention: Retention, metrics: Arc<Metrics>) -> Self {
        Self {
            db,
            retention,
            metrics,
        }
    }

    /// One pass: answers the audit entries deleted.
    pub async fn once(&self) -> Result<u64, sqlx::Error> {
        let audit = self.db.audit();
        let pruned = audit
            .prune(
                self.retention.audit_max_age,
                self.retention.audit_max_entries,
            )
            .await?;
        let expired = self
            .db
            .idempotency(self.retention.idempotency_ttl)
            .prune()
            .await?;
        self.metrics.audit_retention(audit.entries().await?, pruned);
        if pruned > 0 || expired > 0 {
            tracing::info!(
                audit_entries_deleted = pruned,
                idempotency_keys_deleted = expired,
                "retention"
            );
        }
        Ok(pruned)
    }

    pub async fn run(self) {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = self.once().await {
                tracing::warn!("retention: {e}");
            }
        }
    }
}

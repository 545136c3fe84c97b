//! A Ready pool store that breaks while it waits (its WordPress or database no longer ready: a crash
//! loop, a lost node). The store controller does not look at a Ready store's workloads again (Ready
//! says how its last provisioning ended), so the pool looks at its own unclaimed stores: one found
//! broken is marked at once (`pool-broken-since`), which takes it out of the claim candidates; one
//! still broken after the grace is deleted, and the refill replaces it; one that recovers is
//! unmarked. The mark is on the Store, so a new leader goes on from it. Pure: `controller.rs` reads
//! the workloads and carries the verdict out.
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::crd::{Phase, Store};

/// When the pool first found this unclaimed store's workloads not ready (RFC 3339).
pub const ANNOTATION_BROKEN_SINCE: &str = "storefleet.dev/pool-broken-since";

/// The longest a broken pool store is given to recover: it cannot be claimed meanwhile, so the pool
/// is one short. Shorter when the provision timeout is (a new store may take that long anyway).
pub const GRACE_MAX: Duration = Duration::from_secs(120);

/// Since when `store` has been found broken; `None`: it has not (or it recovered).
pub fn broken_since(store: &Store) -> Option<Timestamp> {
    store
        .annotations()
        .get(ANNOTATION_BROKEN_SINCE)
        .and_then(|t| t.parse().ok())
}

/// Which pool stores are looked at: the Ready ones (one still provisioning is the store
/// controller's, and the refill replaces it when it fails or takes too long).
pub fn watched(store: &Store) -> bool {
    super::refill::kind_label(store).is_some()
        && !store.deletion_requested()
        && store.phase() == Some(Phase::Ready)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy and unmarked, or marked and still within the grace.
    Keep,
    /// Broken, first seen now: mark it (no claim takes it from now on).
    Mark,
    /// Marked, and ready again: unmark it.
    Clear,
    /// Broken for longer than the grace: delete it (the refill makes a new one).
    Replace,
}

pub fn judge(
    since: Option<Timestamp>,
    workloads_ready: bool,
    now: Timestamp,
    grace: Duration,
) -> Verdict {
    match (since, workloads_ready) {
        (None, true) => Verdict::Keep,
        (Some(_), true) => Verdict::Clear,
        (None, false) => Verdict::Mark,
        (Some(since), false) => {
            let broken_for = Duration::try_from(now.duration_since(since)).unwrap_or_default();
            if broken_for >= grace {
                Verdict::Replace
            } else {
                Verdict::Keep
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    #[test]
    fn broken_is_marked_then_replaced_after_the_grace_and_a_recovery_unmarks() {
        let grace = Duration::from_secs(60);
        assert_eq!(judge(None, true, at(0), grace), Verdict::Keep);
        assert_eq!(judge(None, false, at(0), grace), Verdict::Mark);
        assert_eq!(judge(Some(at(0)), false, at(59), grace), Verdict::Keep);
        assert_eq!(judge(Some(at(0)), false, at(60), grace), Verdict::Replace);
        assert_eq!(judge(Some(at(0)), true, at(600), grace), Verdict::Clear);
        // A mark from a clock ahead of ours: not replaced before its time.
        assert_eq!(judge(Some(at(30)), false, at(0), grace), Verdict::Keep);
    }
}

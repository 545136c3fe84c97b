//! What `GET /pool` answers (admins): per kind of the settings, the target and the unclaimed pool
//! stores there are, Ready or not. Counted from the API's cache of Stores, like the store list.
use serde::Serialize;
use utoipa::ToSchema;

use super::PoolTargets;
use super::refill::kind_label;
use crate::crd::{Phase, Store};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PoolKindView {
    #[schema(example = "woocommerce")]
    pub engine: String,
    #[schema(example = "small")]
    pub plan: String,
    /// How many Ready stores the pool keeps of this kind (`--pool`).
    pub target: u32,
    /// Unclaimed pool stores of this kind (being provisioned or Ready).
    pub stores: usize,
    /// Of those, the Ready ones: what the next creates can claim (not those found broken since,
    /// `pool/health.rs`).
    pub ready: usize,
}

impl PoolKindView {
    /// `<engine>/<plan>`, as `--pool` and the metrics name it.
    pub fn kind(&self) -> String {
        format!("{}/{}", self.engine, self.plan)
    }
}

/// One entry per kind of `targets`, in the settings' order; none without a pool.
pub fn of(targets: &PoolTargets, stores: &[&Store]) -> Vec<PoolKindView> {
    targets
        .iter()
        .map(|(kind, target)| {
            let label = kind.label_value();
            let mine = stores
                .iter()
                .filter(|s| !s.deletion_requested() && kind_label(s) == Some(label.as_str()));
            let (n, ready) = mine.fold((0, 0), |(n, r), s| {
                let claimable =
                    s.phase() == Some(Phase::Ready) && super::health::broken_since(s).is_none();
                (n + 1, r + usize::from(claimable))
            });
            PoolKindView {
                engine: kind.engine.as_str().to_owned(),
                plan: kind.plan.as_str().to_owned(),
                target,
                stores: n,
                ready,
            }
        })
        .collect()
}

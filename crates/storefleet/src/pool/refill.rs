//! What the pool's controller does next, decided from the pool's Stores as the API server lists them
//! (never from a memory of what it asked for: a `kill -9` between a create and its record would
//! otherwise make a store twice). Pure: `controller.rs` lists, calls [`plan`], and carries it out.
use kube::ResourceExt;

use super::settings::{PoolKind, PoolTargets};
use crate::crd::{Phase, Store};

/// On an unclaimed pool store: its kind, `<engine>.<plan>` (a label value has no `/`).
pub const LABEL_POOL: &str = "storefleet.dev/pool";
/// The owner of unclaimed pool stores: a built-in actor, which no user can be called
/// (`storage::BUILT_IN_ACTORS`), so no member ever sees them.
pub const POOL_OWNER: &str = "storefleet";

impl PoolKind {
    pub fn label_value(&self) -> String {
        format!("{}.{}", self.engine.as_str(), self.plan.as_str())
    }
}

/// The kind of an unclaimed pool store, by its label; `None`: not (or no longer) in the pool.
pub fn kind_label(store: &Store) -> Option<&str> {
    (store.spec.owner == POOL_OWNER)
        .then(|| store.labels().get(LABEL_POOL).map(String::as_str))
        .flatten()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// One more store of this kind.
    Create(PoolKind),
    /// A pool store that failed, or is of a kind no longer wanted: it goes (and is replaced).
    Delete { store_id: String, why: &'static str },
}

/// The next steps, given every Store of this instance (`all`: users' and the pool's, for the global
/// limit) and `max_stores`. The pool never takes the last free slot: users come first. `stuck` says
/// whether a pool store that is not Ready has waited too long (the controller: longer than the
/// provision timeout since its creation).
pub fn plan(
    targets: &PoolTargets,
    all: &[&Store],
    max_stores: u32,
    stuck: impl Fn(&Store) -> bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let live = |s: &&&Store| !s.deletion_requested();
    for store in all.iter().filter(live) {
        let Some(label) = kind_label(store) else {
            continue;
        };
        let wanted = targets
            .iter()
            .any(|(k, n)| n > 0 && k.label_value() == label);
        if !wanted {
            steps.push(Step::Delete {
                store_id: store.name_any(),
                why: "its kind is no longer in the pool",
            });
        } else if store.phase() == Some(Phase::Failed) {
            steps.push(Step::Delete {
                store_id: store.name_any(),
                why: "it failed while waiting in the pool",
            });
        } else if store.phase() != Some(Phase::Ready) && stuck(store) {
            steps.push(Step::Delete {
                store_id: store.name_any(),
                why: "it was not Ready within the provision timeout",
            });
        }
    }
    let deleting: Vec<String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Delete { store_id, .. } => Some(store_id.clone()),
            Step::Create(_) => None,
        })
        .collect();
    // Stores being deleted still hold their slot until they are gone (as for the quotas).
    let mut total = all.len();
    for (kind, target) in targets.iter() {
        let label = kind.label_value();
        let have = all
            .iter()
            .filter(live)
            .filter(|s| kind_label(s) == Some(label.as_str()))
            .filter(|s| !deleting.contains(&s.name_any()))
            .count();
        for _ in have..target as usize {
            if total + 1 >= max_stores as usize {
                break;
            }
            total += 1;
            steps.push(Step::Create(kind.clone()));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{StoreSpec, StoreStatus};
    use crate::domain::Engine;
    use crate::plans::{PlanName, PlanTable};

    fn targets(entries: &[&str]) -> PoolTargets {
        let entries: Vec<String> = entries.iter().map(|s| (*s).to_owned()).collect();
        PoolTargets::parse(&entries, &PlanTable::builtin()).unwrap()
    }

    fn store(id: &str, owner: &str, pool: Option<&str>, phase: Phase) -> Store {
        let mut s = Store::new(
            id,
            StoreSpec {
                name: None,
                engine: Engine::Woocommerce,
                owner: owner.into(),
                plan: Some("small".into()),
                release: None,
                domains: Vec::new(),
                identity_generation: 0,
            },
        );
        if let Some(kind) = pool {
            s.metadata.labels = Some([(LABEL_POOL.to_owned(), kind.to_owned())].into());
        }
        s.status = Some(StoreStatus {
            phase: Some(phase),
            ..StoreStatus::default()
        });
        s
    }

    fn small() -> PoolKind {
        PoolKind {
            engine: Engine::Woocommerce,
            plan: PlanName::parse("small").unwrap(),
        }
    }

    fn never(_: &Store) -> bool {
        false
    }

    #[test]
    fn a_pool_store_stuck_before_ready_is_replaced_a_ready_one_never() {
        let stuck = store(
            "store-00000a",
            POOL_OWNER,
            Some("woocommerce.small"),
            Phase::Provisioning,
        );
        let ready = store(
            "store-00000b",
            POOL_OWNER,
            Some("woocommerce.small"),
            Phase::Ready,
        );
        let steps = plan(
            &targets(&["woocommerce/small=2"]),
            &[&stuck, &ready],
            10,
            |_| true,
        );
        assert_eq!(
            steps,
            [
                Step::Delete {
                    store_id: "store-00000a".into(),
                    why: "it was not Ready within the provision timeout"
                },
                Step::Create(small()),
            ]
        );
        assert!(
            plan(
                &targets(&["woocommerce/small=2"]),
                &[&stuck, &ready],
                10,
                never
            )
            .is_empty()
        );
    }

    #[test]
    fn fills_up_to_the_target_and_counts_what_is_there() {
        let pooled = store(
            "store-00000a",
            POOL_OWNER,
            Some("woocommerce.small"),
            Phase::Ready,
        );
        let mine = store("store-00000b", "alice", None, Phase::Ready);
        let steps = plan(
            &targets(&["woocommerce/small=3"]),
            &[&pooled, &mine],
            10,
            never,
        );
        assert_eq!(steps, [Step::Create(small()), Step::Create(small())]);
        assert!(
            plan(&targets(&[]), &[&mine], 10, never).is_empty(),
            "no pool, nothing to do"
        );
    }

    #[test]
    fn leaves_the_last_slot_to_users() {
        let mine = store("store-00000b", "alice", None, Phase::Ready);
        // 3 stores may exist: alice's, one pool store, and one slot left for users.
        let steps = plan(&targets(&["woocommerce/small=5"]), &[&mine], 3, never);
        assert_eq!(steps, [Step::Create(small())]);
        assert!(plan(&targets(&["woocommerce/small=5"]), &[&mine], 2, never).is_empty());
    }

    #[test]
    fn a_failed_pool_store_is_replaced_and_an_unwanted_kind_removed() {
        let failed = store(
            "store-00000a",
            POOL_OWNER,
            Some("woocommerce.small"),
            Phase::Failed,
        );
        let other = store(
            "store-00000c",
            POOL_OWNER,
            Some("woocommerce.large"),
            Phase::Ready,
        );
        let steps = plan(
            &targets(&["woocommerce/small=1"]),
            &[&failed, &other],
            10,
            never,
        );
        assert_eq!(
            steps,
            [
                Step::Delete {
                    store_id: "store-00000a".into(),
                    why: "it failed while waiting in the pool"
                },
                Step::Delete {
                    store_id: "store-00000c".into(),
                    why: "its kind is no longer in the pool"
                },
                Step::Create(small()),
            ]
        );
    }

    #[test]
    fn a_claimed_store_is_no_longer_the_pools() {
        // Claimed: the owner is a user's (the label went with the same patch, but the owner decides).
        let claimed = store(
            "store-00000a",
            "alice",
            Some("woocommerce.small"),
            Phase::Ready,
        );
        assert_eq!(kind_label(&claimed), None);
        let steps = plan(&targets(&["woocommerce/small=1"]), &[&claimed], 10, never);
        assert_eq!(steps, [Step::Create(small())]);
    }
}

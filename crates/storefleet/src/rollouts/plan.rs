//! The wave planner, pure: given where each store is, which stores move next. No I/O, so every
//! rule (canary first, batch size, max unavailable, stop on a failure) is a unit test.
use super::types::StoreStep;

/// What the planner sees.
#[derive(Debug, Clone)]
pub struct Wave<'a> {
    /// Each store of the rollout, in order, with its step.
    pub stores: &'a [(String, StoreStep)],
    /// The canary's id: it moves first, alone.
    pub canary: Option<&'a str>,
    pub batch_size: u32,
    pub max_unavailable: u32,
    /// Stores of the selection that are not Ready now, among them those the rollout moves.
    pub unavailable: u32,
    pub paused: bool,
    pub aborted: bool,
}

/// The one thing to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Stores are upgrading or rolling back: gate them, start nothing.
    Gate,
    Aborted,
    /// A store was rolled back, or an operator paused: start nothing.
    Paused,
    /// Move these stores to the target (recorded as `Upgrading` first).
    Start(Vec<String>),
    /// Nothing may start yet (too many stores unavailable).
    Wait,
    Completed,
}

pub fn next(wave: &Wave) -> Next {
    // A store backing up is in flight (its batch waits for it) but not unavailable: a backup
    // leaves the store running, so `unavailable` does not count it.
    let in_flight = |s: &StoreStep| {
        matches!(
            s,
            StoreStep::BackingUp | StoreStep::Upgrading | StoreStep::RollingBack
        )
    };
    // Stores already moving finish (pass or are rolled back) even when paused or aborted: a store
    // left half-way would be neither on the old nor on the new revision.
    if wave.stores.iter().any(|(_, s)| in_flight(s)) {
        return Next::Gate;
    }
    if wave.aborted {
        return Next::Aborted;
    }
    if wave.paused {
        return Next::Paused;
    }
    let pending: Vec<&str> = wave
        .stores
        .iter()
        .filter(|(_, s)| *s == StoreStep::Pending)
        .map(|(id, _)| id.as_str())
        .collect();
    let Some(first) = pending.first() else {
        return Next::Completed;
    };
    let slots = wave.max_unavailable.saturating_sub(wave.unavailable);
    if slots == 0 {
        return Next::Wait;
    }
    let canary_done = wave.stores.iter().any(|(_, s)| *s == StoreStep::Upgraded);
    if !canary_done {
        // The canary alone: the named one if it is still pending, else the first.
        let canary = wave.canary.filter(|c| pending.contains(c)).unwrap_or(first);
        return Next::Start(vec![canary.to_owned()]);
    }
    let take = wave.batch_size.min(slots) as usize;
    Next::Start(pending.iter().take(take).map(|s| (*s).to_owned()).collect())
}

/// `upgraded/total`.
pub fn progress(stores: &[(String, StoreStep)]) -> String {
    let done = stores
        .iter()
        .filter(|(_, s)| *s == StoreStep::Upgraded)
        .count();
    format!("{done}/{}", stores.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use StoreStep::*;

    fn stores(steps: &[StoreStep]) -> Vec<(String, StoreStep)> {
        steps
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("store-00000{i}"), *s))
            .collect()
    }

    fn wave(stores: &[(String, StoreStep)]) -> Wave<'_> {
        Wave {
            stores,
            canary: None,
            batch_size: 2,
            max_unavailable: 2,
            unavailable: 0,
            paused: false,
            aborted: false,
        }
    }

    fn ids(list: &[&str]) -> Next {
        Next::Start(list.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn the_canary_moves_first_and_alone() {
        let s = stores(&[Pending, Pending, Pending]);
        assert_eq!(next(&wave(&s)), ids(&["store-000000"]));
        let named = Wave {
            canary: Some("store-000002"),
            ..wave(&s)
        };
        assert_eq!(next(&named), ids(&["store-000002"]));
    }

    #[test]
    fn then_batches_bounded_by_max_unavailable() {
        let s = stores(&[Upgraded, Pending, Pending, Pending]);
        assert_eq!(next(&wave(&s)), ids(&["store-000001", "store-000002"]));
        let tight = Wave {
            batch_size: 3,
            max_unavailable: 2,
            ..wave(&s)
        };
        assert_eq!(next(&tight), ids(&["store-000001", "store-000002"]));
        // Another store of the selection is down: one slot left.
        let one_down = Wave {
            unavailable: 1,
            ..wave(&s)
        };
        assert_eq!(next(&one_down), ids(&["store-000001"]));
        let all_down = Wave {
            unavailable: 2,
            ..wave(&s)
        };
        assert_eq!(next(&all_down), Next::Wait);
    }

    #[test]
    fn a_batch_is_gated_before_the_next() {
        let s = stores(&[Upgraded, Upgrading, Pending]);
        assert_eq!(next(&wave(&s)), Next::Gate);
        let s = stores(&[RollingBack, Pending]);
        assert_eq!(next(&wave(&s)), Next::Gate);
        // A batch whose stores are still backing up starts no other store.
        let s = stores(&[Upgraded, BackingUp, Upgrading, Pending]);
        assert_eq!(next(&wave(&s)), Next::Gate);
    }

    #[test]
    fn pause_and_abort_start_nothing_but_let_moving_stores_finish() {
        let s = stores(&[Upgraded, Pending]);
        let paused = Wave {
            paused: true,
            ..wave(&s)
        };
        assert_eq!(next(&paused), Next::Paused);
        let aborted = Wave {
            aborted: true,
            ..wave(&s)
        };
        assert_eq!(next(&aborted), Next::Aborted);
        let moving = stores(&[Upgrading, Pending]);
        assert_eq!(
            next(&Wave {
                aborted: true,
                ..wave(&moving)
            }),
            Next::Gate
        );
    }

    #[test]
    fn a_rolled_back_store_is_not_moved_again() {
        // Resumed after a failure: the canary was rolled back, so the next store is a canary again.
        let s = stores(&[RolledBack, Pending, Pending]);
        assert_eq!(next(&wave(&s)), ids(&["store-000001"]));
        let s = stores(&[RolledBack, Upgraded]);
        assert_eq!(next(&wave(&s)), Next::Completed);
        assert_eq!(progress(&s), "1/2");
    }
}

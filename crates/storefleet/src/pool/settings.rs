//! How many ready stores the pool keeps, per engine and plan: `--pool woocommerce/small=2` (repeat,
//! or comma-separated in `STOREFLEET_POOL`). Parsed once at start; a plan the platform does not
//! have is refused then, not found out at the first refill.
use std::collections::BTreeMap;
use std::fmt;

use crate::domain::Engine;
use crate::plans::{PlanName, PlanTable};

/// The most pool stores of one kind: a pool is a few ready stores, not a fleet.
pub const MAX_PER_KIND: u32 = 50;

/// One kind of pool store: what a claim must match.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolKind {
    pub engine: Engine,
    pub plan: PlanName,
}

impl fmt::Display for PoolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.engine.as_str(), self.plan.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolTargetsError {
    #[error("--pool {0:?}: expected <engine>/<plan>=<count>, e.g. woocommerce/small=2")]
    Shape(String),
    #[error("--pool {0:?}: unknown engine (known: woocommerce)")]
    Engine(String),
    #[error("--pool {entry:?}: {reason}")]
    Plan { entry: String, reason: String },
    #[error("--pool {0:?}: the count is a whole number from 0 to {MAX_PER_KIND}")]
    Count(String),
    #[error("--pool names {0} twice")]
    Twice(String),
}

/// The pool's size per kind; empty: no pool (the default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolTargets(BTreeMap<PoolKind, u32>);

impl PoolTargets {
    /// `entries` as given on the command line; `plans` is the platform's plan table.
    pub fn parse(entries: &[String], plans: &PlanTable) -> Result<Self, PoolTargetsError> {
        let mut targets = BTreeMap::new();
        for raw in entries {
            let entry = raw.trim();
            let shape = || PoolTargetsError::Shape(raw.chars().take(64).collect());
            let (kind, count) = entry.split_once('=').ok_or_else(shape)?;
            let (engine, plan) = kind.split_once('/').ok_or_else(shape)?;
            let engine = serde_json::from_value::<Engine>(serde_json::Value::String(
                engine.trim().to_owned(),
            ))
            .map_err(|_| PoolTargetsError::Engine(engine.chars().take(64).collect()))?;
            let plan = PlanName::parse(plan.trim())
                .map_err(|e| PoolTargetsError::Plan {
                    entry: entry.to_owned(),
                    reason: e.to_string(),
                })
                .and_then(|plan| {
                    plans
                        .get(&plan)
                        .map(|_| plan.clone())
                        .map_err(|_| PoolTargetsError::Plan {
                            entry: entry.to_owned(),
                            reason: format!("the platform has no plan `{plan}`"),
                        })
                })?;
            let count: u32 = count
                .trim()
                .parse()
                .ok()
                .filter(|n| *n <= MAX_PER_KIND)
                .ok_or_else(|| PoolTargetsError::Count(entry.to_owned()))?;
            let kind = PoolKind { engine, plan };
            if targets.insert(kind.clone(), count).is_some() {
                return Err(PoolTargetsError::Twice(kind.to_string()));
            }
        }
        targets.retain(|_, n| *n > 0);
        Ok(Self(targets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many ready stores to keep of `kind` (0: none).
    pub fn of(&self, kind: &PoolKind) -> u32 {
        self.0.get(kind).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PoolKind, u32)> {
        self.0.iter().map(|(k, n)| (k, *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[&str]) -> Result<PoolTargets, PoolTargetsError> {
        let entries: Vec<String> = entries.iter().map(|s| (*s).to_owned()).collect();
        PoolTargets::parse(&entries, &PlanTable::builtin())
    }

    #[test]
    fn kinds_and_counts() {
        let targets = parse(&["woocommerce/small=2", " woocommerce/large = 1 "]).unwrap();
        let small = PoolKind {
            engine: Engine::Woocommerce,
            plan: PlanName::parse("small").unwrap(),
        };
        assert_eq!(targets.of(&small), 2);
        assert_eq!(targets.iter().count(), 2);
        assert!(parse(&[]).unwrap().is_empty());
        assert!(
            parse(&["woocommerce/small=0"]).unwrap().is_empty(),
            "0 is off"
        );
    }

    #[test]
    fn bad_entries_are_refused_with_what_was_wrong() {
        for (entry, expected) in [
            ("woocommerce/small", "expected <engine>/<plan>=<count>"),
            ("small=2", "expected <engine>/<plan>=<count>"),
            ("medusa/small=2", "unknown engine"),
            ("woocommerce/Small=2", "not a plan name"),
            ("woocommerce/huge=2", "no plan `huge`"),
            ("woocommerce/small=-1", "whole number"),
            ("woocommerce/small=51", "whole number"),
        ] {
            let e = parse(&[entry]).unwrap_err().to_string();
            assert!(e.contains(expected), "{entry}: {e}");
        }
        let twice = parse(&["woocommerce/small=1", "woocommerce/small=2"]).unwrap_err();
        assert_eq!(twice, PoolTargetsError::Twice("woocommerce/small".into()));
    }
}

//! The platform's plans: each name maps to the store's resources (WordPress and MariaDB requests and
//! limits), its namespace quota and its volume sizes. Parsed once, at start, from `--plans` (the
//! platform chart's `plans` and `defaultPlan`) or the built-in table; a table that cannot hold its
//! own stores (volumes beyond the quota) is refused then, not at a store's upgrade.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, ensure};
use serde::{Deserialize, Serialize};

use super::{PlanName, StorageSize};

/// What one plan gives a store.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub wordpress: Workload,
    pub mariadb: Workload,
    /// Entries of the namespace's ResourceQuota `hard` (`requests.cpu`, `requests.storage`, ...);
    /// the chart's other entries (`pods`, ...) stay as the store chart's values set them.
    pub quota: BTreeMap<String, Quantity>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub resources: Resources,
    /// The size of the workload's volume (WordPress files; MariaDB data).
    pub storage: StorageSize,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub requests: BTreeMap<String, Quantity>,
    pub limits: BTreeMap<String, Quantity>,
}

/// A resource quantity as the chart passes it on (`100m`, `"1"`, `512Mi`). Values files often write
/// `cpu: 1` unquoted, so a YAML number is taken too, and kept as its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(u64),
            Float(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Int(n) => n.to_string(),
            Raw::Float(f) => f.to_string(),
        };
        let ok = !text.is_empty()
            && text.len() <= 32
            && text.starts_with(|c: char| c.is_ascii_digit())
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if ok {
            Ok(Quantity(text))
        } else {
            Err(serde::de::Error::custom(format!(
                "{text:?} is not a quantity"
            )))
        }
    }
}

/// Every plan of the platform, and the one a store gets when it names none.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanTable {
    default: PlanName,
    plans: BTreeMap<PlanName, Plan>,
}

/// A plan name the platform does not define: the 422 lists the ones it does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("there is no plan `{given}`; the plans are {}", known.join(", "))]
pub struct UnknownPlan {
    pub given: String,
    pub known: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    default: PlanName,
    plans: BTreeMap<PlanName, Plan>,
}

const BUILTIN: &str = include_str!("builtin.yaml");

impl PlanTable {
    /// `small`, `medium` and `large`, `small` the default (builtin.yaml).
    pub fn builtin() -> Self {
        Self::parse(BUILTIN).expect("the built-in plan table is valid")
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--plans {}: cannot read it", path.display()))?;
        Self::parse(&text).with_context(|| format!("--plans {}", path.display()))
    }

    pub fn parse(yaml: &str) -> anyhow::Result<Self> {
        let file: TableFile = serde_yaml::from_str(yaml).context("not a plan table")?;
        ensure!(!file.plans.is_empty(), "no plans");
        ensure!(
            file.plans.contains_key(&file.default),
            "the default plan `{}` is not one of the plans",
            file.default
        );
        for (name, plan) in &file.plans {
            // A plan whose volumes the quota does not admit fails every store given it.
            if let Some(quota) = plan.quota.get("requests.storage") {
                let quota = StorageSize::parse(&quota.0)
                    .with_context(|| format!("plan `{name}`: quota requests.storage"))?;
                let volumes = plan.wordpress.storage.bytes() + plan.mariadb.storage.bytes();
                ensure!(
                    volumes <= quota.bytes(),
                    "plan `{name}`: its volumes ({} + {}) exceed its quota requests.storage {quota}",
                    plan.wordpress.storage,
                    plan.mariadb.storage
                );
            }
        }
        Ok(Self {
            default: file.default,
            plans: file.plans,
        })
    }

    pub fn default_plan(&self) -> &PlanName {
        &self.default
    }

    /// The plan of a store: its own, or the default when it names none.
    pub fn effective<'a>(&'a self, chosen: Option<&'a PlanName>) -> &'a PlanName {
        chosen.unwrap_or(&self.default)
    }

    pub fn get(&self, name: &PlanName) -> Result<&Plan, UnknownPlan> {
        self.plans
            .get(name)
            .ok_or_else(|| self.unknown(name.as_str()))
    }

    /// A name as a client sent it: malformed or unknown are the same answer, the list of plans.
    pub fn lookup(&self, raw: &str) -> Result<(PlanName, &Plan), UnknownPlan> {
        let name = PlanName::parse(raw).map_err(|e| self.unknown(&e.0))?;
        let plan = self.get(&name)?;
        Ok((name, plan))
    }

    pub fn names(&self) -> impl Iterator<Item = &PlanName> {
        self.plans.keys()
    }

    fn unknown(&self, given: &str) -> UnknownPlan {
        UnknownPlan {
            given: given.to_owned(),
            known: self.plans.keys().map(|n| n.to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn yaml(path: &str) -> serde_yaml::Value {
        serde_yaml::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
    }

    /// The plan table inside a platform chart values file, as `storefleet serve` reads it.
    fn platform_table(values: &serde_yaml::Value) -> PlanTable {
        let file = serde_yaml::to_string(&serde_yaml::Mapping::from_iter([
            ("default".into(), values["defaultPlan"].clone()),
            ("plans".into(), values["plans"].clone()),
        ]))
        .unwrap();
        PlanTable::parse(&file).unwrap()
    }

    /// `plan` has the numbers of a store chart values file: a store of this plan looks exactly as
    /// one made before plans existed.
    fn assert_matches_store_values(plan: &Plan, values: &serde_yaml::Value, what: &str) {
        for (workload, ours) in [("wordpress", &plan.wordpress), ("mariadb", &plan.mariadb)] {
            assert_eq!(
                serde_yaml::to_value(&ours.resources).unwrap(),
                values[workload]["resources"],
                "{what}: {workload} resources"
            );
            assert_eq!(
                ours.storage,
                StorageSize::parse(values[workload]["persistence"]["size"].as_str().unwrap())
                    .unwrap(),
                "{what}: {workload} storage"
            );
        }
        for (key, quantity) in &plan.quota {
            assert_eq!(
                values["quota"]["hard"][key.as_str()].as_str(),
                Some(quantity.0.as_str()),
                "{what}: quota {key}"
            );
        }
    }

    #[test]
    fn builtin_small_is_todays_store() {
        let table = PlanTable::builtin();
        assert_eq!(table.default_plan().as_str(), "small");
        let names: Vec<_> = table.names().map(PlanName::as_str).collect();
        assert_eq!(names, ["large", "medium", "small"]);
        let small = table.get(table.default_plan()).unwrap();
        for file in ["charts/store/values.yaml", "charts/store/values-local.yaml"] {
            assert_matches_store_values(small, &yaml(file), file);
        }
    }

    #[test]
    fn platform_chart_carries_the_builtin_table() {
        let values = yaml("charts/storefleet/values.yaml");
        assert_eq!(platform_table(&values), PlanTable::builtin());
    }

    #[test]
    fn production_small_is_todays_production_store() {
        // The prod file overrides values.yaml; helm merges maps, so merge the same way.
        let mut values = yaml("charts/storefleet/values.yaml");
        merge(&mut values, yaml("charts/storefleet/values-prod.yaml"));
        let table = platform_table(&values);
        let small = table.get(table.default_plan()).unwrap();
        assert_matches_store_values(
            small,
            &yaml("charts/store/values-prod.yaml"),
            "values-prod.yaml",
        );
    }

    fn merge(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
        match (base, over) {
            (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(o)) => {
                for (k, v) in o {
                    match b.get_mut(&k) {
                        Some(slot) => merge(slot, v),
                        None => {
                            b.insert(k, v);
                        }
                    }
                }
            }
            (slot, v) => *slot = v,
        }
    }

    #[test]
    fn unknown_and_malformed_names_list_the_plans() {
        let table = PlanTable::builtin();
        assert_eq!(table.lookup("medium").unwrap().0.as_str(), "medium");
        for raw in ["huge", "Medium", "", "x y"] {
            let e = table.lookup(raw).unwrap_err();
            assert_eq!(e.known, ["large", "medium", "small"]);
            assert!(e.to_string().contains("large, medium, small"), "{e}");
        }
        let default = table.effective(None);
        assert_eq!(default.as_str(), "small");
    }

    #[test]
    fn refuses_tables_that_cannot_hold_their_stores() {
        let plan = |quota: &str| {
            format!(
                "default: s\nplans:\n  s:\n    wordpress: {{resources: {{requests: {{cpu: 1}}, limits: {{cpu: 2}}}}, storage: 6Gi}}\n    mariadb: {{resources: {{requests: {{}}, limits: {{}}}}, storage: 6Gi}}\n    quota: {{requests.storage: {quota}}}\n"
            )
        };
        assert!(PlanTable::parse(&plan("12Gi")).is_ok());
        let e = PlanTable::parse(&plan("10Gi")).unwrap_err();
        assert!(format!("{e:#}").contains("exceed its quota"), "{e:#}");
        assert!(PlanTable::parse("default: x\nplans: {}\n").is_err());
        let e = PlanTable::parse(&plan("12Gi").replace("default: s", "default: m")).unwrap_err();
        assert!(format!("{e:#}").contains("not one of the plans"), "{e:#}");
        assert!(PlanTable::parse(&plan("12Gi").replace("6Gi", "six")).is_err());
        assert!(PlanTable::parse(&plan("12Gi").replace("quota:", "quotas:")).is_err());
    }
}

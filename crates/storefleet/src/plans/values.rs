//! A plan as store chart values: the part of the generated values file that sizes the store.
use std::collections::BTreeMap;

use serde::Serialize;

use super::table::{Quantity, Resources};
use super::volumes::ReleaseSizes;
use super::{Plan, StorageSize};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanValues {
    pub wordpress: WorkloadValues,
    pub mariadb: WorkloadValues,
    pub quota: QuotaValues,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadValues {
    pub resources: Resources,
    pub persistence: Persistence,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Persistence {
    pub size: StorageSize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuotaValues {
    pub hard: BTreeMap<String, Quantity>,
}

impl PlanValues {
    pub fn new(plan: &Plan, sizes: &ReleaseSizes) -> Self {
        Self {
            wordpress: WorkloadValues {
                resources: plan.wordpress.resources.clone(),
                persistence: Persistence {
                    size: sizes.wordpress.clone(),
                },
            },
            mariadb: WorkloadValues {
                resources: plan.mariadb.resources.clone(),
                // The volumeClaimTemplate: what the StatefulSet was made with (see ReleaseSizes).
                persistence: Persistence {
                    size: sizes.database_template.clone(),
                },
            },
            quota: QuotaValues {
                hard: plan.quota.clone(),
            },
        }
    }
}

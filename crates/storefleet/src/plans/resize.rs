//! The controller's plan step, run with every `helm upgrade --install` (from the install action,
//! not a step of the reconcile table): before helm, size the values from the plan and the volumes
//! that exist; after helm, grow the MariaDB PVC.
//!
//! Why the two volumes grow differently: the WordPress PVC is a chart object, so its size is a
//! value and helm patches the PVC (were the controller to patch it, the next upgrade would write the
//! chart's smaller size back, and the API server refuses a shrink). The MariaDB PVC is made by the
//! StatefulSet from its volumeClaimTemplate, which is immutable: an upgrade that changes it fails.
//! So the template keeps the size the StatefulSet has (read from the StatefulSet, not remembered
//! elsewhere, so a recreated namespace starts again from the plan), and the controller patches the
//! PVC itself after helm (after, so the upgrade has raised the quota first).
use kube::Client;

use super::cluster;
use super::volumes::{ReleaseSizes, release_sizes};
use super::{PlanName, PlanTable, PlanValues, StorageSize, UnknownPlan};
use crate::crd::Store;
use crate::domain::StoreId;

/// A store's plan, ready for helm.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub plan: PlanName,
    pub values: PlanValues,
    sizes: ReleaseSizes,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// `spec.plan` names a plan this platform does not have (a Store written with kubectl, or a
    /// plan removed from the table): terminal until the spec changes.
    #[error(transparent)]
    Unknown(#[from] UnknownPlan),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

pub async fn prepare(
    client: &Client,
    table: &PlanTable,
    store: &Store,
    id: &StoreId,
) -> Result<Prepared, PrepareError> {
    let chosen = store
        .spec
        .plan
        .as_deref()
        .map(|raw| table.lookup(raw).map(|(name, _)| name))
        .transpose()?;
    let name = table.effective(chosen.as_ref()).clone();
    let plan = table.get(&name)?;
    let observed = cluster::observe(client, id).await?;
    let sizes = release_sizes(plan, &observed);
    Ok(Prepared {
        values: PlanValues::new(plan, &sizes),
        plan: name,
        sizes,
    })
}

/// After helm: the MariaDB PVC at the plan's size. `Some((from, to))` when it grew.
pub async fn grow(
    client: &Client,
    id: &StoreId,
    prepared: &Prepared,
) -> kube::Result<Option<(StorageSize, StorageSize)>> {
    cluster::grow_database(client, id, &prepared.sizes.database).await
}

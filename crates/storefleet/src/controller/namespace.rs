//! The store's namespace (= store id): created with server-side apply, deleted on cleanup.
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource};

use crate::crd::{
    LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_OWNER, LABEL_STORE_ID, MANAGED_BY, Store,
};
use crate::domain::{StoreId, owner::label_safe};

use super::status::FIELD_MANAGER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceState {
    Missing,
    Active,
    /// Being deleted: a new store cannot use it until it is gone.
    Terminating,
}

pub async fn observe(client: &Client, id: &StoreId) -> kube::Result<NamespaceState> {
    let ns = Api::<Namespace>::all(client.clone())
        .get_opt(id.as_str())
        .await?;
    Ok(match ns {
        None => NamespaceState::Missing,
        Some(ns) if ns.metadata.deletion_timestamp.is_some() => NamespaceState::Terminating,
        Some(_) => NamespaceState::Active,
    })
}

/// Creates (or corrects) the namespace, owned by its Store: when the API deletes a Store (foreground
/// propagation) the garbage collector deletes the namespace too, even where RBAC does not let the
/// control plane delete namespaces itself; and a force-removed Store leaves no orphan.
pub async fn ensure(
    client: &Client,
    id: &StoreId,
    store: &Store,
    instance: &str,
) -> kube::Result<()> {
    // blockOwnerDeletion: a foreground delete of the Store waits for the namespace to go first.
    let owner_ref = store.controller_owner_ref(&()).map(|mut r| {
        r.block_owner_deletion = Some(true);
        r
    });
    let ns = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": id.as_str(),
            "labels": {
                LABEL_STORE_ID: id.as_str(),
                LABEL_OWNER: label_safe(&store.spec.owner),
                LABEL_INSTANCE: instance,
                LABEL_MANAGED_BY: MANAGED_BY,
            },
            "ownerReferences": owner_ref.into_iter().collect::<Vec<_>>(),
        },
    });
    Api::<Namespace>::all(client.clone())
        .patch(
            id.as_str(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&ns),
        )
        .await
        .map(drop)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    Started,
    /// RBAC does not allow it: the garbage collector deletes the namespace through its owner reference.
    LeftToGarbageCollector,
}

/// Starts deleting the namespace; already gone is fine.
pub async fn delete(client: &Client, id: &StoreId) -> kube::Result<Deletion> {
    match Api::<Namespace>::all(client.clone())
        .delete(id.as_str(), &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(Deletion::Started),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Deletion::Started),
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(Deletion::LeftToGarbageCollector),
        Err(e) => Err(e),
    }
}

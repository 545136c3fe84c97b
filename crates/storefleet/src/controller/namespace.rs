//! The store's namespace (= store id): created with a plain create (the control plane's identity may
//! create namespaces but never update, patch or delete one), owned by its Store, and recognised as
//! the store's only by its label and that owner reference.
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

use crate::crd::{
    LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_OWNER, LABEL_STORE_ID, MANAGED_BY, Store,
};
use crate::domain::{StoreId, owner::label_safe};

/// Pod Security Admission (Kubernetes 1.23+) refuses pods below the `restricted` standard in store
/// namespaces: the store role may create workloads there, so without these a compromised controller
/// could run a privileged or hostPath pod (root on a node). The store chart's pods meet `restricted`;
/// the platform chart's admission policy refuses a store namespace without the `enforce` label.
const POD_SECURITY: [(&str, &str); 4] = [
    ("pod-security.kubernetes.io/enforce", "restricted"),
    ("pod-security.kubernetes.io/enforce-version", "latest"),
    ("pod-security.kubernetes.io/warn", "restricted"),
    ("pod-security.kubernetes.io/audit", "restricted"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceState {
    Missing,
    /// Exists, labelled with the store id and owned by this Store.
    Active,
    /// Being deleted: a new store cannot use it until it is gone.
    Terminating,
    /// Exists but is not this store's (no store-id label, or no owner reference to this Store): the
    /// control plane must neither install into it nor delete it.
    Foreign,
}

impl NamespaceState {
    pub fn foreign_message(id: &StoreId) -> String {
        format!(
            "a namespace named {id} already exists and is not this store's (it lacks the label \
             {LABEL_STORE_ID}={id} or an owner reference to this Store); delete it or choose another store"
        )
    }
}

pub async fn observe(client: &Client, id: &StoreId, store: &Store) -> kube::Result<NamespaceState> {
    let ns = Api::<Namespace>::all(client.clone())
        .get_opt(id.as_str())
        .await?;
    Ok(classify(ns.as_ref(), id, store))
}

fn classify(ns: Option<&Namespace>, id: &StoreId, store: &Store) -> NamespaceState {
    let Some(ns) = ns else {
        return NamespaceState::Missing;
    };
    // Whoever owns a terminating namespace, it has to go before the name can be used.
    if ns.metadata.deletion_timestamp.is_some() {
        return NamespaceState::Terminating;
    }
    let labelled = ns
        .labels()
        .get(LABEL_STORE_ID)
        .is_some_and(|v| v == id.as_str());
    let owned = store.uid().is_some_and(|uid| {
        ns.owner_references()
            .iter()
            .any(|r| r.uid == uid && r.kind == Store::kind(&()))
    });
    if labelled && owned {
        NamespaceState::Active
    } else {
        NamespaceState::Foreign
    }
}

/// Creates the namespace, owned by its Store: when the Store is deleted with foreground propagation
/// the garbage collector deletes the namespace too (the control plane may not), and a force-removed
/// Store leaves no orphan. A namespace of that name that already exists counts only if it is this
/// store's (a restart after the create, or a concurrent reconcile).
pub async fn ensure(
    client: &Client,
    id: &StoreId,
    store: &Store,
    instance: &str,
) -> kube::Result<NamespaceState> {
    let ns = desired(id, store, instance);
    let api = Api::<Namespace>::all(client.clone());
    match api.create(&PostParams::default(), &ns).await {
        Ok(created) => Ok(classify(Some(&created), id, store)),
        Err(kube::Error::Api(e)) if e.code == 409 => observe(client, id, store).await,
        Err(e) => Err(e),
    }
}

/// The store namespace as created: its labels (store, owner, instance, Pod Security) and its owner.
fn desired(id: &StoreId, store: &Store, instance: &str) -> Namespace {
    // blockOwnerDeletion: a foreground delete of the Store waits for the namespace to go first.
    let owner_ref = store.controller_owner_ref(&()).map(|mut r| {
        r.block_owner_deletion = Some(true);
        r
    });
    let mut labels = serde_json::json!({
        LABEL_STORE_ID: id.as_str(),
        LABEL_OWNER: label_safe(&store.spec.owner),
        LABEL_INSTANCE: instance,
        LABEL_MANAGED_BY: MANAGED_BY,
    });
    for (key, value) in POD_SECURITY {
        labels[key] = value.into();
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": id.as_str(),
            "labels": labels,
            "ownerReferences": owner_ref.into_iter().collect::<Vec<_>>(),
        },
    }))
    .expect("a valid Namespace")
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(uid: &str) -> Store {
        serde_json::from_value(json!({
            "apiVersion": "storefleet.dev/v1alpha1", "kind": "Store",
            "metadata": {"name": "store-abcdef", "uid": uid},
            "spec": {"owner": "alice"},
        }))
        .unwrap()
    }

    fn namespace(labels: serde_json::Value, owner_uid: Option<&str>, deleting: bool) -> Namespace {
        let owners: Vec<_> = owner_uid
            .map(|uid| json!({"apiVersion": "storefleet.dev/v1alpha1", "kind": "Store", "name": "store-abcdef", "uid": uid}))
            .into_iter()
            .collect();
        let mut ns = json!({"metadata": {"name": "store-abcdef", "labels": labels, "ownerReferences": owners}});
        if deleting {
            ns["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        }
        serde_json::from_value(ns).unwrap()
    }

    #[test]
    fn a_new_store_namespace_enforces_the_restricted_pod_security_standard() {
        let id = StoreId::parse("store-abcdef").unwrap();
        let ns = desired(&id, &store("u-1"), "default");
        let labels = ns.labels();
        for mode in ["enforce", "warn", "audit"] {
            assert_eq!(
                labels
                    .get(&format!("pod-security.kubernetes.io/{mode}"))
                    .map(String::as_str),
                Some("restricted"),
                "{mode}"
            );
        }
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/enforce-version")
                .map(String::as_str),
            Some("latest")
        );
        assert_eq!(
            labels.get(LABEL_MANAGED_BY).map(String::as_str),
            Some(MANAGED_BY)
        );
        // Its own store's namespace, as `observe` will see it.
        assert_eq!(
            classify(Some(&ns), &id, &store("u-1")),
            NamespaceState::Active
        );
    }

    #[test]
    fn a_namespace_is_the_stores_only_with_its_label_and_owner() {
        let id = StoreId::parse("store-abcdef").unwrap();
        let mine = store("u-1");
        let labels = json!({LABEL_STORE_ID: "store-abcdef"});
        assert_eq!(classify(None, &id, &mine), NamespaceState::Missing);
        assert_eq!(
            classify(
                Some(&namespace(labels.clone(), Some("u-1"), false)),
                &id,
                &mine
            ),
            NamespaceState::Active
        );
        // Someone's namespace that happens to have the name, or a previous Store's.
        assert_eq!(
            classify(Some(&namespace(json!({}), None, false)), &id, &mine),
            NamespaceState::Foreign
        );
        assert_eq!(
            classify(Some(&namespace(json!({}), Some("u-1"), false)), &id, &mine),
            NamespaceState::Foreign
        );
        assert_eq!(
            classify(
                Some(&namespace(labels.clone(), Some("u-0"), false)),
                &id,
                &mine
            ),
            NamespaceState::Foreign
        );
        assert_eq!(
            classify(Some(&namespace(json!({}), None, true)), &id, &mine),
            NamespaceState::Terminating
        );
    }
}

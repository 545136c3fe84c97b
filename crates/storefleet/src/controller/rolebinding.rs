//! Least privilege: the control plane's rights inside a store namespace come from one RoleBinding it
//! creates there (the store role to its own ServiceAccount), so they reach no other namespace.
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::config::StoreAccess;
use crate::crd::{LABEL_MANAGED_BY, LABEL_STORE_ID, MANAGED_BY};
use crate::domain::StoreId;

pub const NAME: &str = "storefleet";

/// Creates RoleBinding `storefleet` in the store namespace; one that exists already counts (the
/// identity may create RoleBindings but not read or change them, and the namespace is its own).
pub async fn ensure(client: &Client, id: &StoreId, access: &StoreAccess) -> kube::Result<()> {
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": NAME,
            "namespace": id.as_str(),
            "labels": { LABEL_STORE_ID: id.as_str(), LABEL_MANAGED_BY: MANAGED_BY },
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": access.role,
        },
        "subjects": [{
            "kind": "ServiceAccount",
            "name": access.service_account.name,
            "namespace": access.service_account.namespace,
        }],
    }))
    .expect("a valid RoleBinding");
    match Api::<RoleBinding>::namespaced(client.clone(), id.as_str())
        .create(&PostParams::default(), &binding)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

//! Least privilege: the control plane's rights inside a store namespace come from RoleBindings it
//! creates there, so they reach no other namespace: the store role to the controller's own
//! ServiceAccount (`storefleet`) and, when the API runs as an identity of its own, the API's role to
//! the API's ServiceAccount (`storefleet-api`). Only the controller binds: the API may grant nothing.
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::config::{ServiceAccountRef, StoreAccess};
use crate::crd::{LABEL_MANAGED_BY, LABEL_STORE_ID, MANAGED_BY};
use crate::domain::StoreId;

/// The controller's RoleBinding (the store role): what helm needs in the namespace.
pub const NAME: &str = "storefleet";
/// The API's RoleBinding: reading the store's credentials Secret.
pub const API_NAME: &str = "storefleet-api";

/// A RoleBinding that could not be made, and why.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot bind ClusterRole {role} to ServiceAccount {service_account} in namespace {namespace}: {source}"
)]
pub struct Refused {
    pub role: String,
    pub service_account: ServiceAccountRef,
    pub namespace: String,
    pub source: kube::Error,
}

/// Creates the store namespace's RoleBindings, the controller's first (helm needs it; the API's only
/// reveals credentials). One that exists already counts: the identity may create RoleBindings but
/// not read or change them, and the namespace is its own.
pub async fn ensure(client: &Client, id: &StoreId, access: &StoreAccess) -> Result<(), Refused> {
    let api = Api::<RoleBinding>::namespaced(client.clone(), id.as_str());
    for binding in bindings(id, access) {
        match api.create(&PostParams::default(), &binding.object).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => {
                return Err(Refused {
                    role: binding.role.to_owned(),
                    service_account: binding.service_account.clone(),
                    namespace: id.to_string(),
                    source,
                });
            }
        }
    }
    Ok(())
}

struct Binding<'a> {
    role: &'a str,
    service_account: &'a ServiceAccountRef,
    object: RoleBinding,
}

fn bindings<'a>(id: &StoreId, access: &'a StoreAccess) -> Vec<Binding<'a>> {
    let mut grants = vec![(NAME, access.role.as_str(), &access.service_account)];
    if let Some(api) = &access.api {
        grants.push((API_NAME, api.role.as_str(), &api.service_account));
    }
    grants
        .into_iter()
        .map(|(name, role, service_account)| Binding {
            role,
            service_account,
            object: role_binding(id, name, role, service_account),
        })
        .collect()
}

fn role_binding(
    id: &StoreId,
    name: &str,
    role: &str,
    service_account: &ServiceAccountRef,
) -> RoleBinding {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "namespace": id.as_str(),
            "labels": { LABEL_STORE_ID: id.as_str(), LABEL_MANAGED_BY: MANAGED_BY },
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role,
        },
        "subjects": [{
            "kind": "ServiceAccount",
            "name": service_account.name,
            "namespace": service_account.namespace,
        }],
    }))
    .expect("a valid RoleBinding")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiAccess;

    fn summary(bindings: &[Binding<'_>]) -> Vec<(String, String, String)> {
        bindings
            .iter()
            .map(|b| {
                let subject = &b.object.subjects.as_ref().unwrap()[0];
                (
                    b.object.metadata.name.clone().unwrap(),
                    b.object.role_ref.name.clone(),
                    format!("{}/{}", subject.namespace.as_deref().unwrap(), subject.name),
                )
            })
            .collect()
    }

    #[test]
    fn the_api_gets_its_own_binding_only_when_configured() {
        let id = StoreId::parse("store-abcdef").unwrap();
        let mut access = StoreAccess {
            role: "sf-store".into(),
            service_account: "platform/sf-controller".parse().unwrap(),
            api: None,
        };
        assert_eq!(
            summary(&bindings(&id, &access)),
            [(
                "storefleet".into(),
                "sf-store".into(),
                "platform/sf-controller".into()
            )]
        );
        access.api = Some(ApiAccess {
            role: "sf-store-api".into(),
            service_account: "platform/sf-api".parse().unwrap(),
        });
        let both = bindings(&id, &access);
        assert_eq!(
            summary(&both),
            [
                (
                    "storefleet".into(),
                    "sf-store".into(),
                    "platform/sf-controller".into()
                ),
                (
                    "storefleet-api".into(),
                    "sf-store-api".into(),
                    "platform/sf-api".into()
                ),
            ]
        );
        for binding in &both {
            assert_eq!(
                binding.object.metadata.namespace.as_deref(),
                Some("store-abcdef")
            );
            assert_eq!(binding.object.role_ref.kind, "ClusterRole");
        }
    }
}

//! The store's Helm release: install/upgrade, and unlocking a release left pending by a killed
//! control plane (compare Flux helm-controller's unlock.go).
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};

use crate::backups::settings::JobEgress;
use crate::config::StoreUrls;
use crate::crd::Store;
use crate::domain::StoreId;
use crate::helm::{NetworkPolicyValues, StoreValues};
use crate::mail::StoreMailValues;
use crate::plans::resize::Prepared;

/// The generated values file of a store.
pub fn values(
    store: &Store,
    id: &StoreId,
    urls: &StoreUrls,
    mail: Option<StoreMailValues>,
    backup_egress: Option<&JobEgress>,
    plan: &Prepared,
) -> StoreValues {
    StoreValues {
        store_id: id.to_string(),
        host: urls.host(id),
        site_title: store.display_name(),
        // WordPress's URL on the primary domain, if any; the platform host stays routed (an alias).
        site_url: match store.spec.domains.iter().find(|d| d.primary) {
            Some(primary) => format!("{}://{}", urls.scheme.as_str(), primary.name),
            None => urls.url(id),
        },
        // The store's own domains: the chart's routes and certificates.
        domains: store.spec.domains.clone(),
        mail,
        // With an S3 target, the backup and restore Jobs' way out to it.
        network_policy: backup_egress.map(|e| NetworkPolicyValues {
            backup_target: e.values(),
        }),
        plan: Some(plan.values.clone()),
        identity_generation: store.spec.identity_generation,
    }
}

/// Removes the release records (Secrets `sh.helm.release.v1.<id>.v<N>`) helm left in a pending or
/// uninstalling state. Safe only because nothing else operates on this release now: the controller
/// runs one reconcile per store at a time, and helm processes die with the control plane that ran
/// them. Answers the records removed (with their state).
pub async fn unlock(client: &Client, id: &StoreId) -> kube::Result<Vec<String>> {
    let secrets = Api::<Secret>::namespaced(client.clone(), id.as_str());
    let selector = format!("owner=helm,name={}", id.as_str());
    let mut removed = Vec::new();
    for secret in secrets
        .list(&ListParams::default().labels(&selector))
        .await?
    {
        let state = secret.labels().get("status").cloned().unwrap_or_default();
        if state.starts_with("pending-") || state == "uninstalling" {
            match secrets
                .delete(&secret.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
            removed.push(format!("{} ({state})", secret.name_any()));
        }
    }
    Ok(removed)
}

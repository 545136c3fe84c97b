//! The domain controller: every pass looks at each claim of this instance, resolves the name, reads
//! its certificate, and writes the state ([`super::state::decide`]) into the claim's status. It
//! also releases claims that no store lists any more (a store gone, or a request cut short between
//! claiming and writing the Store), after a grace period that covers a request under way.
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use super::claim::{self, delete_exactly};
use super::state::{self, Certificate, Dns};
use super::types::{DomainClaim, DomainClaimStatus};
use crate::crd::{LABEL_INSTANCE, Store};

pub const FIELD_MANAGER: &str = "storefleet-domains";
/// How often every domain is looked at: DNS changes and certificates take minutes anyway.
const PASS: Duration = Duration::from_secs(10);
/// A claim no store lists is released only after this: an add writes the claim first, the Store next.
const ORPHAN_GRACE: Duration = Duration::from_secs(120);
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Settings {
    pub instance: String,
    /// The platform's public addresses (`--public-address`); empty: DNS is not checked.
    pub public_addresses: Vec<IpAddr>,
    /// Stores are served over HTTPS: each domain needs its certificate.
    pub tls: bool,
}

pub async fn run(client: Client, settings: Settings) {
    loop {
        if let Err(e) = pass(&client, &settings).await {
            tracing::warn!("domain pass failed: {e}");
        }
        tokio::time::sleep(PASS).await;
    }
}

async fn pass(client: &Client, settings: &Settings) -> kube::Result<()> {
    let claims = claim::api(client)
        .list(&ListParams::default().labels(&format!("{LABEL_INSTANCE}={}", settings.instance)))
        .await?;
    let stores = Api::<Store>::all(client.clone());
    for c in claims.items {
        let store = stores.get_opt(&c.spec.store_id).await?;
        let listed = store
            .as_ref()
            .is_some_and(|s| s.spec.domains.iter().any(|d| d.name == c.name_any()));
        if !listed {
            if older_than(&c, ORPHAN_GRACE) && delete_exactly(&claim::api(client), &c).await? {
                tracing::info!(domain = %c.name_any(), store_id = %c.spec.store_id, "released a domain no store lists");
            }
            continue;
        }
        if let Err(e) = check(client, settings, &c).await {
            tracing::warn!(domain = %c.name_any(), "domain check failed: {e}");
        }
    }
    Ok(())
}

async fn check(client: &Client, settings: &Settings, c: &DomainClaim) -> kube::Result<()> {
    let domain = c.name_any();
    let dns = if settings.public_addresses.is_empty() {
        Dns::NotChecked
    } else {
        resolve(&domain).await
    };
    let certificate = if settings.tls {
        certificate(client, &c.spec.store_id, &domain).await?
    } else {
        Certificate::NotNeeded
    };
    let (state, message) = state::decide(&settings.public_addresses, &dns, &certificate);
    let old = c.status.clone().unwrap_or_default();
    if old.state == Some(state) && old.message.as_deref() == Some(message.as_str()) {
        return Ok(());
    }
    if old.state != Some(state) {
        tracing::info!(domain = %domain, store_id = %c.spec.store_id, state = state.as_str(), "{message}");
    }
    let status = DomainClaimStatus {
        state: Some(state),
        message: Some(message),
        checked_at: Some(Time(Timestamp::now())),
    };
    claim::api(client)
        .patch_status(
            &domain,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "storefleet.dev/v1alpha1",
                "kind": "StoreDomain",
                "status": status,
            })),
        )
        .await?;
    Ok(())
}

async fn resolve(domain: &str) -> Dns {
    match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((domain, 443))).await {
        Ok(Ok(addrs)) => {
            let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            ips.sort();
            ips.dedup();
            Dns::Resolved(ips)
        }
        Ok(Err(e)) => Dns::Failed(e.to_string()),
        Err(_) => Dns::Failed(format!("no answer within {}s", DNS_TIMEOUT.as_secs())),
    }
}

/// The Certificate the store chart makes for `domain` (see [`certificate_name`]).
async fn certificate(client: &Client, store: &str, domain: &str) -> kube::Result<Certificate> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cert-manager.io",
        "v1",
        "Certificate",
    ));
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), store, &resource);
    let object = match api.get_opt(&certificate_name(domain)).await {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(Certificate::Missing),
        // cert-manager's CRDs are not installed: nothing will ever issue it.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Certificate::Missing),
        Err(e) => return Err(e),
    };
    let status = &object.data["status"];
    let ready = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let message = ready
        .and_then(|c| c["message"].as_str())
        .unwrap_or("no status yet")
        .to_owned();
    Ok(match ready.map(|c| c["status"].as_str()) {
        Some(Some("True")) => Certificate::Issued,
        _ if status["lastFailureTime"].is_string() => Certificate::Failed(message),
        _ => Certificate::Pending(message),
    })
}

/// The name of a domain's Certificate (and, with `-tls`, its Secret) in the store's namespace; the
/// store chart computes the same (`store.domainCertName`): a fixed-length name, since a domain of
/// 253 bytes plus a suffix would not be a valid object name.
pub fn certificate_name(domain: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "domain-{}",
        &hex::encode(Sha256::digest(domain.as_bytes()))[..10]
    )
}

fn older_than(c: &DomainClaim, age: Duration) -> bool {
    c.metadata
        .creation_timestamp
        .as_ref()
        .is_some_and(|t| Timestamp::now().duration_since(t.0).unsigned_abs() > age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_are_short_and_stable() {
        // The same as the chart's `sha256sum | trunc 10` (checked against helm in tests/domains.rs).
        assert_eq!(
            certificate_name("shop.example.com"),
            certificate_name("shop.example.com")
        );
        assert_eq!(certificate_name("shop.example.com").len(), 17);
        assert_ne!(
            certificate_name("a.example.com"),
            certificate_name("b.example.com")
        );
    }
}

//! Where a store's WordPress is, and the check as the API runs it.
//!
//! The address comes from the Kubernetes API (the Service's ClusterIP), not from cluster DNS
//! (`<id>-wordpress.<id>.svc`): the same code then works in a cluster whatever its DNS domain, on
//! the test cluster (no cluster DNS; nothing answers on a ClusterIP, so the check says
//! "unreachable") and on real pods (kube-proxy makes ClusterIPs reachable from the host), without a
//! flag for tests. It costs one GET per check and `get services` in store namespaces (the API's
//! store role).
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client};

use super::{Checker, Checks, Failure, StorefrontHealth, Target};
use crate::config::StoreUrls;
use crate::domain::StoreId;

/// The store chart's WordPress Service: `<release>-wordpress`, and the release is the store id.
pub fn wordpress_service_name(id: &StoreId) -> String {
    format!("{id}-wordpress")
}

/// The store chart names the Service's port `http`.
const PORT_NAME: &str = "http";

/// Runs storefront checks for the API.
pub struct Storefronts {
    client: Client,
    urls: StoreUrls,
    checker: Checker,
}

impl Storefronts {
    pub fn new(client: Client, urls: StoreUrls, checker: Checker) -> Self {
        Self {
            client,
            urls,
            checker,
        }
    }

    /// Checks the store's storefront. `site_title` is the store's display name. `Err` only when the
    /// Kubernetes API cannot say where the Service is; a storefront that does not answer is a
    /// report with failed parts.
    pub async fn check(
        &self,
        id: &StoreId,
        site_title: &str,
    ) -> Result<StorefrontHealth, kube::Error> {
        let host = self.urls.host(id);
        let checks = match self.address(id).await? {
            Err(why) => Checks::not_asked(Failure::NoService, &why),
            Ok(addr) => {
                let target = Target {
                    addr,
                    host: host.clone(),
                    site_title: site_title.to_owned(),
                };
                self.checker.check(&target).await
            }
        };
        Ok(StorefrontHealth::new(id.to_string(), host, checks))
    }

    /// The WordPress Service's ClusterIP and port, or why there is none to ask.
    async fn address(&self, id: &StoreId) -> Result<Result<SocketAddr, String>, kube::Error> {
        let name = wordpress_service_name(id);
        let service = Api::<Service>::namespaced(self.client.clone(), id.as_str())
            .get_opt(&name)
            .await?;
        Ok(service
            .ok_or_else(|| format!("the store has no WordPress Service {name} (yet)"))
            .and_then(|s| cluster_address(&s, &name)))
    }
}

/// `clusterIP:port` of the Service's `http` port (or its only port).
fn cluster_address(service: &Service, name: &str) -> Result<SocketAddr, String> {
    let spec = service
        .spec
        .as_ref()
        .ok_or_else(|| format!("Service {name} has no spec"))?;
    let ip: IpAddr = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| format!("Service {name} has no ClusterIP"))?;
    let ports = spec.ports.as_deref().unwrap_or_default();
    let port = ports
        .iter()
        .find(|p| p.name.as_deref() == Some(PORT_NAME))
        .or(match ports {
            [only] => Some(only),
            _ => None,
        })
        .and_then(|p| u16::try_from(p.port).ok())
        .ok_or_else(|| format!("Service {name} has no port named {PORT_NAME}"))?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(yaml: &str) -> Service {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn reads_the_cluster_address() {
        let s = service(
            "metadata: {name: x}\nspec: {clusterIP: 10.0.0.12, ports: [{name: http, port: 80, targetPort: http}]}",
        );
        assert_eq!(
            cluster_address(&s, "x").unwrap(),
            "10.0.0.12:80".parse().unwrap()
        );
        let headless = service(
            "metadata: {name: x}\nspec: {clusterIP: None, ports: [{name: http, port: 80}]}",
        );
        assert!(
            cluster_address(&headless, "x")
                .unwrap_err()
                .contains("no ClusterIP")
        );
        let other = service(
            "metadata: {name: x}\nspec: {clusterIP: 10.0.0.12, ports: [{name: a, port: 1}, {name: b, port: 2}]}",
        );
        assert!(
            cluster_address(&other, "x")
                .unwrap_err()
                .contains("no port named http")
        );
        let id = StoreId::parse("store-7016ff").unwrap();
        assert_eq!(wordpress_service_name(&id), "store-7016ff-wordpress");
    }
}

//! Validated configuration for `storefleet serve`, built once from the command line.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use crate::cli::ServeArgs;
use crate::domain::StoreId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlScheme {
    Http,
    Https,
}

impl UrlScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            UrlScheme::Http => "http",
            UrlScheme::Https => "https",
        }
    }
}

/// Which of the store chart's environment files (`values-<env>.yaml`) to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Local,
    Prod,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::Prod => "prod",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How the controller learns that a store's workloads changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadWatch {
    /// Watches Deployments, StatefulSets, Jobs and Pods in every namespace (read-only list/watch
    /// cluster-wide): readiness is noticed the moment it happens.
    Cluster,
    /// No cluster-wide workload watches: a store being provisioned is polled in its own namespace.
    Off,
}

impl WorkloadWatch {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadWatch::Cluster => "cluster",
            WorkloadWatch::Off => "off",
        }
    }
}

/// A ServiceAccount, `namespace/name` on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

impl std::str::FromStr for ServiceAccountRef {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let (namespace, name) = raw
            .split_once('/')
            .ok_or_else(|| format!("{raw:?} is not `namespace/name`"))?;
        if !is_dns_label(namespace) {
            return Err(format!("{namespace:?} is not a namespace name"));
        }
        if !is_dns_subdomain(name) {
            return Err(format!("{name:?} is not a ServiceAccount name"));
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Least privilege: in each store namespace it creates, the control plane binds `role` (a
/// ClusterRole) to its own identity, and holds rights there only through that RoleBinding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreAccess {
    pub role: String,
    pub service_account: ServiceAccountRef,
}

/// How store URLs are made: `<scheme>://<store id>.<base domain>`.
#[derive(Clone, Debug)]
pub struct StoreUrls {
    pub scheme: UrlScheme,
    pub base_domain: String,
}

impl StoreUrls {
    pub fn host(&self, id: &StoreId) -> String {
        format!("{id}.{}", self.base_domain)
    }

    pub fn url(&self, id: &StoreId) -> String {
        format!("{}://{}", self.scheme.as_str(), self.host(id))
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub urls: StoreUrls,
    pub environment: Environment,
    pub extra_values: Vec<PathBuf>,
    pub chart: PathBuf,
    pub helm: PathBuf,
    pub max_stores: u32,
    pub max_parallel: usize,
    pub provision_timeout: Duration,
    pub wait_limit: Duration,
    pub database_url: String,
    /// `None`: the built-in admin's token is generated at first start (see `storage::Users::bootstrap`).
    pub admin_token: Option<String>,
    pub instance: String,
    pub install_crd: bool,
    pub log_format: LogFormat,
    /// `None`: the control plane's identity already has rights in every namespace (an admin kubeconfig).
    pub store_access: Option<StoreAccess>,
    pub workload_watch: WorkloadWatch,
    /// Rate limits, request limits, CORS, security headers.
    pub guard: crate::api::guard::Settings,
}

impl Config {
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        ensure!(
            args.admin_token
                .as_deref()
                .is_none_or(|t| !t.trim().is_empty()),
            "--admin-token (STOREFLEET_ADMIN_TOKEN) must not be empty"
        );
        ensure!(
            is_dns_name(&args.base_domain),
            "--base-domain {:?} is not a DNS name",
            args.base_domain
        );
        ensure!(
            is_label_value(&args.instance),
            "--instance {:?} must be a label value (letters, digits, `-_.`, at most 63)",
            args.instance
        );
        ensure!(
            args.provision_timeout >= Duration::from_secs(1),
            "--provision-timeout must be at least 1s"
        );
        let chart = args.chart;
        ensure!(
            chart.join("Chart.yaml").is_file(),
            "--chart {}: no Chart.yaml there",
            chart.display()
        );
        let env_values = chart.join(format!("values-{}.yaml", args.environment.as_str()));
        ensure!(
            env_values.is_file(),
            "the chart has no {}",
            env_values.display()
        );
        let store_access = match (args.store_role, args.service_account) {
            (Some(role), Some(service_account)) => {
                ensure!(
                    is_dns_subdomain(&role),
                    "--store-role {role:?} is not a ClusterRole name"
                );
                Some(StoreAccess {
                    role,
                    service_account,
                })
            }
            (None, None) => None,
            _ => bail!(
                "--store-role (STOREFLEET_STORE_ROLE) and --service-account (STOREFLEET_SERVICE_ACCOUNT) go together"
            ),
        };
        for file in &args.values {
            if !file.is_file() {
                bail!("--values {}: no such file", file.display());
            }
        }
        // Helm runs with another working directory in mind: make every path absolute now.
        let absolute = |p: PathBuf| {
            std::path::absolute(&p).with_context(|| format!("resolving {}", p.display()))
        };
        Ok(Self {
            listen: args.listen,
            urls: StoreUrls {
                scheme: args.url_scheme,
                base_domain: args.base_domain,
            },
            environment: args.environment,
            extra_values: args
                .values
                .into_iter()
                .map(absolute)
                .collect::<Result<_, _>>()?,
            chart: absolute(chart)?,
            helm: args.helm,
            max_stores: args.max_stores,
            max_parallel: usize::from(args.max_parallel),
            provision_timeout: args.provision_timeout,
            wait_limit: args.wait_limit,
            database_url: args.database_url,
            admin_token: args.admin_token,
            instance: args.instance,
            install_crd: args.install_crd,
            log_format: args.log_format,
            store_access,
            workload_watch: args.workload_watch,
            guard: crate::api::guard::Settings::from_args(
                args.guard,
                args.wait_limit,
                args.url_scheme == UrlScheme::Https,
            )?,
        })
    }

    pub fn env_values_file(&self) -> PathBuf {
        self.chart
            .join(format!("values-{}.yaml", self.environment.as_str()))
    }
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// RFC 1123 label: namespace names.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: ServiceAccount and (in practice) ClusterRole names.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_and_label_values() {
        assert!(is_dns_name("localhost"));
        assert!(is_dns_name("shops.example.com"));
        assert!(!is_dns_name("-bad.com"));
        assert!(!is_dns_name("a..b"));
        assert!(!is_dns_name("a b"));
        assert!(is_label_value("default"));
        assert!(is_label_value("test-1a2b.x_y"));
        assert!(!is_label_value("-x"));
        assert!(!is_label_value(""));
        assert!(!is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn service_account_refs() {
        let sa: ServiceAccountRef = "storefleet/storefleet".parse().unwrap();
        assert_eq!(sa.namespace, "storefleet");
        assert_eq!(sa.name, "storefleet");
        assert_eq!(sa.to_string(), "storefleet/storefleet");
        assert!("storefleet".parse::<ServiceAccountRef>().is_err());
        assert!("Storefleet/x".parse::<ServiceAccountRef>().is_err());
        assert!("ns/".parse::<ServiceAccountRef>().is_err());
        assert!("ns/a/b".parse::<ServiceAccountRef>().is_err());
    }

    #[test]
    fn urls() {
        let urls = StoreUrls {
            scheme: UrlScheme::Http,
            base_domain: "localhost".into(),
        };
        let id = StoreId::parse("store-7016ff").unwrap();
        assert_eq!(urls.host(&id), "store-7016ff.localhost");
        assert_eq!(urls.url(&id), "http://store-7016ff.localhost");
    }
}

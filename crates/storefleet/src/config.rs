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

/// Which parts of the control plane this process runs. The platform chart runs `api` and
/// `controller` as two containers with two identities, so the process that parses requests from the
/// network holds no right to grant rights (docs/security.md, "Who may do what in the cluster").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The REST API and the dashboard, with their own watch of Stores.
    Api,
    /// The Store controller and Helm; `--listen` serves only `/healthz`, `/readyz` and `/metrics`.
    Controller,
    /// Both in one process, with one identity (development, tests, `scripts/run`).
    All,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Api => "api",
            Component::Controller => "controller",
            Component::All => "all",
        }
    }

    pub fn runs_api(self) -> bool {
        matches!(self, Component::Api | Component::All)
    }

    pub fn runs_controller(self) -> bool {
        matches!(self, Component::Controller | Component::All)
    }
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
    /// When the API runs as an identity of its own (the platform chart's `api` container): what it
    /// may do in each store namespace (read the store's credentials), bound there by the controller
    /// too, since the API itself may grant nothing.
    pub api: Option<ApiAccess>,
}

/// The API's grant in each store namespace: `role` (a ClusterRole) bound to `service_account`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiAccess {
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
    pub component: Component,
    pub listen: SocketAddr,
    pub urls: StoreUrls,
    pub environment: Environment,
    pub extra_values: Vec<PathBuf>,
    pub chart: PathBuf,
    pub helm: PathBuf,
    pub max_stores: u32,
    pub max_parallel: usize,
    pub provision_timeout: Duration,
    /// After SIGTERM: serving on, `/readyz` 503, before the listener closes.
    pub shutdown_delay: Duration,
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
    /// Housekeeping of the database: audit retention, idempotency keys' lifetime.
    pub retention: crate::storage::Retention,
    /// The SMTP relay of every store; `None`: stores send no mail (and say so).
    pub mail: Option<crate::mail::MailRelay>,
    /// The size plans (`--plans`, or the built-in table).
    pub plans: std::sync::Arc<crate::plans::PlanTable>,
    /// The warm pool's size per engine and plan (`--pool`; empty: no pool).
    pub pool: crate::pool::PoolTargets,
    /// Custom domains: the base domain they may not be under, how many per store.
    pub domains: crate::domains::DomainSettings,
    /// Where a store's own domain must resolve (`--public-address`); empty: not checked.
    pub public_addresses: Vec<std::net::IpAddr>,
    /// Backups: target, key, agent image; `None`: this platform offers no backups.
    pub backups: Option<std::sync::Arc<crate::backups::settings::PlatformBackups>>,
    /// A backup target is configured: the API takes backup requests.
    pub backups_offered: bool,
    /// Schedules and retention (both components: the API shows them, the controller acts).
    pub backup_policy: crate::backups::settings::BackupPolicy,
    /// `None`: leader election off, this process always runs the controllers.
    pub leader_election: Option<crate::leadership::Settings>,
}

/// The shortest `--admin-token` accepted: a guessable admin token is the one credential the
/// refused-sign-in limit cannot save (tokens the server makes have 256 bits).
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

impl Config {
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        ensure!(
            args.admin_token.as_deref().is_none_or(
                |t| t.trim().len() >= MIN_ADMIN_TOKEN_LEN && !t.contains(char::is_whitespace)
            ),
            "--admin-token (STOREFLEET_ADMIN_TOKEN) must be at least {MIN_ADMIN_TOKEN_LEN} characters, \
             without spaces (or leave it out: a 256-bit token is then generated and printed once)"
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
        let leader_election = leader_election(&args)?;
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
        let api_access = match (args.api_store_role, args.api_service_account) {
            (Some(role), Some(service_account)) => {
                ensure!(
                    is_dns_subdomain(&role),
                    "--api-store-role {role:?} is not a ClusterRole name"
                );
                Some(ApiAccess {
                    role,
                    service_account,
                })
            }
            (None, None) => None,
            _ => bail!(
                "--api-store-role (STOREFLEET_API_STORE_ROLE) and --api-service-account (STOREFLEET_API_SERVICE_ACCOUNT) go together"
            ),
        };
        let store_access = match (args.store_role, args.service_account) {
            (Some(role), Some(service_account)) => {
                ensure!(
                    is_dns_subdomain(&role),
                    "--store-role {role:?} is not a ClusterRole name"
                );
                Some(StoreAccess {
                    role,
                    service_account,
                    api: api_access,
                })
            }
            (None, None) => {
                // The controller binds the API's role in the same step as its own.
                ensure!(
                    api_access.is_none(),
                    "--api-store-role needs --store-role and --service-account: the controller binds both"
                );
                None
            }
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
        let mail = crate::mail::MailRelay::from_flags(args.mail.into())?;
        // The API only needs to know that backups are offered; the key stays with the controller.
        let backups_offered = args.backups.target.configured();
        let backup_policy = args.backups.policy();
        let backups = if args.component.runs_controller() {
            args.backups.platform()?.map(std::sync::Arc::new)
        } else {
            None
        };
        let plans = match &args.plans {
            Some(path) => crate::plans::PlanTable::from_file(path)?,
            None => crate::plans::PlanTable::builtin(),
        };
        let pool = crate::pool::PoolTargets::parse(&args.pool, &plans)?;
        let public_origin = args
            .public_url
            .as_deref()
            .map(crate::api::origin::PublicOrigin::parse)
            .transpose()?;
        let own_base_domain = args.base_domain.to_ascii_lowercase();
        Ok(Self {
            component: args.component,
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
            shutdown_delay: args.shutdown_delay,
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
                public_origin,
            )?,
            retention: crate::storage::Retention {
                audit_max_age: (!args.audit_max_age.is_zero()).then_some(args.audit_max_age),
                audit_max_entries: (args.audit_max_entries > 0).then_some(args.audit_max_entries),
                idempotency_ttl: args.idempotency_ttl,
            },
            mail,
            plans: std::sync::Arc::new(plans),
            pool,
            domains: crate::domains::DomainSettings {
                base_domain: own_base_domain,
                max_per_store: args.max_domains_per_store,
            },
            public_addresses: args.public_addresses,
            backups,
            backups_offered,
            backup_policy,
            leader_election,
        })
    }

    pub fn env_values_file(&self) -> PathBuf {
        self.chart
            .join(format!("values-{}.yaml", self.environment.as_str()))
    }
}

/// `--leader-election*`: where the Lease is and who this process is, checked before any request.
fn leader_election(args: &ServeArgs) -> anyhow::Result<Option<crate::leadership::Settings>> {
    if !args.leader_election {
        return Ok(None);
    }
    let lease = match &args.leader_election_lease {
        Some(name) => name.clone(),
        None => format!(
            "storefleet-{}",
            args.instance.to_ascii_lowercase().replace('_', "-")
        ),
    };
    ensure!(
        is_dns_subdomain(&lease),
        "--leader-election-lease {lease:?} is not a Lease name"
    );
    if let Some(ns) = &args.leader_election_namespace {
        ensure!(
            is_dns_label(ns),
            "--leader-election-namespace {ns:?} is not a namespace name"
        );
    }
    let identity = match &args.leader_election_identity {
        Some(id) if !id.trim().is_empty() => id.clone(),
        Some(_) => bail!("--leader-election-identity must not be empty"),
        // Unique on one machine and across machines; a restarted process is a new candidate.
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim()
                .to_owned();
            format!(
                "{}-{}",
                if host.is_empty() { "storefleet" } else { &host },
                std::process::id()
            )
        }
    };
    Ok(Some(crate::leadership::Settings {
        namespace: args.leader_election_namespace.clone(),
        lease,
        identity,
    }))
}

pub(crate) fn is_dns_name(s: &str) -> bool {
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

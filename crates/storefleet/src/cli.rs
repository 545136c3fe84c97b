//! Command line: `storefleet serve`, `storefleet crd`, `storefleet openapi`, `storefleet backup-agent`.
//! Every `serve` flag has a `STOREFLEET_*` environment equivalent.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    Component, Config, Environment, LogFormat, ServiceAccountRef, UrlScheme, WorkloadWatch,
};
use crate::mail::SmtpTls;

#[derive(Parser)]
#[command(
    name = "storefleet",
    version,
    about = "Online stores on demand, on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the REST API and the Store controller (both, or one of them: `--component`).
    Serve(Box<ServeArgs>),
    /// Print the Store CustomResourceDefinition as YAML (`--rollouts`: the StoreRollout one,
    /// `--domains`: the StoreDomain one; `--backups`: the StoreBackup one; `--restores`: the
    /// StoreRestore one).
    Crd {
        #[arg(long, conflicts_with_all = ["domains", "backups", "restores"])]
        rollouts: bool,
        #[arg(long, conflicts_with_all = ["backups", "restores"])]
        domains: bool,
        #[arg(long, conflicts_with = "restores")]
        backups: bool,
        #[arg(long)]
        restores: bool,
    },
    /// Print the OpenAPI document of the REST API as JSON.
    Openapi,
    /// Back a store up or restore it (what a backup Job runs in the store's namespace).
    BackupAgent {
        #[command(subcommand)]
        command: Box<crate::backups::agent::AgentCommand>,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// `all`: API and controller in this process; `api` or `controller`: one of them (the platform
    /// chart runs both, as separate containers with separate Kubernetes identities).
    #[arg(long, env = "STOREFLEET_COMPONENT", value_enum, default_value_t = Component::All)]
    pub component: Component,
    /// Address the API listens on (port 0 picks a free port; the log says which).
    #[arg(long, env = "STOREFLEET_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Stores are reachable at `<store id>.<base domain>`.
    #[arg(long, env = "STOREFLEET_BASE_DOMAIN", default_value = "localhost")]
    pub base_domain: String,
    #[arg(long, env = "STOREFLEET_URL_SCHEME", value_enum, default_value_t = UrlScheme::Http)]
    pub url_scheme: UrlScheme,
    /// Picks the chart's `values-<environment>.yaml`.
    #[arg(long, env = "STOREFLEET_ENVIRONMENT", value_enum, default_value_t = Environment::Local)]
    pub environment: Environment,
    /// The size plans stores may have (a YAML file: `default: <name>` and `plans: {<name>: ...}`, see
    /// the platform chart's `plans`). Unset: the built-in `small` (the store chart's defaults, the
    /// default plan), `medium` and `large`. The API and the controller must be given the same file.
    #[arg(long, env = "STOREFLEET_PLANS")]
    pub plans: Option<PathBuf>,
    /// Extra values files for every store, after the environment file (repeat, or comma-separated).
    #[arg(long = "values", env = "STOREFLEET_VALUES", value_delimiter = ',')]
    pub values: Vec<PathBuf>,
    /// The store chart (a directory).
    #[arg(long, env = "STOREFLEET_CHART", default_value = "charts/store")]
    pub chart: PathBuf,
    /// The helm binary.
    #[arg(long, env = "STOREFLEET_HELM", default_value = "helm")]
    pub helm: PathBuf,
    /// Stores not yet deleted, per instance, above which creation is refused.
    #[arg(long, env = "STOREFLEET_MAX_STORES", default_value_t = 5)]
    pub max_stores: u32,
    /// The warm pool: ready stores kept per engine and plan, claimed by `POST /stores`
    /// (`woocommerce/small=2`; repeat, or comma-separated). Pool stores count against
    /// `--max-stores` and never take its last slot (docs/pool.md). Unset: no pool.
    #[arg(long = "pool", env = "STOREFLEET_POOL", value_delimiter = ',')]
    pub pool: Vec<String>,
    /// Helm operations running at once.
    #[arg(long, env = "STOREFLEET_MAX_PARALLEL", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: u16,
    /// How long a store may take to become Ready before it is Failed (e.g. `10m`, `90s`).
    #[arg(long, env = "STOREFLEET_PROVISION_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub provision_timeout: std::time::Duration,
    /// After SIGTERM: how long this process keeps serving while `/readyz` answers 503, so that
    /// Kubernetes takes it out of the Service's endpoints before it stops accepting (`0s`: stop at
    /// once; the platform chart sets `5s`).
    #[arg(long, env = "STOREFLEET_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: std::time::Duration,
    /// How long `POST /stores?wait=true` waits before answering 202.
    #[arg(long, env = "STOREFLEET_WAIT_LIMIT", default_value = "60s", value_parser = parse_duration)]
    pub wait_limit: std::time::Duration,
    /// Users, tokens, dashboard sessions, idempotency keys and the audit log: `sqlite://<file>` (one
    /// replica) or `postgres://<user>:<password>@<host>/<database>` (shared by several replicas).
    #[arg(
        long,
        env = "STOREFLEET_DATABASE_URL",
        default_value = "sqlite://storefleet.db"
    )]
    pub database_url: String,
    /// Bearer token of the built-in `admin` user (at least 32 characters). Without it, a token is
    /// generated at first start, printed once to stdout, and only its hash is kept.
    #[arg(long, env = "STOREFLEET_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Which Stores this control plane serves (label `storefleet.dev/instance`; unlabelled = default).
    #[arg(long, env = "STOREFLEET_INSTANCE", default_value = "default")]
    pub instance: String,
    /// The dashboard's and API's own origin as browsers see it (`https://storefleet.example.com`):
    /// cookie-authenticated writes must come from exactly this scheme, host and port. Unset: the
    /// request's own host (`Host`, or HTTP/2's `:authority`) with `--url-scheme`.
    #[arg(long, env = "STOREFLEET_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// `Idempotency-Key`s are remembered this long.
    #[arg(long, env = "STOREFLEET_IDEMPOTENCY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_ttl: std::time::Duration,
    /// Audit entries older than this are deleted (`0s`: kept forever).
    #[arg(long, env = "STOREFLEET_AUDIT_MAX_AGE", default_value = "2160h", value_parser = parse_duration)]
    pub audit_max_age: std::time::Duration,
    /// At most this many audit entries are kept; the oldest go first (0: no limit). Each entry is at
    /// most about 1 KiB, so this bounds the log's size.
    #[arg(
        long,
        env = "STOREFLEET_AUDIT_MAX_ENTRIES",
        default_value_t = 1_000_000
    )]
    pub audit_max_entries: u64,
    /// Custom domains one store may have (`PUT /stores/{id}/domains/{domain}`).
    #[arg(long, env = "STOREFLEET_MAX_DOMAINS_PER_STORE", default_value_t = crate::domains::service::DEFAULT_MAX_PER_STORE)]
    pub max_domains_per_store: u32,
    /// The platform's public addresses (repeat, or comma-separated): a store's own domain must
    /// resolve to these (and only these) before it counts as set up. Unset: DNS is not checked.
    #[arg(
        long = "public-address",
        env = "STOREFLEET_PUBLIC_ADDRESS",
        value_delimiter = ','
    )]
    pub public_addresses: Vec<std::net::IpAddr>,
    /// Server-side apply the Store CRD at start and wait until it is Established (tests, development).
    #[arg(long, env = "STOREFLEET_INSTALL_CRD", default_value_t = false)]
    pub install_crd: bool,
    #[arg(long, env = "STOREFLEET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A ClusterRole to bind (RoleBinding `storefleet`) to --service-account in each store namespace
    /// right after creating it: least privilege, the identity has no rights there otherwise.
    /// Unset (with an admin kubeconfig): no RoleBinding.
    #[arg(long, env = "STOREFLEET_STORE_ROLE")]
    pub store_role: Option<String>,
    /// The control plane's own ServiceAccount (`namespace/name`), the subject of that RoleBinding.
    #[arg(long, env = "STOREFLEET_SERVICE_ACCOUNT")]
    pub service_account: Option<ServiceAccountRef>,
    /// A ClusterRole to bind (RoleBinding `storefleet-api`) to --api-service-account in each store
    /// namespace, next to the store role: what the API, running as an identity of its own, may do
    /// there (read the store's credentials). Needs --store-role.
    #[arg(long, env = "STOREFLEET_API_STORE_ROLE")]
    pub api_store_role: Option<String>,
    /// The API's own ServiceAccount (`namespace/name`), the subject of RoleBinding `storefleet-api`.
    #[arg(long, env = "STOREFLEET_API_SERVICE_ACCOUNT")]
    pub api_service_account: Option<ServiceAccountRef>,
    /// `cluster`: watch workloads and pods in every namespace (needs read-only list/watch of them
    /// cluster-wide) and notice readiness at once; `off`: poll each provisioning store's namespace.
    #[arg(long, env = "STOREFLEET_WORKLOAD_WATCH", value_enum, default_value_t = WorkloadWatch::Cluster)]
    pub workload_watch: WorkloadWatch,
    /// Several replicas: run the controllers only while this process holds the leader Lease
    /// (docs/controller.md, "Leadership"). Off (`--leader-election=false`, the default): this
    /// process always runs them, as one replica does. The platform chart turns it on.
    #[arg(
        long,
        env = "STOREFLEET_LEADER_ELECTION",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub leader_election: bool,
    /// The Lease's namespace; unset: the pod's own (in a cluster), else the kubeconfig context's.
    #[arg(long, env = "STOREFLEET_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// The Lease's name; unset: `storefleet-<instance>`.
    #[arg(long, env = "STOREFLEET_LEADER_ELECTION_LEASE")]
    pub leader_election_lease: Option<String>,
    /// This replica's name in the Lease (the platform chart: the pod's name); unset:
    /// `<hostname>-<pid>`.
    #[arg(long, env = "STOREFLEET_LEADER_ELECTION_IDENTITY")]
    pub leader_election_identity: Option<String>,
    /// Rate limits, request limits, CORS (see docs/security.md).
    #[command(flatten)]
    pub guard: crate::api::guard::GuardArgs,
    /// The SMTP relay every store sends its mail through (controller; docs/production.md).
    #[command(flatten)]
    pub mail: MailArgs,
    /// Where backups go and the key that seals them (docs/backups.md); unset: no backups.
    #[command(flatten)]
    pub backups: crate::backups::settings::PlatformBackupArgs,
}

/// The platform's SMTP relay. Without `--smtp-host`, stores send no mail and say so
/// (`MailConfigured=False`, reason `NoRelay`).
#[derive(Args, Debug)]
pub struct MailArgs {
    /// The relay's host name or IP address.
    #[arg(long, env = "STOREFLEET_SMTP_HOST")]
    pub smtp_host: Option<String>,
    #[arg(long, env = "STOREFLEET_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,
    /// `starttls` (port 587), `tls` (implicit TLS, port 465) or `none`.
    #[arg(long, env = "STOREFLEET_SMTP_TLS", value_enum)]
    pub smtp_tls: Option<SmtpTls>,
    /// The relay's addresses (`203.0.113.25/32`, or the provider's range): the stores' egress
    /// NetworkPolicy opens exactly this range on --smtp-port. Required when --smtp-host is a name;
    /// an IP address alone means that address.
    #[arg(long, env = "STOREFLEET_SMTP_RELAY_CIDR")]
    pub smtp_relay_cidr: Option<String>,
    /// The relay's login (with --smtp-password-file).
    #[arg(long, env = "STOREFLEET_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// A file holding the relay's password (a mounted Secret); never a flag value, which `ps` shows.
    #[arg(long, env = "STOREFLEET_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<PathBuf>,
    /// The From address of every store's mail (one the relay may send for).
    #[arg(long, env = "STOREFLEET_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// The From name; unset: each store's title.
    #[arg(long, env = "STOREFLEET_MAIL_FROM_NAME")]
    pub mail_from_name: Option<String>,
}

impl From<MailArgs> for crate::mail::RelayFlags {
    fn from(a: MailArgs) -> Self {
        Self {
            host: a.smtp_host,
            port: a.smtp_port,
            tls: a.smtp_tls,
            cidr: a.smtp_relay_cidr,
            from: a.mail_from,
            from_name: a.mail_from_name,
            username: a.smtp_username,
            password_file: a.smtp_password_file,
        }
    }
}

/// `10m`, `90s`, `1h 30m`, or ISO 8601 (`PT10M`).
pub(crate) fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    let d: k8s_openapi::jiff::SignedDuration =
        raw.parse().map_err(|e| format!("not a duration: {e}"))?;
    std::time::Duration::try_from(d).map_err(|_| "must not be negative".to_owned())
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd {
            rollouts,
            domains,
            backups,
            restores,
        } => {
            if restores {
                print!("{}", crate::backups::restores::types::crd_yaml());
            } else if backups {
                print!("{}", crate::backups::types::crd_yaml());
            } else if domains {
                print!("{}", crate::domains::types::crd_yaml());
            } else if rollouts {
                print!("{}", crate::rollouts::types::crd_yaml());
            } else {
                print!("{}", crate::crd::crd_yaml());
            }
            Ok(())
        }
        Command::Openapi => {
            print!("{}", crate::api::openapi::openapi_json());
            Ok(())
        }
        Command::BackupAgent { command } => {
            crate::telemetry::init(LogFormat::Text);
            crate::backups::agent::run(*command)
        }
        Command::Serve(args) => {
            let config = Config::from_args(*args)?;
            crate::telemetry::init(config.log_format);
            tokio::runtime::Runtime::new()?.block_on(crate::server::serve(config))
        }
    }
}

impl ValueEnum for UrlScheme {
    fn value_variants<'a>() -> &'a [Self] {
        &[UrlScheme::Http, UrlScheme::Https]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for Environment {
    fn value_variants<'a>() -> &'a [Self] {
        &[Environment::Local, Environment::Prod]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for Component {
    fn value_variants<'a>() -> &'a [Self] {
        &[Component::All, Component::Api, Component::Controller]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for WorkloadWatch {
    fn value_variants<'a>() -> &'a [Self] {
        &[WorkloadWatch::Cluster, WorkloadWatch::Off]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for SmtpTls {
    fn value_variants<'a>() -> &'a [Self] {
        &[SmtpTls::Starttls, SmtpTls::Tls, SmtpTls::None]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for LogFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[LogFormat::Text, LogFormat::Json]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("PT1M").unwrap().as_secs(), 60);
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/store");
        let mut argv = vec![
            "storefleet",
            "serve",
            "--admin-token",
            "0123456789abcdef0123456789abcdef",
            "--chart",
            chart,
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => *args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn short_admin_tokens_public_urls_and_components() {
        let short =
            Cli::try_parse_from(["storefleet", "serve", "--admin-token", "hunter2"]).unwrap();
        let Command::Serve(args) = short.command else {
            unreachable!()
        };
        let refused = Config::from_args(*args).unwrap_err().to_string();
        assert!(refused.contains("at least 32"), "{refused}");
        let config = Config::from_args(serve_args(&[
            "--public-url",
            "https://storefleet.example.com",
            "--component",
            "api",
        ]))
        .unwrap();
        assert_eq!(config.component, Component::Api);
        assert!(config.guard.origin.public.is_some());
        assert!(
            Config::from_args(serve_args(&["--public-url", "storefleet.example.com"])).is_err()
        );
        assert_eq!(
            Config::from_args(serve_args(&[])).unwrap().component,
            Component::All
        );
    }

    #[test]
    fn store_access_needs_role_and_service_account() {
        let config = Config::from_args(serve_args(&[])).unwrap();
        assert_eq!(config.store_access, None);
        assert_eq!(config.workload_watch, WorkloadWatch::Cluster);
        let config = Config::from_args(serve_args(&[
            "--store-role",
            "storefleet-store",
            "--service-account",
            "storefleet/storefleet",
            "--workload-watch",
            "off",
        ]))
        .unwrap();
        let access = config.store_access.unwrap();
        assert_eq!(access.role, "storefleet-store");
        assert_eq!(access.service_account.to_string(), "storefleet/storefleet");
        assert_eq!(config.workload_watch, WorkloadWatch::Off);
        assert_eq!(access.api, None);
        let alone = Config::from_args(serve_args(&["--store-role", "storefleet-store"]));
        assert!(alone.unwrap_err().to_string().contains("go together"));
        let config = Config::from_args(serve_args(&[
            "--store-role",
            "sf-store",
            "--service-account",
            "platform/sf-controller",
            "--api-store-role",
            "sf-store-api",
            "--api-service-account",
            "platform/sf-api",
        ]))
        .unwrap();
        let api = config.store_access.unwrap().api.unwrap();
        assert_eq!(api.role, "sf-store-api");
        assert_eq!(api.service_account.to_string(), "platform/sf-api");
        let alone = Config::from_args(serve_args(&["--api-store-role", "sf-store-api"]));
        assert!(alone.unwrap_err().to_string().contains("go together"));
        // Only the controller's identity may bind, so the API's grant comes with the store role.
        let without = Config::from_args(serve_args(&[
            "--api-store-role",
            "sf-store-api",
            "--api-service-account",
            "platform/sf-api",
        ]));
        let message = without.unwrap_err().to_string();
        assert!(message.contains("needs --store-role"), "{message}");
        assert!(
            Cli::try_parse_from(["storefleet", "serve", "--service-account", "no-slash"]).is_err()
        );
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

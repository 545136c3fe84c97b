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
    pub admin_token: String,
    pub instance: String,
    pub install_crd: bool,
    pub log_format: LogFormat,
}

impl Config {
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        ensure!(
            !args.admin_token.trim().is_empty(),
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

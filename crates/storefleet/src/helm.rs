//! Driving the `helm` binary: argv vectors only (never a shell), values through files (never `--set`),
//! and at most `--max-parallel` mutating operations at once.
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::domain::StoreId;
use crate::metrics::{self, Metrics};

/// A helm process that takes longer than this is killed: without `--wait` helm only creates objects.
const HELM_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("cannot run {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("helm {verb} did not finish within {}s", HELM_TIMEOUT.as_secs())]
    Timeout { verb: String },
    #[error("helm {verb} failed: {stderr}")]
    Failed { verb: String, stderr: String },
    #[error("helm {verb} printed something unexpected: {detail}")]
    Output { verb: String, detail: String },
    #[error("writing the values file: {0}")]
    ValuesFile(std::io::Error),
}

impl HelmError {
    /// RBAC refused helm something (`... is forbidden: User "..." cannot ...`). Other refusals that
    /// say "forbidden", such as an exceeded quota, are not this.
    pub fn is_rbac_denial(&self) -> bool {
        matches!(self, HelmError::Failed { stderr, .. } if stderr.contains("is forbidden: User "))
    }
}

/// The generated values of one store (the contract between control plane and chart).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreValues {
    pub store_id: String,
    pub host: String,
    pub site_title: String,
    pub site_url: String,
    /// The store's own domains (`crate::domains`): routes, certificates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<crate::crd::StoreDomain>,
    /// The SMTP relay (no password: that is in a Secret the values name); absent without a relay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<crate::mail::StoreMailValues>,
    /// What the platform adds to the store's NetworkPolicies: the S3 endpoint its backup and
    /// restore Jobs reach; absent without an S3 target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicyValues>,
    /// The store's size plan: `wordpress`, `mariadb` (resources, volume size) and `quota.hard`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::plans::PlanValues>,
    /// Raised by each claim of a pool store (`crate::pool`): a new WordPress admin password.
    /// Absent when 0, so a store never claimed renders exactly as before pools existed.
    #[serde(skip_serializing_if = "crate::crd::is_zero")]
    pub identity_generation: u32,
}

/// The store chart's `networkPolicy` as the control plane sets it (merged into the environment
/// file's, which holds the rest).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyValues {
    /// Egress from backup and restore Jobs to the S3 endpoint (`<release>-allow-backup-target`).
    pub backup_target: crate::backups::settings::BackupTargetValues,
}

/// A release as `helm list` with every state flag sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseState {
    Missing,
    Deployed,
    Failed,
    /// `pending-install`, `pending-upgrade` or `pending-rollback`: an operation is (or was) in flight.
    Pending(String),
    Uninstalling,
    /// Anything else helm may report (`superseded`, `uninstalled`, `unknown`).
    Other(String),
}

impl ReleaseState {
    fn from_status(status: &str) -> Self {
        match status {
            "deployed" => Self::Deployed,
            "failed" => Self::Failed,
            "uninstalling" => Self::Uninstalling,
            s if s.starts_with("pending-") => Self::Pending(s.to_owned()),
            s => Self::Other(s.to_owned()),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Uninstalled {
    Done,
    NotFound,
}

#[derive(Clone)]
pub struct Helm {
    binary: PathBuf,
    chart: PathBuf,
    /// `-f` files before the generated one: the environment file, then the extra ones.
    values_files: Vec<PathBuf>,
    /// HELM_*_HOME, so helm works with a read-only or absent HOME.
    home: PathBuf,
    permits: Arc<Semaphore>,
    metrics: Option<Arc<Metrics>>,
}

/// What of the control plane's environment a helm child sees: its search path and temporary
/// directory, Kubernetes' connection (kubeconfig, or the in-cluster service address), proxies, and
/// helm's own settings.
fn helm_may_see(var: &str) -> bool {
    matches!(
        var,
        "PATH"
            | "HOME"
            | "TMPDIR"
            | "KUBECONFIG"
            | "KUBERNETES_SERVICE_HOST"
            | "KUBERNETES_SERVICE_PORT"
            | "HTTPS_PROXY"
            | "HTTP_PROXY"
            | "NO_PROXY"
            | "https_proxy"
            | "http_proxy"
            | "no_proxy"
    ) || var.starts_with("HELM_")
}

impl Helm {
    pub fn new(
        binary: PathBuf,
        chart: PathBuf,
        values_files: Vec<PathBuf>,
        max_parallel: usize,
    ) -> Self {
        let home = std::env::temp_dir().join("storefleet-helm");
        Self {
            binary,
            chart,
            values_files,
            home,
            permits: Arc::new(Semaphore::new(max_parallel)),
            metrics: None,
        }
    }

    /// Records every helm run in `storefleet_helm_operation_duration_seconds`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// `helm upgrade --install <id> <chart> -n <id> -f <env values> [-f extra...] [-f <target>]
    /// -f <generated>`. `target`: a rollout target's values (`spec.release.values`), after the
    /// platform's files and before the generated ones, so it can change images but never the store
    /// id, host or plan. `upgrade`: a release exists already (only the metrics tell install and
    /// upgrade apart).
    pub async fn upgrade_install(
        &self,
        id: &StoreId,
        values: &StoreValues,
        target: Option<&serde_json::Value>,
        upgrade: bool,
    ) -> Result<(), HelmError> {
        let target = target
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
            .map(write_values_file)
            .transpose()?;
        let generated = write_values_file(values)?;
        let mut args: Vec<OsString> =
            vec!["upgrade".into(), "--install".into(), id.as_str().into()];
        args.push(self.chart.clone().into());
        args.extend(["-n".into(), id.as_str().into()]);
        for file in self
            .values_files
            .iter()
            .chain(target.as_ref().map(|t| t.path().to_path_buf()).iter())
            .chain([&generated.path().to_path_buf()])
        {
            args.extend(["-f".into(), file.clone().into()]);
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore never closed");
        let operation = if upgrade { "upgrade" } else { "install" };
        self.run(operation, "upgrade --install", args)
            .await
            .map(drop)
    }

    /// `helm rollback <id> <revision> -n <id>`: back to a revision's manifest and values, as a new
    /// revision whose description says `Rollback to <revision>`.
    pub async fn rollback(&self, id: &StoreId, revision: u32) -> Result<(), HelmError> {
        let args = vec![
            "rollback".into(),
            id.as_str().into(),
            revision.to_string().into(),
            "-n".into(),
            id.as_str().into(),
        ];
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore never closed");
        self.run("rollback", "rollback", args).await.map(drop)
    }

    /// `helm history <id> -n <id> -o json`: every revision kept, oldest first.
    pub async fn history(&self, id: &StoreId) -> Result<Vec<Revision>, HelmError> {
        let args = ["history", id.as_str(), "-n", id.as_str(), "-o", "json"]
            .map(OsString::from)
            .to_vec();
        let stdout = self.run("status", "history", args).await?;
        serde_json::from_str(stdout.trim()).map_err(|e| HelmError::Output {
            verb: "history".into(),
            detail: e.to_string(),
        })
    }

    /// `helm uninstall <id> -n <id>`; a missing release is not an error.
    pub async fn uninstall(&self, id: &StoreId) -> Result<Uninstalled, HelmError> {
        let args = vec![
            "uninstall".into(),
            id.as_str().into(),
            "-n".into(),
            id.as_str().into(),
        ];
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore never closed");
        match self.run("uninstall", "uninstall", args).await {
            Ok(_) => Ok(Uninstalled::Done),
            Err(HelmError::Failed { stderr, .. }) if stderr.contains("not found") => {
                Ok(Uninstalled::NotFound)
            }
            Err(e) => Err(e),
        }
    }

    /// The latest revision's state (`helm list -n <id> --deployed --failed --pending ... -o json`).
    /// Every state flag, not `-a`/`--all`: Helm 4 removed those, and the explicit flags mean the same
    /// to Helm 3 and 4 alike.
    pub async fn release_state(&self, id: &StoreId) -> Result<ReleaseState, HelmError> {
        let filter = format!("^{}$", id.as_str());
        let args = [
            "list",
            "-n",
            id.as_str(),
            "--deployed",
            "--failed",
            "--pending",
            "--superseded",
            "--uninstalling",
            "--uninstalled",
            "-o",
            "json",
            "--filter",
            &filter,
        ]
        .map(OsString::from)
        .to_vec();
        let stdout = self.run("status", "list", args).await?;
        parse_list(id, &stdout).map_err(|detail| HelmError::Output {
            verb: "list".into(),
            detail,
        })
    }

    /// Runs helm and records how long it took under `operation`.
    async fn run(
        &self,
        operation: &'static str,
        verb: &str,
        args: Vec<OsString>,
    ) -> Result<String, HelmError> {
        let started = std::time::Instant::now();
        let result = self.run_unrecorded(verb, args).await;
        if let Some(m) = &self.metrics {
            // A release that is already gone is what uninstall wants: not an error.
            let outcome = match &result {
                Err(HelmError::Failed { stderr, .. })
                    if operation == "uninstall" && stderr.contains("not found") =>
                {
                    "success"
                }
                r => metrics::outcome(r),
            };
            m.helm_operation(operation, outcome, started.elapsed());
        }
        result
    }

    async fn run_unrecorded(&self, verb: &str, args: Vec<OsString>) -> Result<String, HelmError> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // A minimal environment: helm needs where it is, how to reach the cluster and where to keep
        // its files, and nothing of ours (`STOREFLEET_ADMIN_TOKEN` above all).
        cmd.env_clear();
        for (var, value) in std::env::vars_os() {
            if var.to_str().is_some_and(helm_may_see) {
                cmd.env(var, value);
            }
        }
        for (var, dir) in [
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_DATA_HOME", "data"),
        ] {
            if std::env::var_os(var).is_none() {
                cmd.env(var, self.home.join(dir));
            }
        }
        die_with_parent(&mut cmd);
        tracing::debug!(?args, "running helm");
        let child = cmd.spawn().map_err(|source| HelmError::Spawn {
            binary: self.binary.display().to_string(),
            source,
        })?;
        let out = match tokio::time::timeout(HELM_TIMEOUT, child.wait_with_output()).await {
            Ok(out) => out.map_err(|source| HelmError::Spawn {
                binary: self.binary.display().to_string(),
                source,
            })?,
            Err(_) => {
                return Err(HelmError::Timeout {
                    verb: verb.to_owned(),
                });
            }
        };
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(HelmError::Failed {
                verb: verb.to_owned(),
                stderr: summarise_stderr(&out.stderr),
            })
        }
    }
}

/// A control plane killed with -9 must not leave helm running on: a restarted control plane would take
/// its half-written release for stale and recover it while the old helm still writes.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn write_values_file(values: &impl Serialize) -> Result<tempfile::NamedTempFile, HelmError> {
    let yaml = serde_yaml::to_string(values).expect("values serialise");
    let mut file = tempfile::Builder::new()
        .prefix("storefleet-values-")
        .suffix(".yaml")
        .tempfile()
        .map_err(HelmError::ValuesFile)?;
    file.write_all(yaml.as_bytes())
        .map_err(HelmError::ValuesFile)?;
    file.flush().map_err(HelmError::ValuesFile)?;
    Ok(file)
}

/// Helm's stderr, without its noise, short enough for a status message.
fn summarise_stderr(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("WARNING: Kubernetes configuration file is"))
        .collect();
    let joined = lines.join("; ");
    let joined = joined.strip_prefix("Error: ").unwrap_or(&joined).to_owned();
    truncate_chars(&joined, 900)
}

pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// One revision of a release, as `helm history -o json` prints it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Revision {
    pub revision: u32,
    /// `deployed`, `superseded`, `failed`, `pending-upgrade`, ...
    pub status: String,
    #[serde(default)]
    pub description: String,
}

/// The revision a store runs now: the newest `deployed` one.
pub fn deployed_revision(history: &[Revision]) -> Option<u32> {
    history
        .iter()
        .filter(|r| r.status == "deployed")
        .map(|r| r.revision)
        .max()
}

#[derive(Deserialize)]
struct ListedRelease {
    name: String,
    status: String,
}

fn parse_list(id: &StoreId, stdout: &str) -> Result<ReleaseState, String> {
    let releases: Vec<ListedRelease> =
        serde_json::from_str(stdout.trim()).map_err(|e| e.to_string())?;
    Ok(releases
        .iter()
        .find(|r| r.name == id.as_str())
        .map_or(ReleaseState::Missing, |r| {
            ReleaseState::from_status(&r.status)
        }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn helm_sees_no_storefleet_setting() {
        for seen in [
            "PATH",
            "KUBECONFIG",
            "HELM_CACHE_HOME",
            "KUBERNETES_SERVICE_HOST",
            "HOME",
        ] {
            assert!(super::helm_may_see(seen), "{seen}");
        }
        for hidden in [
            "STOREFLEET_ADMIN_TOKEN",
            "STOREFLEET_DATABASE_URL",
            "AWS_SECRET_ACCESS_KEY",
            "LD_PRELOAD",
        ] {
            assert!(!super::helm_may_see(hidden), "{hidden}");
        }
    }

    use super::*;

    #[test]
    fn list_output() {
        let id = StoreId::parse("store-00aa11").unwrap();
        assert_eq!(parse_list(&id, "[]\n").unwrap(), ReleaseState::Missing);
        let one = r#"[{"name":"store-00aa11","namespace":"store-00aa11","revision":"2","status":"pending-upgrade","chart":"store-0.1.0"}]"#;
        assert_eq!(
            parse_list(&id, one).unwrap(),
            ReleaseState::Pending("pending-upgrade".into())
        );
        let deployed = one.replace("pending-upgrade", "deployed");
        assert_eq!(parse_list(&id, &deployed).unwrap(), ReleaseState::Deployed);
        assert!(parse_list(&id, "Error").is_err());
    }

    #[test]
    fn history_output() {
        let out = r#"[{"revision":1,"updated":"x","status":"superseded","chart":"store-0.1.0","app_version":"1","description":"Install complete"},{"revision":2,"updated":"x","status":"deployed","chart":"store-0.1.0","app_version":"1","description":"Upgrade complete"},{"revision":3,"updated":"x","status":"failed","chart":"store-0.1.0","app_version":"1","description":"Upgrade failed"}]"#;
        let history: Vec<Revision> = serde_json::from_str(out).unwrap();
        assert_eq!(deployed_revision(&history), Some(2));
        assert_eq!(deployed_revision(&[]), None);
    }

    #[test]
    fn rbac_denials_are_told_apart() {
        let failed = |stderr: &str| HelmError::Failed {
            verb: "list".into(),
            stderr: stderr.into(),
        };
        assert!(failed(r#"query: failed to query with labels: secrets is forbidden: User "system:serviceaccount:sf:sf" cannot list resource "secrets" in API group "" in the namespace "store-00aa11""#).is_rbac_denial());
        assert!(!failed(r#"persistentvolumeclaims "data" is forbidden: exceeded quota: store, requested: requests.storage=20Gi"#).is_rbac_denial());
        assert!(
            !HelmError::Timeout {
                verb: "list".into()
            }
            .is_rbac_denial()
        );
    }

    #[test]
    fn stderr_summary() {
        let s = summarise_stderr(b"WARNING: Kubernetes configuration file is group-readable.\nError: UPGRADE FAILED: boom\n");
        assert_eq!(s, "UPGRADE FAILED: boom");
    }

    #[test]
    fn values_are_yaml_safe() {
        let values = StoreValues {
            store_id: "store-000001".into(),
            host: "store-000001.localhost".into(),
            site_title: "Ça \"coûte\": {rien} # 🛒\\".into(),
            site_url: "http://store-000001.localhost".into(),
            domains: Vec::new(),
            mail: None,
            network_policy: None,
            plan: None,
            identity_generation: 0,
        };
        let file = write_values_file(&values).unwrap();
        let back: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(file.path()).unwrap()).unwrap();
        assert_eq!(back["siteTitle"].as_str().unwrap(), values.site_title);
        assert_eq!(back["storeId"].as_str().unwrap(), "store-000001");
        // No relay, no `mail` key: the chart's defaults (no mail settings) apply.
        assert!(back.get("mail").is_none());
        // No S3 target, no `networkPolicy` key: the environment file's policies stand as they are.
        assert!(back.get("networkPolicy").is_none());
    }

    #[test]
    fn an_s3_target_is_the_backup_jobs_way_out() {
        let egress = crate::backups::settings::JobEgress {
            cidrs: vec![crate::cidr::Cidr::parse("10.0.5.0/24").unwrap()],
            port: 3900,
        };
        let values = StoreValues {
            store_id: "store-000001".into(),
            host: "store-000001.localhost".into(),
            site_title: "Shop".into(),
            site_url: "http://store-000001.localhost".into(),
            domains: Vec::new(),
            mail: None,
            network_policy: Some(NetworkPolicyValues {
                backup_target: egress.values(),
            }),
            plan: None,
            identity_generation: 0,
        };
        let back: serde_yaml::Value =
            serde_yaml::from_str(&serde_yaml::to_string(&values).unwrap()).unwrap();
        let target = &back["networkPolicy"]["backupTarget"];
        assert_eq!(target["cidrs"][0].as_str(), Some("10.0.5.0/24"));
        assert_eq!(target["ports"][0].as_u64(), Some(3900));
        // Only what the control plane sets: the rest of `networkPolicy` comes from the env file.
        assert_eq!(back["networkPolicy"].as_mapping().unwrap().len(), 1);
    }
}

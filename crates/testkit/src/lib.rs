//! Test support for integration tests that run against the test cluster (`scripts/testcluster up`).
//!
//! - [`cluster`] reads `target/testcluster/env` (or `KUBECONFIG`/`STOREFLEET_HELM` when both are set)
//!   and answers a [`Cluster`] with a client that has been checked to reach the API server. A missing
//!   or dead cluster panics with what to run, quickly: never a hang, never a skip.
//! - [`Cluster::namespace`] makes a fresh namespace per test, deleted again when the guard drops.
//! - [`Cluster::helm`] and [`Cluster::kubectl`] give argv-only commands with the cluster's kubeconfig.
//! - [`postgres::fresh_database`] gives a test its own database on the test PostgreSQL server.
//! - [`wait_for`] polls a condition with a deadline and a message that says what did not happen.

pub mod postgres;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The running test cluster.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub helm: PathBuf,
}

/// The workspace root (the folder holding `Cargo.lock`).
/// `helm list` flags for releases in every state. Helm 4 removed `-a`/`--all`; these mean the same to
/// Helm 3 and 4.
pub const HELM_LIST_ALL: [&str; 6] = [
    "--deployed",
    "--failed",
    "--pending",
    "--superseded",
    "--uninstalling",
    "--uninstalled",
];

pub fn workspace_root() -> PathBuf {
    // cargo sets CARGO_MANIFEST_DIR when it runs a test too; prefer that over the compile-time path, so
    // a checkout built into a shared target dir finds its own test cluster.
    let runtime = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let here = runtime.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let here = here.as_path();
    here.ancestors()
        .find(|p| p.join("Cargo.lock").exists() && p.join("crates").is_dir())
        .unwrap_or(here)
        .to_path_buf()
}

/// Paths of the test cluster's kubeconfig and helm binary, without connecting.
pub fn cluster_paths() -> (PathBuf, PathBuf) {
    if let (Ok(kc), Ok(helm)) = (
        std::env::var("KUBECONFIG"),
        std::env::var("STOREFLEET_HELM"),
    ) {
        return (PathBuf::from(kc), PathBuf::from(helm));
    }
    let env_file = workspace_root().join("target/testcluster/env");
    let text = std::fs::read_to_string(&env_file).unwrap_or_else(|_| {
        panic!(
            "no test cluster: {} is missing. Start one with `scripts/testcluster up` \
             (or run the README's test command, scripts/test)",
            env_file.display()
        )
    });
    let mut kubeconfig = None;
    let mut helm = None;
    for line in text.lines() {
        let line = line.trim().trim_start_matches("export ");
        if let Some(v) = line.strip_prefix("KUBECONFIG=") {
            kubeconfig = Some(PathBuf::from(v));
        } else if let Some(v) = line.strip_prefix("STOREFLEET_HELM=") {
            helm = Some(PathBuf::from(v));
        }
    }
    (
        kubeconfig.unwrap_or_else(|| panic!("{} has no KUBECONFIG line", env_file.display())),
        helm.unwrap_or_else(|| panic!("{} has no STOREFLEET_HELM line", env_file.display())),
    )
}

/// Connects to the test cluster, failing fast (10 s) and clearly when it is not running.
pub async fn cluster() -> Cluster {
    let (kubeconfig, helm) = cluster_paths();
    let kc = Kubeconfig::read_from(&kubeconfig)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {}: {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("bad kubeconfig {}: {e}", kubeconfig.display()));
    let client = Client::try_from(config).expect("kube client");
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!(
            "test cluster not reachable ({e}); is it running? `scripts/testcluster status`, \
             then `scripts/testcluster up`"
        ),
        Err(_) => panic!(
            "test cluster did not answer within 10 s; restart it: `scripts/testcluster down && scripts/testcluster up`"
        ),
    }
    Cluster {
        client,
        kubeconfig,
        helm,
    }
}

impl Cluster {
    /// A fresh namespace named `<prefix>-<random>`; deleted (without waiting) when the guard drops.
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        let name = format!("{prefix}-{}", random_suffix());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { "storefleet.dev/test": "true" } }
        }))
        .expect("namespace object");
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let guard = TestNamespace {
            name,
            kubeconfig: self.kubeconfig.clone(),
            keep: false,
        };
        self.wait_for_default_service_account(&guard.name).await;
        guard
    }

    /// Pods created directly (not through a controller, which retries) are refused until the
    /// namespace's `default` ServiceAccount exists and, before Kubernetes 1.24, has its token Secret.
    async fn wait_for_default_service_account(&self, namespace: &str) {
        let needs_token_secret = match self.client.apiserver_version().await {
            Ok(v) => v
                .minor
                .trim_end_matches('+')
                .parse::<u32>()
                .is_ok_and(|m| m < 24),
            Err(_) => true,
        };
        let sas = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace);
        wait_for(
            &format!("the default ServiceAccount of namespace {namespace}"),
            Duration::from_secs(60),
            || async {
                let sa = sas.get_opt("default").await.ok()??;
                let has_secret = sa.secrets.is_some_and(|s| !s.is_empty());
                (has_secret || !needs_token_secret).then_some(())
            },
        )
        .await;
    }

    /// `helm` with this cluster's kubeconfig; arguments go in as argv, never through a shell.
    pub fn helm(&self) -> Command {
        let mut cmd = Command::new(&self.helm);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        // Keep helm's cache and config out of the user's home, per workspace.
        let dir = workspace_root().join("target/testcluster/helm-home");
        cmd.env("HELM_CACHE_HOME", dir.join("cache"))
            .env("HELM_CONFIG_HOME", dir.join("config"))
            .env("HELM_DATA_HOME", dir.join("data"));
        cmd
    }

    /// `kubectl` with this cluster's kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }
}

/// Runs a command and answers its stdout; panics with stdout and stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
}

/// Removes what a control-plane test leaves when its controller is gone: the Stores of `instance`
/// (finalizers cleared, since nothing will run them) and their namespaces. Best effort, never waits.
pub fn force_remove_instance(kubeconfig: &Path, instance: &str) {
    let selector = format!("storefleet.dev/instance={instance}");
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let names = kubectl(&[
        "get",
        "stores.storefleet.dev",
        "-l",
        &selector,
        "-o",
        "name",
    ]);
    for name in names.lines().filter(|l| !l.is_empty()) {
        kubectl(&[
            "patch",
            name,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
        kubectl(&["delete", name, "--wait=false", "--ignore-not-found"]);
    }
    // Backups and restores (cluster-scoped): their finalizer is the gone controller's; a backup's
    // data lived in the test's own temporary target.
    for kind in [
        "storebackups.storefleet.dev",
        "storerestores.storefleet.dev",
    ] {
        let names = kubectl(&["get", kind, "-l", &selector, "-o", "name"]);
        for name in names.lines().filter(|l| !l.is_empty()) {
            kubectl(&[
                "patch",
                name,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ]);
            kubectl(&["delete", name, "--wait=false", "--ignore-not-found"]);
        }
    }
    // A store's own domains' claims (cluster-scoped, named after the domain): no controller of the
    // instance is left to release them.
    kubectl(&[
        "delete",
        "storedomains.storefleet.dev",
        "-l",
        &selector,
        "--wait=false",
        "--ignore-not-found",
    ]);
    kubectl(&[
        "delete",
        "namespaces",
        "-l",
        &selector,
        "--wait=false",
        "--ignore-not-found",
    ]);
}

/// A namespace owned by one test.
pub struct TestNamespace {
    pub name: String,
    kubeconfig: PathBuf,
    keep: bool,
}

impl TestNamespace {
    /// Keeps the namespace after the test (for a test that deletes it itself, or for debugging).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.keep || std::env::var_os("STOREFLEET_KEEP_NAMESPACES").is_some() {
            return;
        }
        // Sync on purpose: Drop cannot await, and kubectl returns at once with --wait=false.
        let _ = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }
}

impl std::fmt::Display for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

fn random_suffix() -> String {
    use rand::Rng;
    let n: u32 = rand::rng().random();
    format!("{n:08x}")
}

/// Polls `check` every 200 ms until it answers `Some`, or panics after `timeout` saying `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

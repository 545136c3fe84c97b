//! Test harness: runs the real `storefleet serve` binary against the test cluster, one control plane
//! instance per test (so tests run in parallel on the shared cluster without seeing each other's
//! stores), and talks HTTP to it.
//!
//! The server's output goes to a file, printed when a test fails. When a [`Server`] is dropped it
//! deletes every Store of its instance (through the running server, so cleanup is exercised too),
//! and force-removes what is left if the server is dead.
#![allow(dead_code)]

pub mod backups;
pub mod orphans;
pub mod private_cluster;

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use storefleet::crd::Store;
use testkit::Cluster;

/// Provisioning in these tests: generous, the CI machine has 2 cores and is busy.
pub const READY_TIMEOUT: Duration = Duration::from_secs(240);
pub const GONE_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Options {
    pub provision_timeout: &'static str,
    pub max_stores: u32,
    pub wait_limit: &'static str,
    /// Extra values files content (YAML), written to temp files and passed with `--values`.
    pub extra_values: Vec<String>,
    /// More `storefleet serve` flags, appended last (a later flag wins for single-valued ones).
    pub extra_args: Vec<String>,
    /// `--install-crd`, and wait for `/readyz` to answer 200 (off: a cluster without the CRD).
    pub install_crd: bool,
    /// Another helm than the cluster's (`STOREFLEET_HELM`).
    pub helm: Option<PathBuf>,
    /// Where the server keeps users, tokens, sessions, idempotency keys and the audit log.
    pub database: Db,
}

/// The database of a test's control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    /// SQLite, unless `STOREFLEET_TEST_DATABASE=postgres`: `scripts/test` runs the suites that are
    /// about stored state a second time so, on the test PostgreSQL server.
    FromEnv,
    /// A SQLite file of the test's own (a test about the file itself).
    Sqlite,
    /// A fresh database on the test PostgreSQL server (`testkit::postgres`); [`Server::start_peer`]
    /// shares it, as replicas do.
    Postgres,
}

impl Db {
    fn postgres(self) -> bool {
        match self {
            Db::FromEnv => std::env::var("STOREFLEET_TEST_DATABASE").is_ok_and(|v| v == "postgres"),
            Db::Sqlite => false,
            Db::Postgres => true,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            provision_timeout: "10m",
            max_stores: 5,
            wait_limit: "60s",
            extra_values: Vec::new(),
            extra_args: Vec::new(),
            install_crd: true,
            helm: None,
            database: Db::FromEnv,
        }
    }
}

pub struct Server {
    pub cluster: Cluster,
    pub instance: String,
    pub token: String,
    pub base: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    args: Vec<OsString>,
    wait_ready: bool,
    dir: tempfile::TempDir,
    log_path: PathBuf,
}

fn random_hex(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
        .collect()
}

impl Server {
    pub async fn start(test: &str, options: Options) -> Server {
        Self::start_on(testkit::cluster().await, test, options).await
    }

    /// Like [`Server::start`], against another cluster than the shared one (see [`private_cluster`]).
    pub async fn start_on(cluster: Cluster, test: &str, options: Options) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let instance = format!("t-{test}-{}", random_hex(6));
        assert!(instance.len() <= 63, "instance name too long: {instance}");
        let token = format!("token-{}", random_hex(32));
        // From this crate, not testkit::workspace_root(): the target dir may be shared between checkouts.
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/store");
        assert!(
            chart.join("Chart.yaml").is_file(),
            "the store chart is missing at {}",
            chart.display()
        );
        let database_url = if options.database.postgres() {
            testkit::postgres::fresh_database().await
        } else {
            format!("sqlite://{}", dir.path().join("storefleet.db").display())
        };
        let mut args: Vec<OsString> = vec![
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--instance".into(),
            instance.clone().into(),
            "--database-url".into(),
            database_url.into(),
            "--chart".into(),
            chart.into(),
            "--helm".into(),
            options
                .helm
                .clone()
                .unwrap_or_else(|| cluster.helm.clone())
                .into(),
            "--admin-token".into(),
            token.clone().into(),
            "--log-format".into(),
            "json".into(),
            "--provision-timeout".into(),
            options.provision_timeout.into(),
            "--max-stores".into(),
            options.max_stores.to_string().into(),
            "--wait-limit".into(),
            options.wait_limit.into(),
        ];
        for (i, yaml) in options.extra_values.iter().enumerate() {
            let path = dir.path().join(format!("extra-{i}.yaml"));
            std::fs::write(&path, yaml).unwrap();
            args.push("--values".into());
            args.push(path.into());
        }
        if options.install_crd {
            args.push("--install-crd".into());
        }
        args.extend(options.extra_args.iter().map(OsString::from));
        let log_path = dir.path().join("server.log");
        let mut server = Server {
            cluster,
            instance,
            token,
            base: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            child: None,
            args,
            wait_ready: options.install_crd,
            dir,
            log_path,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let offset = std::fs::metadata(&self.log_path)
            .map(|m| m.len())
            .unwrap_or(0);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_storefleet"));
        cmd.args(&self.args)
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .env(
                "RUST_LOG",
                "info,storefleet=debug,kube=warn,tower_http=info",
            )
            .env_remove("STOREFLEET_ADMIN_TOKEN")
            .env_remove("STOREFLEET_VALUES")
            .env_remove("STOREFLEET_INSTANCE")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("starting storefleet serve"));
        let log_path = self.log_path.clone();
        let addr = testkit::wait_for(
            "storefleet serve to listen",
            Duration::from_secs(120),
            || {
                let found = listening_addr(&log_path, offset);
                let exited = self.child.as_mut().unwrap().try_wait().unwrap();
                let log = exited.map(|status| (status, read_log(&log_path)));
                async move {
                    if let Some((status, log)) = log {
                        panic!("storefleet serve exited early ({status}):\n{log}");
                    }
                    found
                }
            },
        )
        .await;
        self.base = format!("http://{addr}");
        if !self.wait_ready {
            return;
        }
        let http = self.http.clone();
        let url = self.url("/readyz");
        testkit::wait_for("/readyz to answer 200", Duration::from_secs(60), || {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == StatusCode::OK)
                    .map(drop)
            }
        })
        .await;
    }

    /// `kill -9`: no chance to clean up or finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// SIGTERM, and back at once (the process may still be draining).
    pub fn send_sigterm(&self) {
        let child = self.child.as_ref().expect("the server runs");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (we hold the Child).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }

    /// SIGTERM, as Kubernetes stops a pod: waits until the process has exited (at most `within`,
    /// then kills it) and answers how long that took.
    pub fn terminate(&mut self, within: Duration) -> Duration {
        let started = std::time::Instant::now();
        if self.child.is_none() {
            return Duration::ZERO;
        }
        self.send_sigterm();
        let mut child = self.child.take().expect("the server runs");
        while started.elapsed() < within {
            if child.try_wait().unwrap().is_some() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("storefleet serve did not stop within {within:?} of SIGTERM");
    }

    /// Another `storefleet serve` of the same instance (same flags and token, its own log): a second
    /// replica of this control plane. On PostgreSQL it shares the database, as replicas do; a SQLite
    /// file cannot be shared, so it gets its own.
    pub async fn start_peer(&self) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = self.args.clone();
        let i = args
            .iter()
            .position(|a| a == "--database-url")
            .expect("--database-url");
        if !self.database_url().starts_with("postgres") {
            args[i + 1] = format!("sqlite://{}", dir.path().join("storefleet.db").display()).into();
        }
        let log_path = dir.path().join("server.log");
        let mut peer = Server {
            cluster: self.cluster.clone(),
            instance: self.instance.clone(),
            token: self.token.clone(),
            base: String::new(),
            http: self.http.clone(),
            child: None,
            args,
            wait_ready: self.wait_ready,
            dir,
            log_path,
        };
        peer.spawn().await;
        peer
    }

    /// Starts the server again with the same flags and database.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the server first");
        self.spawn().await;
    }

    /// Starts the server again with `flag` set to `value` (replaced, or added): the same instance
    /// and database, another configuration.
    pub async fn restart_with(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(i) => self.args[i + 1] = value.into(),
            None => self.args.extend([flag.into(), value.into()]),
        }
        self.restart().await;
    }

    /// `--database-url`.
    pub fn database_url(&self) -> String {
        let i = self
            .args
            .iter()
            .position(|a| a == "--database-url")
            .expect("--database-url");
        self.args[i + 1].to_string_lossy().into_owned()
    }

    /// The SQLite file behind `--database-url` (with its `-wal` beside it while the server runs).
    pub fn database_path(&self) -> PathBuf {
        let url = self.database_url();
        let path = url
            .strip_prefix("sqlite://")
            .unwrap_or_else(|| panic!("not a SQLite database: use Db::Sqlite for this test"));
        PathBuf::from(path)
    }

    /// The running server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Whether the server process has exited (and reaps it).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(_))) => {
                self.child = None;
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the admin token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// A request with another bearer token (a user's).
    pub fn as_user(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// A dashboard session of the admin (`POST /session` with the token): its cookie, `name=value`.
    pub async fn sign_in(&self) -> String {
        let signed_in = self
            .http
            .post(self.url("/session"))
            .json(&serde_json::json!({"token": self.token}))
            .send()
            .await
            .expect("POST /session");
        signed_in.headers()[reqwest::header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }

    /// Creates a user through the admin API and answers the 201 body (`user_id`, `token`, ...).
    pub async fn create_user(&self, name: &str, role: &str, max_stores: u32) -> Value {
        let r = self
            .req(Method::POST, "/users")
            .json(&serde_json::json!({"name": name, "role": role, "max_stores": max_stores}))
            .send()
            .await
            .expect("POST /users");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::CREATED, "POST /users {name}: {body}");
        body
    }

    /// One request as `token` (the admin without one), with an optional JSON body: its status and
    /// JSON answer (`null` when it has none).
    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = match token {
            Some(t) => self.as_user(t, method, path),
            None => self.req(method, path),
        };
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn create(&self, body: Value) -> Response {
        self.req(Method::POST, "/stores")
            .json(&body)
            .send()
            .await
            .expect("POST /stores")
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .req(Method::GET, path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn delete_store(&self, id: &str) -> (StatusCode, Value) {
        let r = self
            .req(Method::DELETE, &format!("/stores/{id}"))
            .send()
            .await
            .expect("DELETE");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls `GET /stores/{id}` until its status is `phase`; panics on a different final phase.
    pub async fn wait_phase(&self, id: &str, phase: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (status, body) = self.get_json(&format!("/stores/{id}")).await;
            assert_eq!(status, StatusCode::OK, "GET /stores/{id}: {body}");
            let now = body["status"].as_str().unwrap_or_default().to_owned();
            if now == phase {
                return body;
            }
            if now == "Failed" && phase != "Failed" {
                panic!("{id} failed: {body:#}");
            }
            if tokio::time::Instant::now() >= deadline {
                // Two views side by side: the API's cache and the cluster. If they differ, the
                // API's watch is behind; if both are stuck, the controller is.
                // The namespace comes first: CI keeps only part of a long failure, and the
                // Store (without managedFields, which say nothing here) is the longest part.
                let cluster = stores_api(&self.cluster.client).get_opt(id).await;
                let cluster = cluster
                    .map(|s| {
                        let s = s.map(|mut s| {
                            s.metadata.managed_fields = None;
                            s
                        });
                        serde_json::to_string_pretty(&s).unwrap_or_default()
                    })
                    .unwrap_or_else(|e| format!("(could not read: {e})"));
                panic!(
                    "timed out after {timeout:?} waiting for {id} to be {phase}\n\
                     its namespace: {}\nhelm list: {}\n\
                     the API says: {body:#}\nthe cluster has: {cluster}",
                    namespace_summary(&self.cluster.client, id).await,
                    self.helm_list_raw(id),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the Store, its namespace and its release are all gone (and GET says 404).
    pub async fn wait_gone(&self, id: &str) {
        let client = self.cluster.client.clone();
        testkit::wait_for(&format!("{id} to be gone"), GONE_TIMEOUT, || {
            let client = client.clone();
            async move {
                let store = stores_api(&client).get_opt(id).await.unwrap();
                let ns = Api::<Namespace>::all(client).get_opt(id).await.unwrap();
                (store.is_none() && ns.is_none()).then_some(())
            }
        })
        .await;
        let (status, _) = self.get_json(&format!("/stores/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET of a deleted store");
        assert!(
            self.helm_releases(id).is_empty(),
            "release {id} still listed by helm"
        );
    }

    /// Names of helm releases in namespace `ns` (any state).
    /// `helm list` of a namespace as helm prints it (status and revision included), for failures.
    pub fn helm_list_raw(&self, ns: &str) -> String {
        match self
            .cluster
            .helm()
            .args(["list", "-n", ns, "-o", "json"])
            .args(testkit::HELM_LIST_ALL)
            .output()
        {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("(helm did not run: {e})"),
        }
    }

    /// `(revision, status)` of every revision of the release `ns` in `ns`, oldest first.
    pub fn helm_history(&self, ns: &str) -> Vec<(u64, String)> {
        let out = self
            .cluster
            .helm()
            .args(["history", ns, "-n", ns, "-o", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm history: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let history: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        history
            .iter()
            .map(|r| {
                (
                    r["revision"].as_u64().unwrap_or_default(),
                    r["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    pub fn helm_releases(&self, ns: &str) -> Vec<String> {
        let out = self
            .cluster
            .helm()
            .args(["list", "-n", ns, "-o", "json"])
            .args(testkit::HELM_LIST_ALL)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        list.iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Stores of this test's instance, straight from the API server.
    pub async fn cluster_stores(&self) -> Vec<Store> {
        stores_api(&self.cluster.client)
            .list(
                &ListParams::default()
                    .labels(&format!("storefleet.dev/instance={}", self.instance)),
            )
            .await
            .unwrap()
            .items
    }

    /// Namespaces made for this test's instance.
    pub async fn cluster_namespaces(&self) -> Vec<String> {
        Api::<Namespace>::all(self.cluster.client.clone())
            .list(
                &ListParams::default()
                    .labels(&format!("storefleet.dev/instance={}", self.instance)),
            )
            .await
            .unwrap()
            .items
            .iter()
            .map(|n| n.name_any())
            .collect()
    }

    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.get_json(&format!("/audit{query}")).await;
        assert_eq!(status, StatusCode::OK, "GET /audit: {body}");
        body.as_array().unwrap().clone()
    }

    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The server still answers `/healthz` and never panicked.
    pub async fn assert_healthy(&self) {
        let healthz = self.http.get(self.url("/healthz")).send().await.unwrap();
        assert_eq!(healthz.status(), StatusCode::OK);
        let log = self.log();
        assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    }

    /// Deletes a store through the API, waits until it is gone, and checks nothing is left over.
    pub async fn delete_leaving_nothing(&self, id: &str) {
        let (status, body) = self.delete_store(id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "DELETE {id}: {body}");
        self.wait_gone(id).await;
        self.assert_no_orphans().await;
    }

    fn cleanup(&mut self) {
        if std::env::var_os("STOREFLEET_KEEP_NAMESPACES").is_some() {
            return;
        }
        let selector = format!("storefleet.dev/instance={}", self.instance);
        let cluster = self.cluster.clone();
        let kubectl = |args: &[&str]| {
            let _ = cluster
                .kubectl()
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        if self.child.is_some() {
            // Through the running control plane: this is the normal cleanup path.
            kubectl(&[
                "delete",
                "stores.storefleet.dev",
                "-l",
                &selector,
                "--wait=true",
                "--timeout=180s",
            ]);
        }
        // Fleet rollouts of the instance (tests that POST /rollouts, the fuzz test among them).
        kubectl(&["delete", "storerollouts.storefleet.dev", "-l", &selector]);
        self.kill9();
        // Whatever is left (the server died, or cleanup timed out): remove without the controller.
        testkit::force_remove_instance(&self.cluster.kubeconfig, &self.instance);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- storefleet serve output ({}) -----\n{}\n----- end -----",
                self.instance,
                tail(&without_request_lines(&self.log()), 400)
            );
        }
        self.cleanup();
    }
}

/// The last segment of a problem+json `type` (`store-deleting`), or "".
pub fn problem_kind(body: &Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|t| t.rsplit('/').next())
        .unwrap_or("")
}

pub fn stores_api(client: &Client) -> Api<Store> {
    Api::all(client.clone())
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Pods (phase, node, conditions) and PVCs (phase) of a namespace, one line each, for failures.
async fn namespace_summary(client: &Client, ns: &str) -> String {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod};
    let mut out = Vec::new();
    match Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(pods) => {
            for p in pods {
                let status = p.status.clone().unwrap_or_default();
                let conditions: Vec<String> = status
                    .conditions
                    .unwrap_or_default()
                    .iter()
                    .map(|c| match &c.message {
                        Some(m) => format!("{}={} ({m})", c.type_, c.status),
                        None => format!("{}={}", c.type_, c.status),
                    })
                    .collect();
                out.push(format!(
                    "pod {} phase={:?} node={:?} {}",
                    p.metadata.name.unwrap_or_default(),
                    status.phase,
                    p.spec.and_then(|s| s.node_name),
                    conditions.join(",")
                ));
            }
        }
        Err(e) => out.push(format!("(pods: {e})")),
    }
    match Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(pvcs) => {
            for c in pvcs {
                out.push(format!(
                    "pvc {} phase={:?}",
                    c.metadata.name.unwrap_or_default(),
                    c.status.and_then(|s| s.phase)
                ));
            }
        }
        Err(e) => out.push(format!("(pvcs: {e})")),
    }
    match Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(sets) => {
            for rs in sets {
                let status = rs.status.unwrap_or_default();
                let failures: Vec<String> = status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| format!("{:?}: {:?}", c.type_, c.message))
                    .collect();
                out.push(format!(
                    "replicaset {} replicas={} ready={:?} {}",
                    rs.metadata.name.unwrap_or_default(),
                    status.replicas,
                    status.ready_replicas,
                    failures.join("; ")
                ));
            }
        }
        Err(e) => out.push(format!("(replicasets: {e})")),
    }
    // Warnings say why a pod is missing or pending (quota, scheduling, volumes).
    match Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(events) => {
            for e in events
                .items
                .iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
            {
                out.push(format!(
                    "event {} x{} {}: {}",
                    e.involved_object.name.as_deref().unwrap_or_default(),
                    e.count.unwrap_or(1),
                    e.reason.as_deref().unwrap_or_default(),
                    e.message.as_deref().unwrap_or_default()
                ));
            }
        }
        Err(e) => out.push(format!("(events: {e})")),
    }
    match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(nodes) => {
            for n in nodes {
                let ready = n
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .into_iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| format!("Ready={} ({})", c.status, c.reason.unwrap_or_default()));
                let taints: Vec<String> = n
                    .spec
                    .and_then(|s| s.taints)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| format!("{}:{}", t.key, t.effect))
                    .collect();
                out.push(format!(
                    "node {} {} taints=[{}]",
                    n.metadata.name.unwrap_or_default(),
                    ready.unwrap_or_default(),
                    taints.join(",")
                ));
            }
        }
        Err(e) => out.push(format!("(nodes: {e})")),
    }
    out.join("\n")
}

/// The log without its per-request lines: tests poll, and hundreds of "GET 200" lines would push
/// what the controller did out of the tail that a failure prints.
fn without_request_lines(s: &str) -> String {
    s.lines()
        .filter(|l| !l.contains("\"finished processing request\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The address from the first `listening` log line after `offset`.
fn listening_addr(path: &Path, offset: u64) -> Option<String> {
    let mut f = File::open(path).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut s = String::new();
    f.read_to_string(&mut s).ok()?;
    s.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "listening")
        .and_then(|v| v["addr"].as_str().map(str::to_owned))
}

/// Reads `text/event-stream` events (name, data) from a response.
pub struct EventStream {
    response: Response,
    buffer: String,
}

impl EventStream {
    pub fn new(response: Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when the stream ended.
    pub async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                return Some((
                    name,
                    serde_json::from_str(&data).unwrap_or(Value::String(data)),
                ));
            }
            let chunk = self.response.chunk().await.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

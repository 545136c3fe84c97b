//! Stores on real pods (issue 9): the control plane provisions stores on the real-pod test cluster
//! (`scripts/testcluster up --real-pods`: a real kubelet, containerd, real MariaDB and Apache/PHP
//! WordPress processes built from Debian packages, see docs/real-pods.md), and the stores work:
//! Ready from real readiness probes, WordPress answering with the site title on its ClusterIP,
//! the API's storefront check (`GET /stores/{id}/health`) reporting WordPress up and WooCommerce
//! absent, data surviving pod deletion, stores isolated from each other, nothing left after delete.
//! Store mail (issue 13): with the platform's relay pointed at a real SMTP server (aiosmtpd, pinned,
//! `scripts/smtp-sink`) on the node's bridge, WordPress core's lost-password mail arrives there with
//! the platform's From, to the admin; without a relay the store says `MailConfigured=False/NoRelay`
//! and WordPress says the mail could not be sent.
//! Fleet rollouts (issue 15): a post survives a rollout to another WordPress image name (the same
//! build under a third name, see the test), and a rollout to a missing image is rolled back.
//! Backups (issue 14): the backup agent in real Jobs backs a store up, restores it in place, fills a
//! clone (WP-CLI `search-replace`, here the setup image's stand-in, moving its URLs), and brings a
//! deleted store back from its final backup (docs/backups.md#on-real-pods).
//! The warm pool (issue 16): a member's create claims a Ready pool store; WordPress itself then
//! serves the member's title at the store's URL, the new admin password logs in at `wp-login.php`
//! and the pool's is refused.
//!
//! `scripts/test` runs it (after `scripts/testcluster up --real-pods`); by hand it skips unless
//! `STOREFLEET_REAL_PODS=1`. Run:
//! `scripts/testcluster up --real-pods && cargo build -p storefleet &&
//!  STOREFLEET_REAL_PODS=1 cargo test -p integration --test realpods -- --nocapture`

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use reqwest::StatusCode;
use reqwest::header::HOST;
use serde_json::{Value, json};
use testkit::{Cluster, run_ok, wait_for};

/// Generous: a 2-core machine busy with other tests; real MariaDB and Apache start here.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
const TIMEOUT: Duration = Duration::from_secs(300);

/// The real-pod node's address on its bridge (docs/real-pods.md): pods reach the host there, so the
/// mail test's SMTP server listens on it.
const BRIDGE_IP: &str = "10.244.0.1";

/// One test at a time: each starts its own control plane and real stores, and a 2-core machine
/// running both at once would make every timing here meaningless.
static REAL_PODS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn skip() -> bool {
    if std::env::var("STOREFLEET_REAL_PODS").as_deref() == Ok("1") {
        return false;
    }
    println!(
        "SKIPPED: real-pod tests run only with STOREFLEET_REAL_PODS=1 on a machine with \
         `scripts/testcluster up --real-pods` (see docs/real-pods.md)"
    );
    true
}

fn state_dir() -> PathBuf {
    testkit::workspace_root().join("target/testcluster-realpods")
}

/// The real-pod cluster, from its env file (not the default test cluster's).
async fn realpods_cluster() -> Cluster {
    let env_file = state_dir().join("env");
    let text = std::fs::read_to_string(&env_file).unwrap_or_else(|_| {
        panic!(
            "no real-pod cluster: {} is missing; run `scripts/testcluster up --real-pods`",
            env_file.display()
        )
    });
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().trim_start_matches("export ").strip_prefix(key))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("{} has no {key} line", env_file.display()))
    };
    let (kubeconfig, helm) = (value("KUBECONFIG="), value("STOREFLEET_HELM="));
    let kc = Kubeconfig::read_from(&kubeconfig).expect("real-pod kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("real-pod kubeconfig");
    let client = Client::try_from(config).expect("kube client");
    tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .expect("real-pod cluster did not answer in 10 s: `scripts/testcluster status --real-pods`")
        .expect("real-pod cluster not reachable: `scripts/testcluster up --real-pods`");
    Cluster {
        client,
        kubeconfig,
        helm,
    }
}

/// `storefleet serve` with the real-pod values file, one instance of its own; killed on drop.
struct ControlPlane {
    child: Child,
    base: String,
    token: String,
    http: reqwest::Client,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ControlPlane {
    /// `extra`: more `storefleet serve` flags (the mail test's `--smtp-*`).
    async fn start(cluster: &Cluster, extra: &[&str]) -> ControlPlane {
        let root = testkit::workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let binary = target.join("debug/storefleet");
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo build -p storefleet`",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        // At least 32 characters: `storefleet serve` refuses a shorter --admin-token.
        let token = format!("realpods-{nanos:032x}-{}", std::process::id());
        let log = dir.path().join("server.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(&binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--install-crd",
                "--log-format",
                "json",
            ])
            .args(["--instance", &format!("t-realpods-{}", std::process::id())])
            .arg("--database-url")
            .arg(format!(
                "sqlite://{}",
                dir.path().join("storefleet.db").display()
            ))
            .arg("--chart")
            .arg(root.join("charts/store"))
            .arg("--values")
            .arg(root.join("charts/store/values-realpods.yaml"))
            .arg("--helm")
            .arg(&cluster.helm)
            .args(["--admin-token", &token, "--provision-timeout", "15m"])
            .args(extra)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("RUST_LOG", "info,storefleet=debug,kube=warn")
            .env_remove("STOREFLEET_VALUES")
            .env_remove("STOREFLEET_ADMIN_TOKEN")
            .env_remove("STOREFLEET_INSTANCE")
            // the relay only as `extra` says (the mail test), never from the caller's shell
            .env_remove("STOREFLEET_SMTP_HOST")
            .env_remove("STOREFLEET_SMTP_PORT")
            .env_remove("STOREFLEET_SMTP_TLS")
            .env_remove("STOREFLEET_SMTP_RELAY_CIDR")
            .env_remove("STOREFLEET_SMTP_USERNAME")
            .env_remove("STOREFLEET_SMTP_PASSWORD_FILE")
            .env_remove("STOREFLEET_MAIL_FROM")
            .env_remove("STOREFLEET_MAIL_FROM_NAME")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting storefleet serve");
        let log_path = log.clone();
        let addr = wait_for("storefleet serve to listen", TIMEOUT, || {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            async move {
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|v| v["message"] == "listening")
                    .and_then(|v| v["addr"].as_str().map(str::to_owned))
            }
        })
        .await;
        let api = ControlPlane {
            child,
            base: format!("http://{addr}"),
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            log,
            _dir: dir,
        };
        // Listening comes before the CRD check: until /readyz says so, POST /stores answers 503.
        wait_for("storefleet serve ready (/readyz)", TIMEOUT, || async {
            let (status, _) = api.call(reqwest::Method::GET, "/readyz", None).await;
            (status == StatusCode::OK).then_some(())
        })
        .await;
        api
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    /// As `call`, with another user's token (a member's, made with `POST /users`).
    async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}\n{}", self.log_text()));
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- storefleet serve log ---\n{}", self.log_text());
        }
    }
}

/// Removes the store namespaces of a failed run (the store's own delete is what the test checks;
/// this only keeps a failure from leaving real MariaDB and Apache processes running).
/// `STOREFLEET_KEEP_NAMESPACES=1` keeps them for a look.
struct LeftoverGuard {
    kubeconfig: PathBuf,
    namespaces: Vec<String>,
}

impl Drop for LeftoverGuard {
    fn drop(&mut self) {
        if !std::thread::panicking() || self.namespaces.is_empty() {
            return;
        }
        if std::env::var_os("STOREFLEET_KEEP_NAMESPACES").is_some() {
            eprintln!("kept the store namespaces {:?}", self.namespaces);
            return;
        }
        let _ = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["delete", "namespace", "--wait=false", "--ignore-not-found"])
            .args(&self.namespaces)
            .status();
    }
}

/// After a failed backup test: this instance's backups and restores keep finalizers that only its
/// (killed) control plane would have removed; strip them so they go, and the test's volumes too.
struct BackupLeftovers {
    kubeconfig: PathBuf,
    instance: String,
}

impl Drop for BackupLeftovers {
    fn drop(&mut self) {
        if !std::thread::panicking() || std::env::var_os("STOREFLEET_KEEP_NAMESPACES").is_some() {
            return;
        }
        let kubectl = |args: &[&str]| {
            Command::new("kubectl")
                .env("KUBECONFIG", &self.kubeconfig)
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let selector = format!("storefleet.dev/instance={}", self.instance);
        let names = kubectl(&[
            "get",
            "storebackups,storerestores,stores",
            "-l",
            &selector,
            "-o",
            "name",
        ]);
        for name in names.lines() {
            kubectl(&[
                "patch",
                name,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ]);
            kubectl(&["delete", name, "--wait=false", "--ignore-not-found"]);
        }
        kubectl(&[
            "delete",
            "pv",
            "-l",
            "storefleet.dev/test=realpods-backups",
            "--wait=false",
        ]);
    }
}

/// What the test knows of one store's WordPress from the cluster.
struct Site {
    id: String,
    title: String,
}

impl Site {
    fn host(&self) -> String {
        format!("{}.localhost", self.id)
    }

    /// The WordPress Service's ClusterIP and port (kube-proxy's iptables rules make it reachable
    /// from this host).
    async fn service_url(&self, client: &Client) -> String {
        let svc = Api::<Service>::namespaced(client.clone(), &self.id)
            .get(&format!("{}-wordpress", self.id))
            .await
            .expect("WordPress Service");
        let spec = svc.spec.unwrap();
        let port = spec.ports.unwrap()[0].port;
        format!("http://{}:{port}", spec.cluster_ip.unwrap())
    }

    /// GET / with the store's host header: Some(body) when it answers 200.
    async fn home(&self, client: &Client, http: &reqwest::Client) -> Option<String> {
        let resp = http
            .get(format!("{}/", self.service_url(client).await))
            .header(HOST, self.host())
            .send()
            .await
            .ok()?;
        if resp.status() != StatusCode::OK {
            return None;
        }
        resp.text().await.ok()
    }

    /// The site title as WordPress prints it in <title> (HTML-escaped: the test titles avoid & < > ' ").
    fn shows_title(&self, body: &str) -> bool {
        body.contains(&format!("<title>{}</title>", self.title))
    }
}

fn condition<'a>(store: &'a Value, type_: &str) -> &'a Value {
    store["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition: {store:#}"))
}

async fn secret_value(client: &Client, ns: &str, key: &str) -> String {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(&format!("{ns}-credentials"))
        .await
        .expect("credentials Secret");
    let data = secret.data.expect("Secret data");
    String::from_utf8(
        data.get(key)
            .unwrap_or_else(|| panic!("no {key}"))
            .0
            .clone(),
    )
    .unwrap()
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a visitor does on "Lost your password?": POSTs the form of `wp-login.php?action=lostpassword`
/// for `login`, so WordPress core sends its password-reset mail (`retrieve_password()` → `wp_mail()`).
/// Answers the status, the `Location` and the page.
async fn request_password_reset(
    site: &Site,
    client: &Client,
    http: &reqwest::Client,
    login: &str,
) -> (StatusCode, String, String) {
    let resp = http
        .post(format!(
            "{}/wp-login.php?action=lostpassword",
            site.service_url(client).await
        ))
        .header(HOST, site.host())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "user_login={}&redirect_to=&wp-submit=Get+New+Password",
            form_encode(login)
        ))
        .send()
        .await
        .expect("lost-password request");
    let status = resp.status();
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, location, resp.text().await.unwrap_or_default())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Publishes a post through WordPress itself (XML-RPC `wp.newPost`, the admin's credentials):
/// a row written by the real PHP into the real MariaDB.
async fn publish_post(site: &Site, client: &Client, http: &reqwest::Client, title: &str) {
    let user = secret_value(client, &site.id, "wordpress-admin-user").await;
    let password = secret_value(client, &site.id, "wordpress-admin-password").await;
    let body = format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>wp.newPost</methodName><params>\
         <param><value><int>1</int></value></param>\
         <param><value><string>{}</string></value></param>\
         <param><value><string>{}</string></value></param>\
         <param><value><struct>\
         <member><name>post_title</name><value><string>{}</string></value></member>\
         <member><name>post_status</name><value><string>publish</string></value></member>\
         </struct></value></param></params></methodCall>",
        xml_escape(&user),
        xml_escape(&password),
        xml_escape(title)
    );
    let resp = http
        .post(format!("{}/xmlrpc.php", site.service_url(client).await))
        .header(HOST, site.host())
        .header("Content-Type", "text/xml")
        .body(body)
        .send()
        .await
        .expect("XML-RPC request");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status == StatusCode::OK && !text.contains("<fault>") && text.contains("<string>"),
        "wp.newPost failed ({status}): {text}"
    );
}

/// The one running, ready pod of a component, as (name, uid).
async fn ready_pod(client: &Client, ns: &str, component: &str) -> Option<(String, String)> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/component={component}")))
        .await
        .ok()?;
    pods.items.into_iter().find_map(|p| {
        let ready = p.metadata.deletion_timestamp.is_none()
            && p.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then(|| (p.name_any(), p.uid().unwrap_or_default()))
    })
}

/// Deletes a component's pod and waits for its replacement to be Ready.
async fn replace_pod(client: &Client, ns: &str, component: &str) {
    let (name, uid) = wait_for(&format!("{ns} {component} pod Ready"), TIMEOUT, || {
        ready_pod(client, ns, component)
    })
    .await;
    Api::<Pod>::namespaced(client.clone(), ns)
        .delete(&name, &DeleteParams::default())
        .await
        .expect("deleting the pod");
    wait_for(
        &format!("a new {ns} {component} pod Ready"),
        TIMEOUT,
        || async {
            ready_pod(client, ns, component)
                .await
                .filter(|(_, new_uid)| *new_uid != uid)
        },
    )
    .await;
}

/// From inside `from`'s WordPress pod, with its own credentials (its env), connects to `db_host`:
/// "connected" or the MySQL error number. php gets the host as an argument, no shell involved.
fn connect_from_wordpress(cluster: &Cluster, from: &str, db_host: &str) -> String {
    const PHP: &str = "mysqli_report(MYSQLI_REPORT_OFF); \
        $l = @mysqli_connect($argv[1], getenv('WORDPRESS_DB_USER'), getenv('WORDPRESS_DB_PASSWORD'), getenv('WORDPRESS_DB_NAME')); \
        echo $l ? 'connected' : mysqli_connect_errno();";
    run_ok(cluster.kubectl().args([
        "-n",
        from,
        "exec",
        &format!("deploy/{from}-wordpress"),
        "--",
        "php",
        "-r",
        PHP,
        db_host,
    ]))
    .trim()
    .to_owned()
}

fn containers_of(namespace: &str) -> Vec<String> {
    let socket = state_dir().join("containerd/containerd.sock");
    let out = run_ok(
        Command::new("ctr")
            .arg("--address")
            .arg(&socket)
            .args(["-n", "k8s.io", "containers", "ls", "-q"])
            .arg(format!(
                "labels.\"io.kubernetes.pod.namespace\"=={namespace}"
            )),
    );
    out.lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_run_on_real_pods() {
    if skip() {
        return;
    }
    let _one_at_a_time = REAL_PODS.lock().await;
    let cluster = realpods_cluster().await;
    let client = cluster.client.clone();
    let api = ControlPlane::start(&cluster, &[]).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Two stores at once; the names (site titles) are unicode and unique to this run.
    let run = format!("{:x}", std::process::id());
    let mut sites = Vec::new();
    let mut leftovers = LeftoverGuard {
        kubeconfig: cluster.kubeconfig.clone(),
        namespaces: Vec::new(),
    };
    let posted = Instant::now();
    for label in ["Främling ✓", "Zweiter Laden ✓"] {
        let title = format!("{label} {run}");
        let (status, store) = api
            .call(
                reqwest::Method::POST,
                "/stores",
                Some(json!({ "name": title })),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "POST /stores: {store}");
        let id = store["store_id"].as_str().expect("store_id").to_owned();
        leftovers.namespaces.push(id.clone());
        sites.push(Site { id, title });
    }

    // Ready comes from real readiness probes; whenever the API says Ready, WordPress already
    // answers 200 with the title (so Ready is never reported early).
    for site in &sites {
        wait_for(&format!("{} Ready", site.id), READY_TIMEOUT, || async {
            let (status, store) = api
                .call(reqwest::Method::GET, &format!("/stores/{}", site.id), None)
                .await;
            assert_eq!(status, StatusCode::OK, "GET /stores/{}: {store}", site.id);
            assert_ne!(store["status"], "Failed", "store failed: {store}");
            if store["status"] != "Ready" {
                return None;
            }
            // No relay on this control plane: the store says so, and is Ready all the same.
            let mail = condition(&store, "MailConfigured");
            assert_eq!(
                (&mail["status"], &mail["reason"]),
                (&json!("False"), &json!("NoRelay")),
                "{mail}"
            );
            let body = site.home(&client, &http).await;
            assert!(
                body.as_deref().is_some_and(|b| site.shows_title(b)),
                "{} is Ready in the API, but its WordPress does not answer 200 with the title {:?}: {body:?}",
                site.id,
                site.title
            );
            Some(())
        })
        .await;
        println!(
            "{}: POST to Ready on real pods in {:.0?}",
            site.id,
            posted.elapsed()
        );
    }

    // The storefront check through the API: this WordPress answers (home page with the title, the
    // REST index), and this image has no WooCommerce, so the shop is not healthy: exactly that.
    for site in &sites {
        let (status, report) = api
            .call(
                reqwest::Method::GET,
                &format!("/stores/{}/health", site.id),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "health of {}: {report}", site.id);
        for part in ["home_page", "rest_api"] {
            assert_eq!(report[part]["result"], "ok", "{}: {report:#}", site.id);
            assert_eq!(report[part]["http_status"], 200, "{report:#}");
            assert!(report[part]["latency_ms"].as_u64().unwrap() < 3_000);
        }
        assert_eq!(report["woocommerce_active"], false, "{report:#}");
        assert_eq!(report["healthy"], false, "{report:#}");
        assert_eq!(report["host"], site.host());
        println!("{}: storefront check {report}", site.id);
    }

    // Without a relay, mail goes nowhere, and WordPress's own page says so to whoever asks for it.
    let admin = secret_value(&client, &sites[0].id, "wordpress-admin-user").await;
    let (status, location, page) = request_password_reset(&sites[0], &client, &http, &admin).await;
    assert!(
        status == StatusCode::OK && page.contains("The email could not be sent"),
        "lost password without a relay: {status} {location:?}\n{page}"
    );

    // Data survives: a post written through WordPress is still there after the MariaDB pod and
    // then the WordPress pod are deleted and come back.
    let a = &sites[0];
    let post = format!("Real pods post {run}");
    publish_post(a, &client, &http, &post).await;
    assert!(
        a.home(&client, &http)
            .await
            .is_some_and(|b| b.contains(&post)),
        "the new post is not on the home page"
    );
    for component in ["database", "wordpress"] {
        replace_pod(&client, &a.id, component).await;
        wait_for(
            &format!("the post after replacing the {component} pod"),
            TIMEOUT,
            || async {
                a.home(&client, &http)
                    .await
                    .filter(|b| b.contains(&post) && a.shows_title(b))
            },
        )
        .await;
        println!("{}: the post survived a new {component} pod", a.id);
    }

    // Isolation: each WordPress reaches its own database, and its credentials fail on the other's
    // (1045: access denied; the server is reachable, the credentials are what fails).
    for (own, other) in [(&sites[0], &sites[1]), (&sites[1], &sites[0])] {
        let own_db = format!("{}-mariadb", own.id);
        let other_db = format!("{0}-mariadb.{0}.svc.cluster.local", other.id);
        assert_eq!(
            connect_from_wordpress(&cluster, &own.id, &own_db),
            "connected"
        );
        assert_eq!(
            connect_from_wordpress(&cluster, &own.id, &other_db),
            "1045",
            "{}'s credentials on {}'s database",
            own.id,
            other.id
        );
    }

    // Delete leaves no container, no volume folder and no namespace.
    for site in &sites {
        let volumes: Vec<PathBuf> =
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), &site.id)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter_map(|c| c.spec.as_ref()?.volume_name.clone())
                .map(|pv| state_dir().join("volumes").join(pv))
                .collect();
        assert_eq!(
            volumes.len(),
            2,
            "{}: expected the WordPress and MariaDB volumes",
            site.id
        );
        assert!(
            volumes.iter().all(|v| v.is_dir()),
            "volume folders missing before delete: {volumes:?}"
        );
        assert!(
            !containers_of(&site.id).is_empty(),
            "no containers of {} before delete",
            site.id
        );
        let (status, body) = api
            .call(
                reqwest::Method::DELETE,
                &format!("/stores/{}", site.id),
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "DELETE /stores/{}: {body}",
            site.id
        );
        wait_for(&format!("{} gone", site.id), TIMEOUT, || async {
            let (status, _) = api
                .call(reqwest::Method::GET, &format!("/stores/{}", site.id), None)
                .await;
            let ns = Api::<Namespace>::all(client.clone())
                .get_opt(&site.id)
                .await
                .unwrap();
            (status == StatusCode::NOT_FOUND && ns.is_none()).then_some(())
        })
        .await;
        wait_for(
            &format!("{}'s containers and volume folders removed", site.id),
            TIMEOUT,
            || async {
                (containers_of(&site.id).is_empty()
                    && volumes.iter().all(|v| !Path::new(v).exists()))
                .then_some(())
            },
        )
        .await;
        println!(
            "{}: deleted; no container, volume folder or namespace left",
            site.id
        );
    }
}

/// A real SMTP server for the stores' mail: aiosmtpd (pinned, `scripts/smtp-sink` installs it) on
/// the bridge address, writing each message it accepts to a Maildir with the envelope added as
/// `X-MailFrom` and `X-RcptTo` headers. Killed on drop.
struct SmtpSink {
    child: Child,
    port: u16,
    maildir: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start(ip: &str) -> SmtpSink {
        let exe = match std::env::var_os("STOREFLEET_AIOSMTPD") {
            Some(path) => PathBuf::from(path),
            None => PathBuf::from(
                run_ok(&mut Command::new(
                    testkit::workspace_root().join("scripts/smtp-sink"),
                ))
                .trim(),
            ),
        };
        // A free port on the bridge (taken back a moment later by aiosmtpd).
        let port = std::net::TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("no free port on {ip} (is the real-pod node up?): {e}"))
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let maildir = dir.path().join("maildir");
        let log = dir.path().join("aiosmtpd.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(&exe)
            .arg("-n") // no setuid to `nobody`: it writes into our temp dir
            .args(["-l", &format!("{ip}:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        let mut sink = SmtpSink {
            child,
            port,
            maildir,
            log,
            _dir: dir,
        };
        // Listening once it greets (220).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut conn) = std::net::TcpStream::connect((ip, port)) {
                use std::io::Read;
                conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut greeting = [0u8; 3];
                if conn.read_exact(&mut greeting).is_ok() && &greeting == b"220" {
                    return sink;
                }
            }
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("aiosmtpd exited ({status}):\n{}", sink.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd does not greet on {ip}:{port} after 30 s:\n{}",
                sink.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every message received so far, oldest first.
    fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> =
            std::fs::read_dir(self.maildir.join("new"))
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap(), e.path()))
                        .collect()
                })
                .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| Mail::parse(&std::fs::read_to_string(path).unwrap()))
            .collect()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- aiosmtpd log ---\n{}", self.log_text());
        }
    }
}

/// A received message: its header lines (unfolded) and its body.
struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            match (line.starts_with([' ', '\t']), headers.last_mut()) {
                (true, Some((_, value))) => {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                _ => {
                    if let Some((name, value)) = line.split_once(':') {
                        headers.push((name.trim().to_owned(), value.trim().to_owned()));
                    }
                }
            }
        }
        let mut mail = Mail {
            headers,
            body: body.to_owned(),
        };
        // Quoted-printable only joins its soft line breaks here: the asserted text is ASCII.
        if mail
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"))
        {
            mail.body = mail.body.replace("=\n", "");
        }
        mail
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn head(&self) -> String {
        self.headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}\n"))
            .collect()
    }
}

/// Store mail (issue 13): with the platform's relay set to a real SMTP server, a WordPress core mail
/// of a real store (the lost-password mail for the admin) arrives there, from the platform's From,
/// to the admin's address, through the chart's must-use plugin and PHPMailer in the real image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_mail_reaches_a_real_smtp_server() {
    if skip() {
        return;
    }
    const FROM: &str = "shop@storefleet.test";
    const FROM_NAME: &str = "Storefleet Test";
    let _one_at_a_time = REAL_PODS.lock().await;
    let cluster = realpods_cluster().await;
    let client = cluster.client.clone();
    let sink = SmtpSink::start(BRIDGE_IP);
    let port = sink.port.to_string();
    let api = ControlPlane::start(
        &cluster,
        &[
            "--smtp-host",
            BRIDGE_IP,
            "--smtp-port",
            &port,
            "--smtp-tls",
            "none",
            "--smtp-relay-cidr",
            &format!("{BRIDGE_IP}/32"),
            "--mail-from",
            FROM,
            "--mail-from-name",
            FROM_NAME,
        ],
    )
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // ASCII title: the subject is then plain text in the message, not RFC 2047 encoded.
    let title = format!("Mail test {:x}", std::process::id());
    let posted = Instant::now();
    let (status, store) = api
        .call(
            reqwest::Method::POST,
            "/stores",
            Some(json!({ "name": title })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "POST /stores: {store}");
    let id = store["store_id"].as_str().expect("store_id").to_owned();
    let _leftovers = LeftoverGuard {
        kubeconfig: cluster.kubeconfig.clone(),
        namespaces: vec![id.clone()],
    };
    let site = Site {
        id: id.clone(),
        title: title.clone(),
    };
    let store = wait_for(&format!("{id} Ready"), READY_TIMEOUT, || async {
        let (status, store) = api
            .call(reqwest::Method::GET, &format!("/stores/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "GET /stores/{id}: {store}");
        assert_ne!(store["status"], "Failed", "store failed: {store}");
        (store["status"] == "Ready").then_some(store)
    })
    .await;
    println!("{id}: POST to Ready in {:.0?}", posted.elapsed());
    let mail = condition(&store, "MailConfigured");
    assert_eq!(
        (&mail["status"], &mail["reason"]),
        (&json!("True"), &json!("RelayConfigured")),
        "{mail}"
    );
    assert!(
        mail["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{BRIDGE_IP}:{port}")),
        "{mail}"
    );
    // The setup Job installed WordPress with `--skip-email`: nothing was sent yet.
    let before: Vec<String> = sink.messages().iter().map(Mail::head).collect();
    assert!(
        before.is_empty(),
        "mail before any was asked for: {before:#?}"
    );

    let (status, credentials) = api
        .call(
            reqwest::Method::GET,
            &format!("/stores/{id}/credentials"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "credentials: {credentials}");
    let admin = credentials["username"].as_str().unwrap().to_owned();
    let admin_email = credentials["email"].as_str().unwrap().to_owned();

    let asked = Instant::now();
    let (status, location, page) = request_password_reset(&site, &client, &http, &admin).await;
    assert!(
        status == StatusCode::FOUND && location.contains("checkemail=confirm"),
        "the lost-password form did not confirm the mail: {status} {location:?}\n{page}"
    );
    let answered = asked.elapsed();
    let mut received = wait_for(
        "the password-reset mail at the SMTP server",
        TIMEOUT,
        || {
            let messages = sink.messages();
            async move { (!messages.is_empty()).then_some(messages) }
        },
    )
    .await;
    println!(
        "{id}: lost-password form answered in {answered:.1?}; mail received {:.1?} after the request:\n{}",
        asked.elapsed(),
        received[0].head()
    );
    assert_eq!(
        received.len(),
        1,
        "one mail expected: {:#?}",
        received.iter().map(Mail::head).collect::<Vec<_>>()
    );
    let reset = received.remove(0);
    // The envelope (as the server saw it) and the headers.
    assert_eq!(reset.header("X-MailFrom"), Some(FROM), "{}", reset.head());
    assert_eq!(
        reset.header("X-RcptTo"),
        Some(admin_email.as_str()),
        "{}",
        reset.head()
    );
    assert_eq!(
        reset.header("From"),
        Some(format!("{FROM_NAME} <{FROM}>").as_str()),
        "{}",
        reset.head()
    );
    assert_eq!(
        reset.header("To"),
        Some(admin_email.as_str()),
        "{}",
        reset.head()
    );
    // WordPress core's password-reset mail (wp-includes/user.php, retrieve_password()).
    assert_eq!(
        reset.header("Subject"),
        Some(format!("[{title}] Password Reset").as_str()),
        "{}",
        reset.head()
    );
    for text in [
        "Someone has requested a password reset for the following account:",
        &format!("Username: {admin}"),
        "wp-login.php?action=rp&key=",
        &format!("&login={}", form_encode(&admin)),
    ] {
        assert!(reset.body.contains(text), "no {text:?} in:\n{}", reset.body);
    }

    let (status, body) = api
        .call(reqwest::Method::DELETE, &format!("/stores/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "DELETE /stores/{id}: {body}");
    wait_for(&format!("{id} gone"), TIMEOUT, || async {
        let (status, _) = api
            .call(reqwest::Method::GET, &format!("/stores/{id}"), None)
            .await;
        let ns = Api::<Namespace>::all(client.clone())
            .get_opt(&id)
            .await
            .unwrap();
        (status == StatusCode::NOT_FOUND && ns.is_none()).then_some(())
    })
    .await;
    println!("{id}: deleted");
}

/// The image of a component's running, ready pod's main container (`wordpress`, `mariadb`).
async fn pod_image(client: &Client, ns: &str, component: &str) -> Option<String> {
    let (name, _) = ready_pod(client, ns, component).await?;
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .get(&name)
        .await
        .ok()?;
    pod.spec?
        .containers
        .into_iter()
        .find(|c| c.name == component)?
        .image
}

/// Polls `GET /rollouts/{id}` until its phase is `phase`; fails early on another final phase.
async fn wait_rollout(api: &ControlPlane, id: &str, phase: &str) -> Value {
    wait_for(&format!("rollout {id} {phase}"), READY_TIMEOUT, || async {
        let (status, body) = api
            .call(reqwest::Method::GET, &format!("/rollouts/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "GET /rollouts/{id}: {body}");
        let now = body["phase"].as_str().unwrap_or_default();
        assert!(
            now == phase || !matches!(now, "Completed" | "Aborted"),
            "rollout {id} is {now}, not {phase}: {body:#}"
        );
        (now == phase).then_some(body)
    })
    .await
}

async fn start_rollout(api: &ControlPlane, target: &str, tag: &str) -> String {
    let (status, created) = api
        .call(
            reqwest::Method::POST,
            "/rollouts",
            Some(json!({
                "target": target,
                "values": {"wordpress": {"image": {"tag": tag}}},
                // Real MariaDB and Apache on a busy 2-core machine: generous.
                "gate_timeout_seconds": 420,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "POST /rollouts: {created}");
    created["rollout_id"].as_str().unwrap().to_owned()
}

/// Issue 15: a post survives a WordPress image change through a fleet rollout, and a rollout to an
/// image that does not exist is rolled back with the post still there.
///
/// Honest scope: `storefleet.local/wordpress:realpods-next` is the *same build* as
/// `wordpress:realpods` under a third name (images/wordpress/image.conf `EXTRA_NAMES`): no second
/// WordPress release can be had here. What this proves is that a rollout replaces the store's pod
/// with the image the target names, the gate waits for real readiness probes, and the store's data
/// (MariaDB rows, the WordPress volume) survives the new pod; not that WordPress upgrades its schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_survives_a_wordpress_image_change_through_a_rollout() {
    if skip() {
        return;
    }
    const OLD_IMAGE: &str = "storefleet.local/wordpress:realpods";
    const NEW_IMAGE: &str = "storefleet.local/wordpress:realpods-next";
    let _one_at_a_time = REAL_PODS.lock().await;
    let cluster = realpods_cluster().await;
    let client = cluster.client.clone();
    let api = ControlPlane::start(&cluster, &[]).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let run = format!("{:x}", std::process::id());
    let title = format!("Rollout shop {run}");
    let (status, store) = api
        .call(
            reqwest::Method::POST,
            "/stores",
            Some(json!({ "name": title })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "POST /stores: {store}");
    let id = store["store_id"].as_str().expect("store_id").to_owned();
    let _leftovers = LeftoverGuard {
        kubeconfig: cluster.kubeconfig.clone(),
        namespaces: vec![id.clone()],
    };
    let site = Site {
        id: id.clone(),
        title,
    };
    // Ready on its current spec, with `spec.release.target` as given (None: platform values).
    let ready_on = |target: Option<&'static str>| {
        let (api, id, cluster) = (&api, id.clone(), &cluster);
        async move {
            wait_for(
                &format!("{id} Ready on {target:?}"),
                READY_TIMEOUT,
                || async {
                    let (status, store) = api
                        .call(reqwest::Method::GET, &format!("/stores/{id}"), None)
                        .await;
                    assert_eq!(status, StatusCode::OK, "GET /stores/{id}: {store}");
                    let store_cr = cluster_store(cluster, &id);
                    let on = store_cr["spec"]["release"]["target"]
                        .as_str()
                        .map(str::to_owned);
                    (store["status"] == "Ready" && on.as_deref() == target).then_some(())
                },
            )
            .await
        }
    };
    ready_on(None).await;
    assert_eq!(
        pod_image(&client, &id, "wordpress").await.as_deref(),
        Some(OLD_IMAGE)
    );

    let post = format!("Rollout post {run}");
    publish_post(&site, &client, &http, &post).await;
    let post_served = || async {
        wait_for(&format!("{id} serving the post"), TIMEOUT, || async {
            site.home(&client, &http)
                .await
                .filter(|b| b.contains(&post) && site.shows_title(b))
        })
        .await
    };
    post_served().await;

    // The good change: the rollout moves the store (its only one, the canary) to the new image.
    let started = Instant::now();
    let rollout = start_rollout(&api, "wp-realpods-next", "realpods-next").await;
    let done = wait_rollout(&api, &rollout, "Completed").await;
    assert_eq!(done["progress"], "1/1", "{done:#}");
    assert_eq!(done["stores"][0]["step"], "Upgraded", "{done:#}");
    println!(
        "{id}: rollout to realpods-next completed in {:.0?}",
        started.elapsed()
    );
    ready_on(Some("wp-realpods-next")).await;
    assert_eq!(
        pod_image(&client, &id, "wordpress").await.as_deref(),
        Some(NEW_IMAGE),
        "the rollout did not replace the WordPress pod with the new image"
    );
    post_served().await;
    println!("{id}: the post survived the move to {NEW_IMAGE}");

    // The bad change: an image nobody built. The gate sees the pull fail (nothing can be pulled
    // here), the store is rolled back to the revision it ran (realpods-next), the rollout pauses.
    let started = Instant::now();
    let broken = start_rollout(&api, "wp-missing", "realpods-missing").await;
    let paused = wait_rollout(&api, &broken, "Paused").await;
    let message = paused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("wordpress.image.tag=realpods-missing") && message.contains(&id),
        "{paused:#}"
    );
    assert_eq!(paused["stores"][0]["step"], "RolledBack", "{paused:#}");
    println!(
        "{id}: rollout to a missing image paused in {:.0?}: {message}",
        started.elapsed()
    );
    ready_on(Some("wp-realpods-next")).await;
    assert_eq!(
        pod_image(&client, &id, "wordpress").await.as_deref(),
        Some(NEW_IMAGE),
        "not back on the image it ran before"
    );
    post_served().await;
    let history = run_ok(cluster.helm().args(["history", &id, "-n", &id]));
    let back_to = format!("Rollback to {}", paused["stores"][0]["previous_revision"]);
    assert!(history.contains(&back_to), "no {back_to:?} in:\n{history}");
    println!("{id}: rolled back, the post is still there");

    // Abort the paused one (so it holds nothing), then delete the store and both rollouts.
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/rollouts/{broken}/abort"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "abort: {body}");
    wait_rollout(&api, &broken, "Aborted").await;
    let (status, body) = api
        .call(reqwest::Method::DELETE, &format!("/stores/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "DELETE /stores/{id}: {body}");
    wait_for(&format!("{id} gone"), TIMEOUT, || async {
        let ns = Api::<Namespace>::all(client.clone())
            .get_opt(&id)
            .await
            .unwrap();
        ns.is_none().then_some(())
    })
    .await;
    run_ok(cluster.kubectl().args([
        "delete",
        "storerollout",
        &rollout,
        &broken,
        "--ignore-not-found",
    ]));
}

/// The Store object as the cluster has it (its spec says which target it runs).
fn cluster_store(cluster: &Cluster, id: &str) -> Value {
    let out = run_ok(cluster.kubectl().args(["get", "store", id, "-o", "json"]));
    serde_json::from_str(&out).expect("Store JSON")
}

/// The backup agent image for this run: the storefleet binary under test, packed and imported
/// into the real-pod containerd by `scripts/realpods/agent-image` (argv, no shell).
fn agent_image() -> String {
    let root = testkit::workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    run_ok(
        Command::new(root.join("scripts/realpods/agent-image"))
            .arg(target.join("debug/storefleet"))
            .arg(state_dir().join("containerd/containerd.sock")),
    )
    .trim()
    .to_owned()
}

/// The filesystem backup target's claim in a store's namespace (`--backup-job-claim`'s default),
/// as a platform operator would provide it: here a hostPath volume on the one node, the same
/// folder the control plane (on this host) reads as `--backup-dir`.
fn backup_claim(cluster: &Cluster, ns: &str, dir: &Path) {
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": format!("{ns}-backups"), "labels": {"storefleet.dev/test": "realpods-backups"}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": dir.to_str().unwrap(), "type": "Directory"},
            "claimRef": {"namespace": ns, "name": "storefleet-backups"}
        }
    });
    let pvc = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "storefleet-backups", "namespace": ns},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "volumeName": format!("{ns}-backups"),
            "resources": {"requests": {"storage": "1Gi"}}
        }
    });
    for object in [pv, pvc] {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), object.to_string()).unwrap();
        run_ok(cluster.kubectl().args(["apply", "-f"]).arg(file.path()));
    }
}

/// A new store's backups claim, once the controller made its namespace (a clone's restore Job
/// waits for it).
async fn new_store_claim(cluster: &Cluster, ns: &str, dir: &Path) {
    wait_for(&format!("namespace {ns}"), TIMEOUT, || async {
        Api::<Namespace>::all(cluster.client.clone())
            .get_opt(ns)
            .await
            .unwrap()
    })
    .await;
    backup_claim(cluster, ns, dir);
}

/// One SQL statement in the store's database, from inside its WordPress pod with WordPress's own
/// credentials (its env); rows as tab-separated lines. The SQL is an argument, no shell.
fn sql(cluster: &Cluster, ns: &str, statement: &str) -> String {
    const PHP: &str = "mysqli_report(MYSQLI_REPORT_OFF); \
        $l = mysqli_connect(getenv('WORDPRESS_DB_HOST'), getenv('WORDPRESS_DB_USER'), getenv('WORDPRESS_DB_PASSWORD'), getenv('WORDPRESS_DB_NAME')); \
        if (!$l) { fwrite(STDERR, mysqli_connect_error()); exit(1); } \
        $r = mysqli_query($l, $argv[1]); \
        if ($r === false) { fwrite(STDERR, mysqli_error($l)); exit(1); } \
        if ($r !== true) { while ($row = mysqli_fetch_row($r)) { echo implode(\"\\t\", $row), \"\\n\"; } }";
    run_ok(cluster.kubectl().args([
        "-n",
        ns,
        "exec",
        &format!("deploy/{ns}-wordpress"),
        "--",
        "php",
        "-r",
        PHP,
        statement,
    ]))
    .trim()
    .to_owned()
}

/// Polls `GET path` until its `state` is `want`; fails early on `Failed`.
async fn wait_state(api: &ControlPlane, path: &str, want: &str) -> Value {
    wait_for(&format!("{path} {want}"), READY_TIMEOUT, || async {
        let (status, body) = api.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        let state = body["state"].as_str().unwrap_or_default();
        assert!(
            state == want || state != "Failed",
            "{path} failed: {body:#}"
        );
        (state == want).then_some(body)
    })
    .await
}

/// Waits until the site's home page (with its title) shows `post`, or (`yes` false) no longer does.
async fn serves(site: &Site, client: &Client, http: &reqwest::Client, post: &str, yes: bool) {
    let what = format!(
        "{} {}serving {post:?}",
        site.id,
        if yes { "" } else { "not " }
    );
    wait_for(&what, TIMEOUT, || async {
        let home = site.home(client, http).await?;
        (site.shows_title(&home) && home.contains(post) == yes).then_some(())
    })
    .await
}

/// Polls `GET /stores/{id}` until it is Ready; fails early on Failed.
async fn wait_store_ready(api: &ControlPlane, id: &str) -> Value {
    wait_for(&format!("{id} Ready"), READY_TIMEOUT, || async {
        let (status, store) = api
            .call(reqwest::Method::GET, &format!("/stores/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "GET /stores/{id}: {store}");
        assert_ne!(store["status"], "Failed", "{id} failed: {store:#}");
        (store["status"] == "Ready").then_some(store)
    })
    .await
}

/// Issue 14 on real pods, with the agent (the binary under test, in its own image) in real Jobs
/// against the real MariaDB and WordPress volume, and the filesystem target:
/// a post and a row standing for an order are backed up; deleted; restored in place (a safety
/// backup first): back. A clone of the backup serves the post at its own address (WP-CLI's
/// `search-replace` moved the URLs: the real-pod setup image's `wp` stand-in implements that
/// subset, see images/wordpress/rootfs/usr/local/bin/wp), the original untouched. The original,
/// deleted with the safety net, is listed among the deleted stores and comes back as a clone of
/// its final backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_comes_back_by_restore_by_clone_and_after_its_store_was_deleted() {
    if skip() {
        return;
    }
    let _one_at_a_time = REAL_PODS.lock().await;
    let cluster = realpods_cluster().await;
    let client = cluster.client.clone();
    let image = agent_image();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("backups");
    std::fs::create_dir(&target).unwrap();
    // The Jobs write as WordPress's uid (33); the control plane reads as this user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(work.path().join("key"), "7a".repeat(32)).unwrap();
    let key = work.path().join("key");
    let _backup_leftovers = BackupLeftovers {
        kubeconfig: cluster.kubeconfig.clone(),
        instance: format!("t-realpods-{}", std::process::id()),
    };
    let api = ControlPlane::start(
        &cluster,
        &[
            "--backup-dir",
            target.to_str().unwrap(),
            "--backup-key-file",
            key.to_str().unwrap(),
            "--backup-agent-image",
            &image,
            "--backup-schedule",
            "off",
        ],
    )
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let run = format!("{:x}", std::process::id());
    let title = format!("Backup shop {run}");
    let create = |body: Value| {
        let api = &api;
        async move {
            let (status, store) = api.call(reqwest::Method::POST, "/stores", Some(body)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "POST /stores: {store}");
            store["store_id"].as_str().expect("store_id").to_owned()
        }
    };
    let id = create(json!({ "name": title })).await;
    let _leftovers = LeftoverGuard {
        kubeconfig: cluster.kubeconfig.clone(),
        namespaces: vec![id.clone()],
    };
    let store = wait_store_ready(&api, &id).await;
    backup_claim(&cluster, &id, &target);
    let site = Site {
        id: id.clone(),
        title: title.clone(),
    };
    let post = format!("Backed-up post {run}");
    let order = format!("Order {run}, Ada Lovelace, 12 Analytical St");
    publish_post(&site, &client, &http, &post).await;
    // A row standing for an order: WooCommerce cannot be had here, its orders are wp_posts rows.
    sql(
        &cluster,
        &id,
        &format!(
            "INSERT INTO wp_posts (post_type, post_status, post_title, post_content, post_excerpt, \
             to_ping, pinged, post_content_filtered, post_date, post_date_gmt, post_modified, \
             post_modified_gmt) VALUES ('shop_order', 'wc-processing', '{order}', '', '', '', '', '', \
             NOW(), NOW(), NOW(), NOW())"
        ),
    );
    let orders = |ns: String| {
        let cluster = &cluster;
        let order = order.clone();
        move || {
            sql(
                cluster,
                &ns,
                &format!("SELECT COUNT(*) FROM wp_posts WHERE post_title = '{order}'"),
            )
        }
    };
    serves(&site, &client, &http, &post, true).await;
    assert_eq!(orders(id.clone())(), "1");

    // Back up.
    let started = Instant::now();
    let (status, asked) = api
        .call(
            reqwest::Method::POST,
            &format!("/stores/{id}/backups"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    let backup = asked["backup_id"].as_str().unwrap().to_owned();
    let done = wait_state(&api, &format!("/stores/{id}/backups/{backup}"), "Succeeded").await;
    println!(
        "{id}: backup {backup} Succeeded in {:.0?}: {} stored, database {} B, files {} B",
        started.elapsed(),
        done["size"],
        done["database_bytes"],
        done["files_bytes"]
    );

    // A backup altered on the target (one byte of its dump flipped): the restore is refused by the
    // agent before it changes anything, nothing is put back, the store is Ready with its post.
    let (status, asked) = api
        .call(
            reqwest::Method::POST,
            &format!("/stores/{id}/backups"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    let altered = asked["backup_id"].as_str().unwrap().to_owned();
    wait_state(
        &api,
        &format!("/stores/{id}/backups/{altered}"),
        "Succeeded",
    )
    .await;
    let dump = target.join(&id).join(&altered).join("database.sql.zst.enc");
    let mut bytes = std::fs::read(&dump).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&dump, &bytes).unwrap();
    let (status, asked) = api
        .call(
            reqwest::Method::POST,
            &format!("/stores/{id}/restore"),
            Some(json!({ "backupId": altered })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    let refused = asked["restore_id"].as_str().unwrap().to_owned();
    let ended = wait_for(
        &format!("restore {refused} ends"),
        READY_TIMEOUT,
        || async {
            let (_, list) = api
                .call(
                    reqwest::Method::GET,
                    &format!("/stores/{id}/restores"),
                    None,
                )
                .await;
            list.as_array()?
                .iter()
                .find(|r| {
                    r["restore_id"] == refused.as_str()
                        && (r["state"] == "Failed" || r["state"] == "Succeeded")
                })
                .cloned()
        },
    )
    .await;
    assert_eq!(ended["state"], "Failed", "{ended:#}");
    let message = ended["message"].as_str().unwrap();
    assert!(
        message.contains("refused, nothing was changed"),
        "{message}"
    );
    assert!(message.contains("database part"), "{message}");
    let rollback = format!("{refused}-rollback");
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(client.clone(), &id);
    assert!(
        jobs.get_opt(&rollback).await.unwrap().is_none(),
        "nothing to put back"
    );
    wait_store_ready(&api, &id).await;
    serves(&site, &client, &http, &post, true).await;
    assert_eq!(orders(id.clone())(), "1");
    println!("{id}: an altered backup was refused, the store unchanged: {message}");

    // Lose the post and the order; restore in place.
    sql(
        &cluster,
        &id,
        &format!("DELETE FROM wp_posts WHERE post_title IN ('{post}', '{order}')"),
    );
    serves(&site, &client, &http, &post, false).await;
    assert_eq!(orders(id.clone())(), "0");
    let started = Instant::now();
    let (status, asked) = api
        .call(
            reqwest::Method::POST,
            &format!("/stores/{id}/restore"),
            Some(json!({ "backupId": backup })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    let restore = asked["restore_id"].as_str().unwrap().to_owned();
    let restored = wait_for(&format!("restore {restore}"), READY_TIMEOUT, || async {
        let (_, list) = api
            .call(
                reqwest::Method::GET,
                &format!("/stores/{id}/restores"),
                None,
            )
            .await;
        let r = list
            .as_array()?
            .iter()
            .find(|r| r["restore_id"] == restore.as_str())?
            .clone();
        assert_ne!(r["state"], "Failed", "restore failed: {r:#}");
        (r["state"] == "Succeeded").then_some(r)
    })
    .await;
    println!(
        "{id}: restore {restore} Succeeded in {:.0?} (safety backup {})",
        started.elapsed(),
        restored["safety_backup"]
    );
    wait_store_ready(&api, &id).await;
    serves(&site, &client, &http, &post, true).await;
    assert_eq!(orders(id.clone())(), "1", "the order row is back");

    // Clone: the post at the clone's own address, the original untouched.
    let started = Instant::now();
    let clone = create(json!({ "name": format!("Clone {run}"), "from_backup": backup })).await;
    let _clone_leftovers = LeftoverGuard {
        kubeconfig: cluster.kubeconfig.clone(),
        namespaces: vec![clone.clone()],
    };
    new_store_claim(&cluster, &clone, &target).await;
    let cloned = wait_store_ready(&api, &clone).await;
    println!("{clone}: cloned from {backup} in {:.0?}", started.elapsed());
    // The copy's title is the original's: the site's settings come with its database.
    let clone_site = Site {
        id: clone.clone(),
        title: title.clone(),
    };
    serves(&clone_site, &client, &http, &post, true).await;
    assert_eq!(orders(clone.clone())(), "1");
    let addresses = |ns: &str| {
        sql(
            &cluster,
            ns,
            "SELECT option_value FROM wp_options WHERE option_name IN ('home', 'siteurl')",
        )
    };
    let clone_url = cloned["url"].as_str().unwrap();
    assert_eq!(addresses(&clone), format!("{clone_url}\n{clone_url}"));
    let url = store["url"].as_str().unwrap();
    assert_eq!(
        addresses(&id),
        format!("{url}\n{url}"),
        "the original untouched"
    );
    serves(&site, &client, &http, &post, true).await;

    // Deleted with the safety net, then brought back from its final backup.
    let (status, deleted) = api
        .call(reqwest::Method::DELETE, &format!("/stores/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deleted}");
    let last = deleted["final_backup"]
        .as_str()
        .expect("a final backup")
        .to_owned();
    wait_for(&format!("{id} gone"), READY_TIMEOUT, || async {
        let ns = Api::<Namespace>::all(client.clone())
            .get_opt(&id)
            .await
            .unwrap();
        ns.is_none().then_some(())
    })
    .await;
    // Listed once the Store object itself is gone (its finalizer ends after the namespace).
    let listed = wait_for(
        &format!("{id} among the deleted stores"),
        TIMEOUT,
        || async {
            let (_, gone) = api
                .call(reqwest::Method::GET, "/deleted-stores", None)
                .await;
            gone.as_array()?
                .iter()
                .find(|d| d["store_id"] == id.as_str())
                .cloned()
        },
    )
    .await;
    assert_eq!(listed["final_backup"]["backup_id"], last.as_str());
    assert_eq!(listed["final_backup"]["state"], "Succeeded");
    let recovered =
        create(json!({ "name": format!("Recovered {run}"), "from_backup": last })).await;
    let _recovered_leftovers = LeftoverGuard {
        kubeconfig: cluster.kubeconfig.clone(),
        namespaces: vec![recovered.clone()],
    };
    new_store_claim(&cluster, &recovered, &target).await;
    wait_store_ready(&api, &recovered).await;
    let recovered_site = Site {
        id: recovered.clone(),
        title: title.clone(),
    };
    serves(&recovered_site, &client, &http, &post, true).await;
    assert_eq!(orders(recovered.clone())(), "1");
    println!("{id}: deleted, then recovered from its final backup {last} as {recovered}");

    // Clean up while the control plane runs (the backups' finalizers delete their data).
    for store in [&clone, &recovered] {
        let (status, body) = api
            .call(
                reqwest::Method::DELETE,
                &format!("/stores/{store}?skip_final_backup=true"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let instance = format!("storefleet.dev/instance=t-realpods-{}", std::process::id());
    run_ok(cluster.kubectl().args([
        "delete",
        "storebackups,storerestores",
        "-l",
        &instance,
        "--wait=true",
        "--timeout=120s",
    ]));
    run_ok(cluster.kubectl().args([
        "delete",
        "pv",
        "-l",
        "storefleet.dev/test=realpods-backups",
        "--wait=false",
    ]));
}

/// What `wp-login.php` makes of `login` and `password`, asked as a browser does (the test cookie
/// set, as after loading the form: without it WordPress refuses every login): `true` when WordPress
/// logs the user in (302 with its `wordpress_logged_in_` cookie), `false` when it says the password
/// is wrong. Anything else fails the test, so "refused" can never be a broken request.
async fn wp_login(
    site: &Site,
    client: &Client,
    http: &reqwest::Client,
    login: &str,
    password: &str,
) -> bool {
    let resp = http
        .post(format!("{}/wp-login.php", site.service_url(client).await))
        .header(HOST, site.host())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header(
            reqwest::header::COOKIE,
            "wordpress_test_cookie=WP%20Cookie%20check",
        )
        .body(format!(
            "log={}&pwd={}&wp-submit=Log+In&testcookie=1",
            form_encode(login),
            form_encode(password)
        ))
        .send()
        .await
        .expect("wp-login.php request");
    let status = resp.status();
    let logged_in = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("wordpress_logged_in_"));
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let page = resp.text().await.unwrap_or_default();
    match status {
        StatusCode::FOUND if logged_in && location.contains("/wp-admin") => true,
        // WordPress 6.1's words for a known user with a wrong password (wp-includes/user.php).
        StatusCode::OK if !logged_in && page.contains("is incorrect") => false,
        _ => panic!("wp-login.php as {login}: unexpected {status} {location:?}\n{page}"),
    }
}

/// The REST index (`/?rest_route=/`: needs no rewrite rules): WordPress's own `name`, `url`
/// (siteurl) and `home`.
async fn rest_index(site: &Site, client: &Client, http: &reqwest::Client) -> Value {
    let resp = http
        .get(format!("{}/?rest_route=/", site.service_url(client).await))
        .header(HOST, site.host())
        .send()
        .await
        .expect("REST index request");
    assert_eq!(resp.status(), StatusCode::OK, "REST index of {}", site.id);
    resp.json().await.expect("REST index JSON")
}

/// Every host the store's routes (HTTPRoutes and Ingresses of its namespace) send to it.
fn routed_hosts(cluster: &Cluster, ns: &str) -> Vec<String> {
    let out =
        run_ok(
            cluster
                .kubectl()
                .args(["-n", ns, "get", "httproutes,ingresses", "-o", "json"]),
        );
    let list: Value = serde_json::from_str(&out).expect("route list JSON");
    let mut hosts = Vec::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let route_hosts = item["spec"]["hostnames"].as_array().cloned();
        let rule_hosts = item["spec"]["rules"].as_array().map(|rules| {
            rules
                .iter()
                .filter_map(|r| r.get("host").cloned())
                .collect::<Vec<_>>()
        });
        for host in route_hosts.or(rule_hosts).into_iter().flatten() {
            hosts.push(host.as_str().unwrap_or_default().to_owned());
        }
    }
    hosts
}

/// After a failed pool test: the control plane is gone, and its Stores (the pool's too) keep the
/// finalizer only it would remove; remove them and their namespaces (real processes) as well.
struct InstanceLeftovers {
    kubeconfig: PathBuf,
    instance: String,
}

impl Drop for InstanceLeftovers {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("STOREFLEET_KEEP_NAMESPACES").is_none() {
            testkit::force_remove_instance(&self.kubeconfig, &self.instance);
        }
    }
}

/// Issue 16 on real pods: a member's `POST /stores` claims the warm pool's Ready store, and once the
/// API says Ready again, WordPress itself is the member's: its home page and REST index carry the
/// member's title, `home`/`siteurl` and the routes are the store's URL, the admin password the API
/// now reveals logs in at `wp-login.php`, and the pool's password (read from the Secret before the
/// claim, and shown to log in then) is refused. Prints the claim's POST to Ready.
/// `--max-stores 2`: the pool fills once and does not refill after the claim (it never takes the
/// last slot), so the test costs one store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_pool_store_is_the_members_in_wordpress_itself() {
    if skip() {
        return;
    }
    let _one_at_a_time = REAL_PODS.lock().await;
    let cluster = realpods_cluster().await;
    let client = cluster.client.clone();
    let api = ControlPlane::start(
        &cluster,
        &["--pool", "woocommerce/small=1", "--max-stores", "2"],
    )
    .await;
    let _leftovers = InstanceLeftovers {
        kubeconfig: cluster.kubeconfig.clone(),
        instance: format!("t-realpods-{}", std::process::id()),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The pool fills itself; an admin sees its store (`pool: true`), Ready on real pods.
    let filling = Instant::now();
    let pool_id = wait_for("a Ready pool store", READY_TIMEOUT, || async {
        let (status, list) = api.call(reqwest::Method::GET, "/stores", None).await;
        assert_eq!(status, StatusCode::OK, "GET /stores: {list}");
        let pooled: Vec<&Value> = list
            .as_array()
            .expect("a list")
            .iter()
            .filter(|s| s["pool"] == true)
            .collect();
        assert!(pooled.len() <= 1, "one pool store expected: {list:#}");
        for s in &pooled {
            assert_ne!(s["status"], "Failed", "pool store failed: {s:#}");
        }
        pooled
            .iter()
            .find(|s| s["status"] == "Ready")
            .map(|s| s["store_id"].as_str().unwrap().to_owned())
    })
    .await;
    println!("{pool_id}: pool store Ready in {:.0?}", filling.elapsed());
    let pool_site = Site {
        id: pool_id.clone(),
        title: "Pool store".into(),
    };
    let body = pool_site.home(&client, &http).await;
    assert!(
        body.as_deref().is_some_and(|b| pool_site.shows_title(b)),
        "the pool store does not answer with the pool's title: {body:?}"
    );
    // The pool's identity, as whoever could read its Secret before the claim knew it; it works now.
    let admin = secret_value(&client, &pool_id, "wordpress-admin-user").await;
    let pool_password = secret_value(&client, &pool_id, "wordpress-admin-password").await;
    assert!(
        wp_login(&pool_site, &client, &http, &admin, &pool_password).await,
        "the pool's password does not log in before the claim"
    );

    // A member claims it by creating a store with a name.
    let run = format!("{:x}", std::process::id());
    let (status, member) = api
        .call(
            reqwest::Method::POST,
            "/users",
            Some(json!({ "name": format!("pool-member-{run}") })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "POST /users: {member}");
    let token = member["token"].as_str().expect("token").to_owned();
    let title = format!("Mein Laden ✓ {run}");
    let posted = Instant::now();
    let (status, store) = api
        .call_as(
            &token,
            reqwest::Method::POST,
            "/stores",
            Some(json!({ "name": title })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "POST /stores: {store}");
    assert_eq!(
        store["store_id"], pool_id,
        "not the pool's store: {store:#}"
    );
    // Never Ready with the pool's identity: Provisioning until the member's is in place.
    assert_eq!(store["status"], "Provisioning", "{store:#}");
    let site = Site {
        id: pool_id.clone(),
        title: title.clone(),
    };
    let path = format!("/stores/{pool_id}");
    let store = wait_for(
        &format!("{pool_id} Ready as claimed"),
        READY_TIMEOUT,
        || async {
            let (status, store) = api.call_as(&token, reqwest::Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "GET {path}: {store}");
            assert_ne!(store["status"], "Failed", "claimed store failed: {store:#}");
            (store["status"] == "Ready").then_some(store)
        },
    )
    .await;
    let claim = posted.elapsed();
    println!("{pool_id}: claim, POST to Ready on real pods in {claim:.1?}");

    // At Ready, WordPress already is the member's (Ready is never reported with the pool's title).
    assert_eq!(store["name"], title.as_str(), "{store:#}");
    let url = store["url"].as_str().expect("url").to_owned();
    assert_eq!(
        url,
        format!("http://{}", site.host()),
        "a claim keeps the URL"
    );
    let body = site.home(&client, &http).await;
    assert!(
        body.as_deref().is_some_and(|b| site.shows_title(b)),
        "Ready, but WordPress does not answer 200 with the title {title:?}: {body:?}"
    );
    let index = rest_index(&site, &client, &http).await;
    assert_eq!(index["name"], title.as_str(), "REST index: {index:#}");
    assert_eq!(index["url"], url.as_str(), "siteurl: {index:#}");
    assert_eq!(index["home"], url.as_str(), "home: {index:#}");
    assert_eq!(routed_hosts(&cluster, &pool_id), [site.host()]);

    // The pool's password is refused by WordPress itself; the member's (from the API) logs in.
    let (status, credentials) = api
        .call_as(
            &token,
            reqwest::Method::GET,
            &format!("/stores/{pool_id}/credentials"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "credentials: {credentials}");
    assert_eq!(credentials["username"], admin.as_str());
    let password = credentials["password"].as_str().unwrap().to_owned();
    assert_ne!(
        password, pool_password,
        "the claim kept the pool's password"
    );
    assert!(
        !wp_login(&site, &client, &http, &admin, &pool_password).await,
        "the pool's password still logs in after the claim"
    );
    assert!(
        wp_login(&site, &client, &http, &admin, &password).await,
        "the member's password does not log in"
    );

    // The member deletes it; with --max-stores 2 no other store was made meanwhile.
    let (status, list) = api.call(reqwest::Method::GET, "/stores", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    let (status, body) = api
        .call_as(&token, reqwest::Method::DELETE, &path, None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "DELETE {path}: {body}");
    wait_for(&format!("{pool_id} gone"), TIMEOUT, || async {
        let (status, _) = api.call(reqwest::Method::GET, &path, None).await;
        let ns = Api::<Namespace>::all(client.clone())
            .get_opt(&pool_id)
            .await
            .unwrap();
        (status == StatusCode::NOT_FOUND && ns.is_none()).then_some(())
    })
    .await;
    println!("{pool_id}: deleted");
}

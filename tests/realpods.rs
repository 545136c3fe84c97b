//! Stores on real pods (issue 9): the control plane provisions stores on the real-pod test cluster
//! (`scripts/testcluster up --real-pods`: a real kubelet, containerd, real MariaDB and Apache/PHP
//! WordPress processes built from Debian packages, see docs/real-pods.md), and the stores work:
//! Ready from real readiness probes, WordPress answering with the site title on its ClusterIP,
//! the API's storefront check (`GET /stores/{id}/health`) reporting WordPress up and WooCommerce
//! absent, data surviving pod deletion, stores isolated from each other, nothing left after delete.
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
    async fn start(cluster: &Cluster) -> ControlPlane {
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
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("RUST_LOG", "info,storefleet=debug,kube=warn")
            .env_remove("STOREFLEET_VALUES")
            .env_remove("STOREFLEET_ADMIN_TOKEN")
            .env_remove("STOREFLEET_INSTANCE")
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
        ControlPlane {
            child,
            base: format!("http://{addr}"),
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            log,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
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
    let cluster = realpods_cluster().await;
    let client = cluster.client.clone();
    let api = ControlPlane::start(&cluster).await;
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

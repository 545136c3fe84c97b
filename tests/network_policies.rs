//! NetworkPolicies checked, not assumed (issue 13, part 4). The bridge CNI of the test clusters enforces
//! no NetworkPolicy, so no running test can show that one store cannot reach another's database. Here the
//! rendered manifests of two stores and of the platform are given to a real analyzer,
//! network-config-analyzer (`nca`, pinned in tests/netpol/requirements.txt and installed by scripts/nca,
//! which `scripts/test` runs and exports as `STOREFLEET_NCA`), and its answer, every pair of endpoints
//! with the connections allowed between them, is held against what the stores must and must not do.
//! A deliberately widened policy must make the check fail.
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use testkit::{Cluster, run_ok};

const STORE_A: &str = "store-aaaaaa";
const STORE_B: &str = "store-bbbbbb";
const PLATFORM: &str = "storefleet";
/// Where the store chart's values-local.yaml expects the gateway's proxies: k3s's Traefik, in
/// kube-system, beside pods (CoreDNS here) that must not reach a store.
const INGRESS: &str = "kube-system";
/// WordPress's container port (charts/store: Apache listens there as a non-root user).
const WORDPRESS_PORT: &str = "8080";
/// The SMTP relay the stores are rendered with: on a private network, which the internet-egress rule
/// excludes, so only the mail rule can open it.
const RELAY_CIDR: &str = "10.99.0.0/24";
const RELAY_PORT: &str = "587";
/// The platform's S3 backup target (`--backup-s3-cidr`, its endpoint's port), on a private network
/// too: only the backup target rule can open it, and only to the agent Jobs.
const BACKUP_CIDR: &str = "10.0.5.0/24";
const BACKUP_RANGE: &str = "10.0.5.0-10.0.5.255";
const BACKUP_PORT: &str = "3900";
/// The agent Jobs the control plane runs in a store namespace (backups/job.rs): a backup, a restore.
const BACKUP_JOB: &str = "backup-20260101-000000-abcdef";
const RESTORE_JOB: &str = "restore-20260101-000100-fedcba";

/// One line of `nca --connectivity -o txt_no_fw_rules`: `src => dst : connections`, where an
/// endpoint is `namespace/name[Kind]` or an address range.
#[derive(Debug, Clone, PartialEq)]
struct Allowed {
    src: String,
    dst: String,
    connections: String,
}

impl Allowed {
    fn parse(line: &str) -> Option<Self> {
        let (pair, connections) = line.split_once(" : ")?;
        let (src, dst) = pair.split_once(" => ")?;
        Some(Self {
            src: src.trim().to_owned(),
            dst: dst.trim().to_owned(),
            connections: connections.trim().to_owned(),
        })
    }

    /// `Some(namespace)` for a workload endpoint, `None` for an address range.
    fn namespace(endpoint: &str) -> Option<&str> {
        endpoint.split_once('/').map(|(ns, _)| ns)
    }

    fn is_workload(endpoint: &str, namespace: &str, suffix: &str) -> bool {
        endpoint.starts_with(&format!("{namespace}/")) && endpoint.contains(suffix)
    }

    /// An address range endpoint (`10.0.0.0-10.0.4.255`) with an address of the backup target's.
    fn overlaps_backup_target(endpoint: &str) -> bool {
        let range = |text: &str| -> Option<(Ipv4Addr, Ipv4Addr)> {
            let (from, to) = text.split_once('-')?;
            Some((from.trim().parse().ok()?, to.trim().parse().ok()?))
        };
        let (target_from, target_to) = range(BACKUP_RANGE).expect("an IPv4 range");
        range(endpoint).is_some_and(|(from, to)| from <= target_to && to >= target_from)
    }

    /// A backup or restore Job of the control plane's agent (named by its backup or restore id).
    fn is_agent(endpoint: &str, namespace: &str) -> bool {
        [BACKUP_JOB, RESTORE_JOB]
            .iter()
            .any(|job| endpoint == format!("{namespace}/{job}[Job]"))
    }

    /// Every destination port a group (`{protocols:…,dst_ports:53,3900}`) allows is one of `ports`
    /// (a range such as `1-52`, or "All connections", is not).
    fn ports_within(&self, ports: &[&str]) -> bool {
        self.connections != "All connections"
            && self.connections.contains("dst_ports")
            && self
                .connections
                .split('}')
                .filter_map(|g| g.split("dst_ports:").nth(1))
                .flat_map(|list| list.split(','))
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .all(|p| ports.contains(&p))
    }

    /// Some group allows destination port `port`.
    fn allows_port(&self, port: &str) -> bool {
        self.connections == "All connections"
            || self
                .connections
                .split('}')
                .filter_map(|g| g.split("dst_ports:").nth(1))
                .flat_map(|list| list.split(','))
                .any(|p| p.trim() == port)
    }

    /// Every group (`{protocols:…,dst_ports:…}`) allows exactly these destination ports.
    fn only_ports(&self, ports: &str) -> bool {
        self.connections != "All connections"
            && self
                .connections
                .split('}')
                .filter(|g| g.contains("dst_ports"))
                .all(|g| g.split("dst_ports:").nth(1).map(str::trim) == Some(ports))
            && self.connections.contains("dst_ports")
    }
}

/// What the stores' and the platform's policies must say; answers every breach, plainly.
fn violations(allowed: &[Allowed]) -> Vec<String> {
    let mut found = Vec::new();
    for a in allowed {
        let (src_ns, dst_ns) = (Allowed::namespace(&a.src), Allowed::namespace(&a.dst));
        // 1. Stores are islands.
        for (from, to) in [(STORE_A, STORE_B), (STORE_B, STORE_A)] {
            if src_ns == Some(from) && dst_ns == Some(to) {
                found.push(format!("store {from} reaches store {to}: {a:?}"));
            }
        }
        // 2. MariaDB reaches nothing outside its namespace but DNS, and is reached from nowhere else.
        //    (The relay rule is WordPress's, setup's and wp-cron's: never MariaDB's.)
        for store in [STORE_A, STORE_B] {
            if Allowed::is_workload(&a.src, store, "-mariadb[")
                && dst_ns != Some(store)
                && !a.only_ports("53")
            {
                found.push(format!(
                    "MariaDB of {store} reaches outside its namespace: {a:?}"
                ));
            }
            if Allowed::is_workload(&a.dst, store, "-mariadb[") && src_ns != Some(store) {
                found.push(format!(
                    "MariaDB of {store} is reached from outside its namespace: {a:?}"
                ));
            }
        }
        // 3. Of kube-system only Traefik reaches a store: the policy names its pods, not the namespace.
        if src_ns == Some(INGRESS)
            && !a.src.contains("/traefik[")
            && matches!(dst_ns, Some(d) if d == STORE_A || d == STORE_B)
        {
            found.push(format!(
                "a pod of {INGRESS} other than Traefik reaches a store: {a:?}"
            ));
        }
        // The gateway's proxies and the control plane reach WordPress's port, and nothing else of a store.
        for (who, ns) in [
            ("the gateway's proxies", INGRESS),
            ("the control plane", PLATFORM),
        ] {
            if src_ns == Some(ns) && matches!(dst_ns, Some(d) if d == STORE_A || d == STORE_B) {
                let wordpress = a.dst.contains("-wordpress[");
                if !wordpress || !a.only_ports(WORDPRESS_PORT) {
                    found.push(format!(
                        "{who} reaches more of a store than WordPress's port: {a:?}"
                    ));
                }
            }
        }
    }
    // 5. The backup target is the agent Jobs' alone: they reach it (on its port) and DNS outside
    //    their namespace, nothing else; no other pod of a store reaches it.
    for a in allowed {
        for store in [STORE_A, STORE_B] {
            let outside = Allowed::namespace(&a.dst) != Some(store);
            if Allowed::is_agent(&a.src, store)
                && outside
                && !a.only_ports("53")
                // The DNS rule names no address: the target's range gets port 53 too.
                && !(a.dst == BACKUP_RANGE && a.ports_within(&["53", BACKUP_PORT]))
            {
                found.push(format!(
                    "a backup Job of {store} reaches more than DNS and the backup target: {a:?}"
                ));
            }
            if Allowed::namespace(&a.src) == Some(store)
                && !Allowed::is_agent(&a.src, store)
                && Allowed::overlaps_backup_target(&a.dst)
                && a.allows_port(BACKUP_PORT)
            {
                found.push(format!(
                    "{} of {store} reaches the backup target: {a:?}",
                    a.src
                ));
            }
        }
    }
    for store in [STORE_A, STORE_B] {
        for job in [BACKUP_JOB, RESTORE_JOB] {
            let src = format!("{store}/{job}[Job]");
            let reaches = |dst_pred: &dyn Fn(&Allowed) -> bool| {
                allowed.iter().any(|a| a.src == src && dst_pred(a))
            };
            if !reaches(&|a| a.dst == BACKUP_RANGE && a.allows_port(BACKUP_PORT)) {
                found.push(format!("{src} cannot reach the backup target"));
            }
            if !reaches(&|a| Allowed::is_workload(&a.dst, store, "-mariadb[")) {
                found.push(format!("{src} cannot reach its store's MariaDB"));
            }
        }
    }
    // 4. What must work: WordPress reaches its own MariaDB, DNS and the mail relay; the ingress
    //    controller reaches WordPress.
    for store in [STORE_A, STORE_B] {
        let reaches = |src: &str, dst_pred: &dyn Fn(&Allowed) -> bool| {
            allowed
                .iter()
                .any(|a| Allowed::is_workload(&a.src, src, "-wordpress[") && dst_pred(a))
        };
        if !reaches(store, &|a| Allowed::is_workload(&a.dst, store, "-mariadb[")) {
            found.push(format!("WordPress of {store} cannot reach its MariaDB"));
        }
        if !reaches(store, &|a| {
            Allowed::namespace(&a.dst) != Some(store) && a.connections.contains("53")
        }) {
            found.push(format!("WordPress of {store} cannot reach DNS"));
        }
        // The analyzer splits address space at the policies' edges: the relay's /24 is one range.
        let relay_range = "10.99.0.0-10.99.0.255";
        if !reaches(store, &|a| {
            a.dst == relay_range && a.connections.contains(RELAY_PORT)
        }) {
            found.push(format!("WordPress of {store} cannot reach the mail relay"));
        }
        if !allowed.iter().any(|a| {
            Allowed::namespace(&a.src) == Some(PLATFORM)
                && Allowed::is_workload(&a.dst, store, "-wordpress[")
                && a.only_ports(WORDPRESS_PORT)
        }) {
            found.push(format!(
                "the control plane cannot reach WordPress of {store} (the storefront check)"
            ));
        }
        if !allowed.iter().any(|a| {
            a.src == format!("{INGRESS}/traefik[Deployment]")
                && Allowed::is_workload(&a.dst, store, "-wordpress[")
                && a.only_ports(WORDPRESS_PORT)
        }) {
            found.push(format!(
                "the gateway's proxies (Traefik) cannot reach WordPress of {store}"
            ));
        }
    }
    found
}

/// The manifests of two stores (as the controller installs them: `helm upgrade --install -n <id>`),
/// the platform chart, and the namespaces and ingress controller they refer to, one file each.
fn render(cluster: &Cluster, scratch: &Path) -> PathBuf {
    let dir = &scratch.join("manifests");
    std::fs::create_dir_all(dir).unwrap();
    let root = testkit::workspace_root();
    let platform = run_ok(
        cluster
            .helm()
            .args(["template", "sf"])
            .arg(root.join("charts/storefleet"))
            .args(["--namespace", PLATFORM, "-f"])
            .arg(root.join("charts/storefleet/values-local.yaml"))
            .args(["--set", "rbac.allowWithoutAdmissionPolicy=true"]),
    );
    write_namespaced(dir, &namespace(PLATFORM, json!({})), &platform);
    // The values the platform hands every store (its ConfigMap, `--values` of the controller): among
    // them the selector that admits the control plane to WordPress.
    let store_values = platform
        .split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "sf-storefleet-store-values")
        .and_then(|o| o["data"]["store-values.yaml"].as_str().map(str::to_owned))
        .expect("the platform's store values");
    // Beside the analyzed folder, not in it: the analyzer reads every file there.
    let store_values_file = scratch.join("store-values.yaml");
    std::fs::write(&store_values_file, store_values).unwrap();
    for id in [STORE_A, STORE_B] {
        let manifest = run_ok(
            cluster
                .helm()
                .args(["template", id])
                .arg(root.join("charts/store"))
                .args(["--namespace", id, "-f"])
                .arg(root.join("charts/store/values-local.yaml"))
                .arg("-f")
                .arg(&store_values_file)
                .args([
                    "--set",
                    &format!("storeId={id}"),
                    "--set",
                    &format!("host={id}.localhost"),
                ])
                .args([
                    "--set",
                    "siteTitle=Policy check",
                    "--set",
                    &format!("siteUrl=http://{id}.localhost"),
                ])
                // A mail relay, as the controller passes it with `--smtp-*` (controller/mail.rs).
                .args([
                    "--set",
                    "mail.relay.host=smtp.internal.example",
                    "--set",
                    &format!("mail.relay.cidr={RELAY_CIDR}"),
                    "--set",
                    &format!("mail.relay.port={RELAY_PORT}"),
                    "--set",
                    "mail.from.address=shop@example.com",
                ])
                // An S3 backup target, as the controller passes it with `--backup-s3-cidr`
                // (controller/release.rs).
                .args([
                    "--set",
                    &format!("networkPolicy.backupTarget.cidrs={{{BACKUP_CIDR}}}"),
                    "--set",
                    &format!("networkPolicy.backupTarget.ports={{{BACKUP_PORT}}}"),
                ]),
        );
        // The labels the controller gives a store namespace (controller/namespace.rs).
        let labels = json!({
            "storefleet.dev/store-id": id,
            "storefleet.dev/instance": "default",
            "app.kubernetes.io/managed-by": "storefleet",
            "pod-security.kubernetes.io/enforce": "restricted",
        });
        // The agent Jobs the backup and restore controllers create in the namespace, with their
        // pod labels (backups/job.rs).
        let agents: Vec<String> = [BACKUP_JOB, RESTORE_JOB]
            .iter()
            .map(|job| serde_yaml::to_string(&agent_job(id, job)).unwrap())
            .collect();
        let manifest = format!("{manifest}\n---\n{}", agents.join("\n---\n"));
        write_namespaced(dir, &namespace(id, labels), &manifest);
    }
    let mut extra: Vec<Value> = vec![namespace(INGRESS, json!({}))];
    // The gateway's proxies: what the store chart's policy names (values-local.yaml, k3s's Traefik),
    // and a neighbour in the same namespace that it does not name.
    for (name, labels) in [
        ("traefik", json!({"app.kubernetes.io/name": "traefik"})),
        ("coredns", json!({"k8s-app": "kube-dns"})),
    ] {
        extra.push(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": INGRESS},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": name}]}}},
        }));
    }
    write_docs(&dir.join("cluster.yaml"), &extra);
    dir.clone()
}

/// A backup Job (`job` a backup id) or a restore Job (a restore id) with the pod labels the control
/// plane gives them: managed-by, store id, `storefleet.dev/backup`, and on a restore
/// `storefleet.dev/restore`.
fn agent_job(store: &str, job: &str) -> Value {
    let mut labels = json!({
        "app.kubernetes.io/managed-by": "storefleet",
        "storefleet.dev/store-id": store,
        "storefleet.dev/backup": BACKUP_JOB,
    });
    if job.starts_with("restore-") {
        labels["storefleet.dev/restore"] = json!(job);
    }
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job, "labels": labels},
        "spec": {"backoffLimit": 0,
                 "template": {"metadata": {"labels": labels},
                              "spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "agent", "image": "mariadb"}]}}},
    })
}

/// `helm template` leaves `metadata.namespace` to the install; the analyzer needs it on every object.
///
/// Each file starts with its Namespace: the analyzer (2.1.0) gives objects it reads before their
/// Namespace a namespace without labels, so that namespace selectors miss them, and it reads the
/// folder's files in directory order. One Namespace per file, first, as `kubectl apply -f` manifests
/// are written anyway.
fn write_namespaced(dir: &Path, namespace: &Value, manifest: &str) {
    let name = namespace["metadata"]["name"].as_str().unwrap().to_owned();
    let rendered = manifest
        .split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .map(|mut v| {
            v["metadata"]["namespace"] = json!(name);
            v
        });
    let docs: Vec<Value> = std::iter::once(namespace.clone()).chain(rendered).collect();
    assert!(docs.len() > 1, "nothing rendered for {name}");
    write_docs(&dir.join(format!("{name}.yaml")), &docs);
}

/// A Namespace labelled as Kubernetes (1.21+) labels every namespace, plus `labels`.
fn namespace(name: &str, labels: Value) -> Value {
    let mut labels = labels;
    labels["kubernetes.io/metadata.name"] = json!(name);
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn write_docs(path: &Path, docs: &[Value]) {
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect();
    std::fs::write(path, text.join("---\n")).unwrap();
}

/// The analyzer's connectivity map of everything in `dir`.
fn connectivity(dir: &Path) -> Vec<Allowed> {
    let nca = std::env::var_os("STOREFLEET_NCA").map(PathBuf::from).expect(
        "STOREFLEET_NCA is not set: run `export STOREFLEET_NCA=$(scripts/nca)` (scripts/test does)",
    );
    let out = Command::new(&nca)
        .arg("--connectivity")
        .arg(dir)
        .arg("--resource_list")
        .arg(dir)
        .args(["--output_format", "txt_no_fw_rules"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", nca.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nca failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let allowed: Vec<Allowed> = stdout.lines().filter_map(Allowed::parse).collect();
    assert!(
        allowed.len() > 10,
        "the analyzer found almost nothing; its output:\n{stdout}"
    );
    allowed
}

#[tokio::test]
async fn rendered_policies_isolate_stores_and_allow_only_what_a_store_needs() {
    let cluster = testkit::cluster().await;
    let scratch = tempfile::tempdir().unwrap();
    let dir = render(&cluster, scratch.path());
    let allowed = connectivity(&dir);
    let found = violations(&allowed);
    assert!(
        found.is_empty(),
        "the rendered NetworkPolicies allow what they must not, or block what a store needs:\n{}\n\nWordPress may reach:\n{:#?}",
        found.join("\n"),
        allowed
            .iter()
            .filter(|a| a.src.contains("-wordpress["))
            .collect::<Vec<_>>()
    );
}

/// The check can fail: a policy that opens store B's MariaDB to every namespace, and one that lets store
/// A's MariaDB talk to anything, are each found.
#[tokio::test]
async fn a_widened_policy_is_caught() {
    let cluster = testkit::cluster().await;
    let scratch = tempfile::tempdir().unwrap();
    let dir = render(&cluster, scratch.path());
    let mariadb = json!({"matchLabels": {"app.kubernetes.io/component": "database"}});
    let widened = [
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "widened-ingress", "namespace": STORE_B},
               "spec": {"podSelector": mariadb, "policyTypes": ["Ingress"],
                        "ingress": [{"from": [{"namespaceSelector": {}}]}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "widened-egress", "namespace": STORE_A},
               "spec": {"podSelector": mariadb, "policyTypes": ["Egress"], "egress": [{}]}}),
        // The backup target opened to every pod of store B, and all egress to store A's agents.
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "widened-backup-target", "namespace": STORE_B},
               "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                        "egress": [{"to": [{"ipBlock": {"cidr": BACKUP_CIDR}}],
                                    "ports": [{"port": 3900, "protocol": "TCP"}]}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "widened-agents", "namespace": STORE_A},
               "spec": {"podSelector": {"matchExpressions": [
                            {"key": "storefleet.dev/backup", "operator": "Exists"}]},
                        "policyTypes": ["Egress"], "egress": [{}]}}),
    ];
    write_docs(&dir.join("widened.yaml"), &widened);
    let found = violations(&connectivity(&dir));
    for expected in [
        format!("store {STORE_A} reaches store {STORE_B}"),
        format!("MariaDB of {STORE_B} is reached from outside its namespace"),
        format!("MariaDB of {STORE_A} reaches outside its namespace"),
        format!("{STORE_B}/{STORE_B}-wordpress[Deployment] of {STORE_B} reaches the backup target"),
        format!("a backup Job of {STORE_A} reaches more than DNS and the backup target"),
    ] {
        assert!(
            found.iter().any(|f| f.starts_with(&expected)),
            "the widened policy went unnoticed: no `{expected}` in\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn lines_and_port_sets_parse() {
    let a = Allowed::parse(
        "ingress-nginx/controller[Deployment] => store-aaaaaa/store-aaaaaa-wordpress[Deployment] : {protocols:TCP,dst_ports:8080}",
    )
    .unwrap();
    assert_eq!(Allowed::namespace(&a.src), Some("ingress-nginx"));
    assert!(a.only_ports("8080"));
    assert!(!a.only_ports("53"));
    let dns =
        Allowed::parse("x/y[Pod] => 0.0.0.0-255.255.255.255 : {protocols:TCP, UDP,dst_ports:53}")
            .unwrap();
    assert!(dns.only_ports("53"));
    assert_eq!(Allowed::namespace(&dns.dst), None);
    let all = Allowed::parse("x/y[Pod] => x/z[Pod] : All connections").unwrap();
    assert!(!all.only_ports("53"));
    assert!(Allowed::parse("global: cluster has 10 unique endpoints").is_none());
    let target = Allowed::parse(
        "s/backup-x[Job] => 10.0.5.0-10.0.5.255 : {protocols:UDP,dst_ports:53},{protocols:TCP,dst_ports:53,3900}",
    )
    .unwrap();
    assert!(target.ports_within(&["53", "3900"]));
    assert!(!target.ports_within(&["53"]));
    assert!(target.allows_port("3900"));
    assert!(!target.allows_port("390"));
    let wide =
        Allowed::parse("s/x[Job] => 10.0.5.0-10.0.5.255 : {protocols:TCP,dst_ports:1-65535}")
            .unwrap();
    assert!(!wide.ports_within(&["53", "3900"]));
    assert!(!all.ports_within(&["53"]));
    assert!(all.allows_port("3900"));
    assert!(Allowed::overlaps_backup_target("10.0.0.0-10.0.5.0"));
    assert!(Allowed::overlaps_backup_target("0.0.0.0-255.255.255.255"));
    assert!(!Allowed::overlaps_backup_target("10.0.6.0-10.255.255.255"));
    assert!(!Allowed::overlaps_backup_target("store-aaaaaa/x[Pod]"));
}

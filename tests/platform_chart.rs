//! Tests of the deployment artefacts: the platform chart (charts/storefleet), its least-privilege RBAC,
//! the image recipe (Dockerfile) and the laptop quickstart (scripts/quickstart).
//!
//! Everything about RBAC is decided by the test cluster's real API server: the tests read the tokens of
//! the chart's two ServiceAccounts (the API's, which Kubernetes 1.20 issues in a Secret, and the
//! controller's, from the chart's own token Secret) and act as each identity (`kubectl auth can-i`,
//! which asks the API server with a SelfSubjectAccessReview, and real requests that must succeed or be
//! refused with 403). The test cluster (1.20) has no ValidatingAdmissionPolicy, so every install here
//! opts in with `rbac.allowWithoutAdmissionPolicy` (and one test checks that the chart refuses without). No Docker engine exists here, so the image is checked by running the binary as
//! the image would: the image's paths, environment, user and read-only root, in a private mount
//! namespace.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use testkit::{Cluster, run_ok, wait_for};

const READY_TIMEOUT: Duration = Duration::from_secs(240);
const GONE_TIMEOUT: Duration = Duration::from_secs(240);
/// RBAC changes reach the API server's authorizer through an informer: not instantly.
const RBAC_TIMEOUT: Duration = Duration::from_secs(60);
const VALUES_FILES: [&str; 2] = ["values-local.yaml", "values-prod.yaml"];
/// The test cluster is Kubernetes 1.20: no ValidatingAdmissionPolicy, so the chart installs only when
/// told to accept what that leaves open (docs/security.md, "Who may do what in the cluster").
const OPT_IN: [&str; 2] = ["--set", "rbac.allowWithoutAdmissionPolicy=true"];

// --- rendering and admission ---------------------------------------------------------------------

#[tokio::test]
async fn helm_lint_passes_with_both_values_files() {
    let cluster = testkit::cluster().await;
    for file in VALUES_FILES {
        let out = run_ok(
            cluster
                .helm()
                .args(["lint", "--strict"])
                .arg(chart_dir())
                .arg("-f")
                .arg(chart_dir().join(file)),
        );
        assert!(
            out.contains("0 chart(s) failed"),
            "helm lint -f {file}:\n{out}"
        );
    }
}

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_api_server() {
    let cluster = testkit::cluster().await;
    let ns = cluster.namespace("sfchart-dry").await;
    // The CRD first: it is what the chart ships in crds/ (helm installs it before the templates).
    let out = run_ok(
        cluster
            .kubectl()
            .args(["apply", "--dry-run=server", "-f"])
            .arg(chart_dir().join("crds")),
    );
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/stores.storefleet.dev"),
        "{out}"
    );
    // Both routing modes; the Gateway and HTTPRoute need the Gateway API CRDs (scripts/testcluster).
    let dir = tempfile::tempdir().unwrap();
    let ingress_mode = dir.path().join("ingress-mode.yaml");
    std::fs::write(&ingress_mode, "routing:\n  mode: ingress\n").unwrap();
    // Rendered for this API server's version, as `helm install` would: values-prod.yaml's two replicas
    // bring a PodDisruptionBudget, policy/v1 from 1.21 on and policy/v1beta1 before (the test cluster).
    let kube_version = kube_version(&cluster).await;
    for (file, extra) in VALUES_FILES
        .into_iter()
        .flat_map(|f| [(f, None), (f, Some(&ingress_mode))])
    {
        let mut files = vec![chart_dir().join(file)];
        files.extend(extra.cloned());
        let manifest = run_ok(
            template_cmd(&cluster, &ns.name, &ns.name, &files)
                .args(OPT_IN)
                .args(["--kube-version", &kube_version]),
        );
        let file = format!(
            "{file}{}",
            if extra.is_some() {
                " (ingress mode)"
            } else {
                ""
            }
        );
        let out = kubectl_stdin(
            &cluster,
            &["apply", "--dry-run=server", "-f", "-"],
            &manifest,
        );
        let objects = parse_objects(&manifest);
        assert!(
            objects.len() >= 11,
            "{file}: only {} objects rendered",
            objects.len()
        );
        for object in &objects {
            let kind = object["kind"].as_str().unwrap().to_lowercase();
            let name = object["metadata"]["name"].as_str().unwrap();
            // kubectl prints `<kind>[.<group>]/<name> created (server dry run)` per accepted object.
            let accepted = out.lines().any(|l| {
                l.strip_prefix(kind.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '/']))
                    && l.contains(&format!("/{name} "))
                    && l.ends_with("(server dry run)")
            });
            assert!(accepted, "{file}: {kind} {name} not accepted:\n{out}");
        }
    }
}

#[tokio::test]
async fn rendered_chart_has_the_shape_the_issue_asks_for() {
    let cluster = testkit::cluster().await;
    for file in VALUES_FILES {
        let objects = parse_objects(&template(
            &cluster,
            "sf",
            "platform",
            &[chart_dir().join(file)],
        ));
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        // values-local.yaml: one replica on SQLite; values-prod.yaml: two on PostgreSQL (issue 17).
        let postgres = file == "values-prod.yaml";
        for kind in [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "Gateway",
            "HTTPRoute",
            "NetworkPolicy",
        ] {
            assert!(
                kinds.contains(&kind),
                "{file}: no {kind} rendered ({kinds:?})"
            );
        }
        // The SQLite file's volume, and only for it; the budget, only for more than one replica.
        assert_eq!(
            kinds.contains(&"PersistentVolumeClaim"),
            !postgres,
            "{file}: {kinds:?}"
        );
        assert_eq!(
            kinds.contains(&"PodDisruptionBudget"),
            postgres,
            "{file}: {kinds:?}"
        );
        let deployment = find(&objects, "Deployment", "sf-storefleet");
        if postgres {
            assert_replicated(&objects, 2, "storefleet-database", "url", file);
        } else {
            assert_eq!(
                deployment["spec"]["replicas"], 1,
                "{file}: one writer only (SQLite)"
            );
            assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate", "{file}");
        }
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{file}");
        assert_two_identities(&objects, file);
        // Leader election: on, and exactly get/create/update of the controller's own Lease here.
        assert_eq!(
            find(&objects, "Role", "sf-storefleet-leases")["rules"],
            json!([
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "resourceNames": ["storefleet-default"], "verbs": ["get", "update"]},
            ]),
            "{file}"
        );
        let leases = find(&objects, "RoleBinding", "sf-storefleet-leases");
        assert_eq!(leases["metadata"]["namespace"], "platform", "{file}");
        assert_eq!(
            leases["subjects"][0]["name"], "sf-storefleet-controller",
            "{file}"
        );
        assert_eq!(leases["subjects"].as_array().unwrap().len(), 1, "{file}");
        let env = env_map(container(pod, "controller"));
        assert_eq!(env["STOREFLEET_LEADER_ELECTION"], "true", "{file}");
        // The warm pool (docs/pool.md): one ready store on a laptop, off in production; the API
        // (which claims) and the controller (which fills) read the same setting.
        for name in ["api", "controller"] {
            let env = env_map(container(pod, name));
            let expected = (file == "values-local.yaml").then(|| json!("woocommerce/small=1"));
            assert_eq!(
                env.get("STOREFLEET_POOL"),
                expected.as_ref(),
                "{file} {name}"
            );
        }
        assert_eq!(
            env["STOREFLEET_LEADER_ELECTION_NAMESPACE"], "platform",
            "{file}"
        );
        for (name, component) in [("api", "api"), ("controller", "controller")] {
            let container = container(pod, name);
            assert_eq!(
                container["args"],
                json!(["serve", "--component", component]),
                "{file}: {name}"
            );
            assert_eq!(
                container["securityContext"]["readOnlyRootFilesystem"], true,
                "{file}: {name}"
            );
            assert_eq!(
                container["livenessProbe"]["httpGet"]["path"], "/healthz",
                "{file}: {name}"
            );
            assert_eq!(
                container["readinessProbe"]["httpGet"]["path"], "/readyz",
                "{file}: {name}"
            );
            assert!(
                container["resources"]["limits"]["memory"].is_string(),
                "{file}: {name}: no memory limit"
            );
            let mounts: Vec<&str> = container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["mountPath"].as_str().unwrap())
                .collect();
            assert!(
                mounts.contains(&"/tmp"),
                "{file}: {name}: mounts {mounts:?}"
            );
            if !postgres {
                // One SQLite file, written by both processes.
                let env = env_map(container);
                assert_eq!(
                    env.get("STOREFLEET_DATABASE_URL").and_then(Value::as_str),
                    Some("sqlite:///data/storefleet.db"),
                    "{file}: {name}"
                );
                assert!(
                    mounts.contains(&"/data"),
                    "{file}: {name}: mounts {mounts:?}"
                );
            }
        }
        // RBAC is spelled out: no wildcards anywhere, and nothing namespaced in what is bound cluster-wide.
        for role in objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
        {
            let text = role["rules"].to_string();
            assert!(
                !text.contains("\"*\""),
                "{file}: wildcard in {}: {text}",
                role["metadata"]["name"]
            );
        }
        // The default: read-only cluster-wide workload watches, and the control plane told so.
        assert_cluster_role_is_least_privilege(&objects, file, true);
    }
    // Switched off: nothing namespaced cluster-wide at all, and the control plane polls instead.
    let dir = tempfile::tempdir().unwrap();
    let off = dir.path().join("off.yaml");
    std::fs::write(&off, "rbac:\n  watchWorkloadsClusterWide: false\n").unwrap();
    let objects = parse_objects(&template(
        &cluster,
        "sf",
        "platform",
        &[chart_dir().join("values-local.yaml"), off],
    ));
    assert_cluster_role_is_least_privilege(&objects, "rbac.watchWorkloadsClusterWide=false", false);
    let prod = parse_objects(&template(
        &cluster,
        "sf",
        "platform",
        &[chart_dir().join("values-prod.yaml")],
    ));
    let gateway = find(&prod, "Gateway", "sf-storefleet");
    assert!(
        gateway["metadata"]["annotations"]["cert-manager.io/cluster-issuer"].is_string(),
        "prod: no cert-manager issuer on the Gateway"
    );
    let https: Vec<&Value> = gateway["spec"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["protocol"] == "HTTPS")
        .collect();
    assert_eq!(
        https.len(),
        2,
        "prod: the dashboard's and the stores' HTTPS listeners"
    );
    assert!(
        https
            .iter()
            .all(|l| l["tls"]["certificateRefs"][0]["name"].is_string()),
        "prod: no TLS certificate"
    );
    // Only the dashboard and the API are public: the probes and /metrics are not routed (issue 19),
    // neither by the HTTPRoute nor, in ingress mode, by the Ingress.
    let route = find(&prod, "HTTPRoute", "sf-storefleet");
    let route_paths: Vec<(String, String)> = route["spec"]["rules"][0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let kind = m["path"]["type"].as_str().unwrap();
            let kind = if kind == "PathPrefix" { "Prefix" } else { kind };
            (
                m["path"]["value"].as_str().unwrap().to_owned(),
                kind.to_owned(),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let ingress_mode = dir.path().join("ingress-mode.yaml");
    std::fs::write(&ingress_mode, "routing:\n  mode: ingress\n").unwrap();
    let prod_ingress = parse_objects(&template(
        &cluster,
        "sf",
        "platform",
        &[chart_dir().join("values-prod.yaml"), ingress_mode],
    ));
    let ingress = find(&prod_ingress, "Ingress", "sf-storefleet");
    assert!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"].is_string(),
        "prod, ingress mode: no cert-manager issuer"
    );
    assert!(
        ingress["spec"]["tls"][0]["secretName"].is_string(),
        "prod, ingress mode: no TLS"
    );
    let paths: Vec<(String, String)> = ingress["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_owned(),
                p["pathType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        route_paths, paths,
        "the HTTPRoute and the Ingress route the same paths"
    );
    assert!(
        paths.contains(&("/".into(), "Exact".into()))
            && paths.contains(&("/stores".into(), "Prefix".into())),
        "{paths:?}"
    );
    for private in ["/metrics", "/readyz", "/healthz"] {
        assert!(
            paths.iter().all(|(path, kind)| path != private
                && !(kind == "Prefix" && private.starts_with(path.as_str()))),
            "{private} is routed publicly: {paths:?}"
        );
    }
    // The one Secret the chart makes in prod holds no value of ours: the token controller fills the
    // controller ServiceAccount's token into it.
    assert!(
        prod.iter()
            .all(|o| o["kind"] != "Secret" || o["type"] == "kubernetes.io/service-account-token"),
        "prod: the admin token must come from an existing Secret"
    );
    let prod_env = env_map(container(
        &find(&prod, "Deployment", "sf-storefleet")["spec"]["template"]["spec"],
        "controller",
    ));
    assert_eq!(prod_env["STOREFLEET_ENVIRONMENT"], "prod");
    let local = parse_objects(&template(
        &cluster,
        "sf",
        "platform",
        &[chart_dir().join("values-local.yaml")],
    ));
    assert!(
        local.iter().any(|o| o["kind"] == "Secret"),
        "local: the chart generates the admin token"
    );
}

/// Issue 17: more than one replica only on PostgreSQL, whose URL both containers read from a Secret;
/// then a PodDisruptionBudget, spreading over nodes and rolling updates that never go below the count.
#[tokio::test]
async fn rendered_chart_runs_replicas_only_on_postgres() {
    let cluster = testkit::cluster().await;
    let render = |args: &[&str]| -> std::process::Output {
        let mut cmd = template_cmd(&cluster, "sf", "platform", &[]);
        cmd.args(OPT_IN).args(args);
        cmd.output().expect("run helm")
    };
    let objects_of = |out: &std::process::Output, what: &str| -> Vec<Value> {
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_objects(&String::from_utf8_lossy(&out.stdout))
    };
    let refused = |out: &std::process::Output, what: &str, says: &str| {
        assert!(!out.status.success(), "{what} rendered");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{what}: {stderr}");
    };

    // The default: one replica on SQLite, Recreate, no budget, no spreading.
    let objects = objects_of(&render(&[]), "default");
    let deployment = find(&objects, "Deployment", "sf-storefleet");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(pod["topologySpreadConstraints"].is_null(), "{pod}");
    assert!(objects.iter().all(|o| o["kind"] != "PodDisruptionBudget"));
    find(&objects, "PersistentVolumeClaim", "sf-storefleet-data");
    for name in ["api", "controller"] {
        assert_eq!(
            env_map(container(pod, name))["STOREFLEET_DATABASE_URL"],
            "sqlite:///data/storefleet.db",
            "{name}"
        );
    }
    // A grace period that covers shutdownDelay (5 s) and the 5 s for requests under way.
    assert!(
        pod["terminationGracePeriodSeconds"].as_i64().unwrap() >= 15,
        "{}",
        pod["terminationGracePeriodSeconds"]
    );

    // More than one on SQLite: refused, naming the value to set.
    refused(
        &render(&["--set", "replicaCount=2"]),
        "replicaCount=2 on SQLite",
        "replicaCount 2 needs database.type=postgres",
    );
    // PostgreSQL needs its Secret; an unknown database type is refused.
    refused(
        &render(&["--set", "database.type=postgres"]),
        "postgres without a Secret",
        "database.postgres.existingSecret is required with database.type=postgres",
    );
    refused(
        &render(&["--set", "database.type=mysql"]),
        "database.type=mysql",
        "database.type must be sqlite or postgres",
    );
    // A grace period shorter than the drain.
    refused(
        &render(&["--set", "shutdownDelay=1m"]),
        "shutdownDelay=1m with a 30 s grace period",
        "terminationGracePeriodSeconds 30 is too short for shutdownDelay 1m",
    );

    let postgres = [
        "--set",
        "database.type=postgres",
        "--set",
        "database.postgres.existingSecret=pg-url",
        "--set",
        "database.postgres.key=dsn",
    ];
    // PostgreSQL with one replica: its URL from the Secret, no volume, and still Recreate.
    let objects = objects_of(&render(&postgres), "postgres, one replica");
    let deployment = find(&objects, "Deployment", "sf-storefleet");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert!(
        objects
            .iter()
            .all(|o| o["kind"] != "PersistentVolumeClaim" && o["kind"] != "PodDisruptionBudget")
    );

    // PostgreSQL with three: budget, spreading, rolling updates, egress to the database.
    let three = [&postgres[..], &["--set", "replicaCount=3"][..]].concat();
    let objects = objects_of(&render(&three), "postgres, three replicas");
    assert_replicated(&objects, 3, "pg-url", "dsn", "postgres, three replicas");
    let policy = find(&objects, "NetworkPolicy", "sf-storefleet");
    assert!(
        policy["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|rule| rule["ports"][0]["port"] == 5432 && rule["to"].is_null()),
        "no egress to PostgreSQL: {}",
        policy["spec"]["egress"]
    );

    // The budget off, or as minAvailable; spreading of one's own (labelSelector filled in).
    let off = [
        &three[..],
        &["--set", "podDisruptionBudget.enabled=false"][..],
    ]
    .concat();
    let objects = objects_of(&render(&off), "budget off");
    assert!(objects.iter().all(|o| o["kind"] != "PodDisruptionBudget"));
    let min = [
        &three[..],
        &["--set", "podDisruptionBudget.minAvailable=2"][..],
    ]
    .concat();
    let objects = objects_of(&render(&min), "minAvailable");
    let pdb = &find(&objects, "PodDisruptionBudget", "sf-storefleet")["spec"];
    assert_eq!(pdb["minAvailable"], 2, "{pdb}");
    assert!(pdb["maxUnavailable"].is_null(), "{pdb}");
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones.yaml");
    std::fs::write(
        &zones,
        "topologySpreadConstraints:\n  - { maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule }\n",
    )
    .unwrap();
    let mut cmd = template_cmd(&cluster, "sf", "platform", &[zones]);
    cmd.args(OPT_IN).args(&three);
    let objects = parse_objects(&run_ok(&mut cmd));
    let deployment = find(&objects, "Deployment", "sf-storefleet");
    let spread = &deployment["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert_eq!(spread.as_array().unwrap().len(), 1, "{spread}");
    assert_eq!(spread[0]["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(spread[0]["whenUnsatisfiable"], "DoNotSchedule");
    assert_eq!(
        spread[0]["labelSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    // The budget's API version follows the cluster's: policy/v1beta1 before Kubernetes 1.21.
    for (version, api) in [("1.20.0", "policy/v1beta1"), ("1.33.0", "policy/v1")] {
        let args = [&three[..], &["--kube-version", version][..]].concat();
        let objects = objects_of(&render(&args), version);
        assert_eq!(
            find(&objects, "PodDisruptionBudget", "sf-storefleet")["apiVersion"],
            api,
            "Kubernetes {version}"
        );
    }
}

/// Filesystem backups with several replicas: every pod mounts the backup claim, on different nodes;
/// the chart reads the claim (`lookup`, so against the API server) and refuses one that is not
/// ReadWriteMany.
#[tokio::test]
async fn rendered_chart_refuses_replicas_on_a_read_write_once_backup_claim() {
    let cluster = testkit::cluster().await;
    let ns = cluster.namespace("sfchart-rwo").await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), &ns.name);
    for (name, mode) in [
        ("backups-rwo", "ReadWriteOnce"),
        ("backups-rwx", "ReadWriteMany"),
    ] {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": {
                "accessModes": [mode],
                "resources": { "requests": { "storage": "1Gi" } },
                "storageClassName": "none-such",
            },
        }))
        .unwrap();
        pvcs.create(&PostParams::default(), &claim).await.unwrap();
    }
    let render = |claim: &str| -> std::process::Output {
        let mut cmd = template_cmd(&cluster, "sf", &ns.name, &[]);
        cmd.args(OPT_IN)
            .args(["--dry-run=server"])
            .args(["--set", "database.type=postgres"])
            .args([
                "--set",
                "database.postgres.existingSecret=storefleet-database",
            ])
            .args(["--set", "replicaCount=2"])
            .args(["--set", "backups.target=filesystem"])
            .arg("--set")
            .arg(format!("backups.filesystem.existingClaim={claim}"));
        cmd.output().expect("run helm")
    };
    let out = render("backups-rwo");
    assert!(
        !out.status.success(),
        "a ReadWriteOnce backup claim with two replicas rendered"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("replicaCount 2 with backups.target=filesystem needs a ReadWriteMany claim")
            && stderr.contains("\"backups-rwo\", which is ReadWriteOnce"),
        "{stderr}"
    );
    let out = render("backups-rwx");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A render with `replicas` pods on PostgreSQL (URL in Secret `secret`, key `key`): rolling updates
/// that never go below the count, the budget over exactly the Deployment's pods, one-per-node
/// spreading that still schedules on one node, and no volume for a database.
fn assert_replicated(objects: &[Value], replicas: i64, secret: &str, key: &str, what: &str) {
    let deployment = find(objects, "Deployment", "sf-storefleet");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], replicas, "{what}");
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
        "{what}"
    );
    let selector = &spec["selector"]["matchLabels"];
    let pdb = find(objects, "PodDisruptionBudget", "sf-storefleet");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1, "{what}: {pdb}");
    assert!(pdb["spec"]["minAvailable"].is_null(), "{what}: {pdb}");
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector, "{what}");
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["topologySpreadConstraints"],
        json!([{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        }]),
        "{what}"
    );
    for name in ["api", "controller"] {
        let container = container(pod, name);
        let url = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "STOREFLEET_DATABASE_URL")
            .unwrap_or_else(|| panic!("{what}: {name}: no STOREFLEET_DATABASE_URL"));
        assert_eq!(
            url,
            &json!({"name": "STOREFLEET_DATABASE_URL",
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}),
            "{what}: {name}"
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/readyz",
            "{what}: {name}"
        );
        let mounts = container["volumeMounts"].to_string();
        assert!(!mounts.contains("\"/data\""), "{what}: {name}: {mounts}");
    }
    assert!(
        !pod["volumes"].to_string().contains("persistentVolumeClaim"),
        "{what}: {}",
        pod["volumes"]
    );
    assert!(
        objects.iter().all(|o| o["kind"] != "PersistentVolumeClaim"),
        "{what}: a PVC rendered with PostgreSQL"
    );
}

/// What the ClusterRole bound cluster-wide may touch in namespaces: with `watch_workloads`, read-only
/// list/watch of pods and workloads; otherwise nothing namespaced. Never Secrets or RBAC objects. The
/// Deployment passes the matching `--workload-watch`.
fn assert_cluster_role_is_least_privilege(objects: &[Value], what: &str, watch_workloads: bool) {
    let rules = &find(objects, "ClusterRole", "sf-storefleet-controller")["rules"];
    let text = rules.to_string();
    for namespaced in [
        "secrets",
        "configmaps",
        "services",
        "clusterrolebindings",
        "\"roles\"",
        "events",
    ] {
        assert!(
            !text.contains(namespaced),
            "{what}: {namespaced} in the cluster-wide role: {text}"
        );
    }
    let workloads = ["pods", "deployments", "statefulsets", "jobs"];
    let mut watched = Vec::new();
    for rule in rules.as_array().unwrap() {
        let resources: Vec<&str> = rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        if resources.iter().any(|r| workloads.contains(r)) {
            assert!(
                resources.iter().all(|r| workloads.contains(r)),
                "{what}: {resources:?} granted together with a workload kind: {rule}"
            );
            let verbs: Vec<&str> = rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(
                verbs.iter().all(|v| ["get", "list", "watch"].contains(v)),
                "{what}: more than reading workloads cluster-wide: {rule}"
            );
            if verbs.contains(&"list") && verbs.contains(&"watch") {
                watched.extend(resources);
            }
        }
    }
    watched.sort_unstable();
    let mut expected = if watch_workloads {
        workloads.to_vec()
    } else {
        Vec::new()
    };
    expected.sort_unstable();
    assert_eq!(
        watched, expected,
        "{what}: kinds listed and watched cluster-wide"
    );
    let env = env_map(container(
        &find(objects, "Deployment", "sf-storefleet")["spec"]["template"]["spec"],
        "controller",
    ));
    assert_eq!(
        env["STOREFLEET_WORKLOAD_WATCH"],
        if watch_workloads { "cluster" } else { "off" },
        "{what}: the control plane's mode does not match its RBAC"
    );
}

/// The Pod runs as the API's ServiceAccount; the controller's token is mounted into the controller
/// container alone; only the controller is told which roles to bind (and to whom); the API's
/// ClusterRole holds Stores only, nothing that grants rights.
fn assert_two_identities(objects: &[Value], what: &str) {
    let pod = &find(objects, "Deployment", "sf-storefleet")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "sf-storefleet-api", "{what}");
    assert_ne!(pod["shareProcessNamespace"], true, "{what}");
    let token_path = "/var/run/secrets/kubernetes.io/serviceaccount";
    let token_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == "sf-storefleet-controller-token")
        .unwrap_or_else(|| panic!("{what}: the controller's token is not a volume"));
    for name in ["api", "controller"] {
        let mounts = container(pod, name)["volumeMounts"].as_array().unwrap();
        let token = mounts.iter().find(|m| m["name"] == token_volume["name"]);
        assert_eq!(
            token.is_some(),
            name == "controller",
            "{what}: the controller's token in the {name} container"
        );
        if let Some(token) = token {
            assert_eq!(token["mountPath"], token_path, "{what}");
        }
        let env = env_map(container(pod, name));
        for key in ["STOREFLEET_STORE_ROLE", "STOREFLEET_API_STORE_ROLE"] {
            assert_eq!(
                env.contains_key(key),
                name == "controller",
                "{what}: {key} in the {name} container"
            );
        }
        // The admin token is the API's business only.
        assert_eq!(
            env.contains_key("STOREFLEET_ADMIN_TOKEN"),
            name == "api",
            "{what}: STOREFLEET_ADMIN_TOKEN in the {name} container"
        );
    }
    let env = env_map(container(pod, "controller"));
    assert_eq!(
        env["STOREFLEET_SERVICE_ACCOUNT"],
        "platform/sf-storefleet-controller"
    );
    assert_eq!(
        env["STOREFLEET_API_SERVICE_ACCOUNT"],
        "platform/sf-storefleet-api"
    );
    assert_eq!(env["STOREFLEET_STORE_ROLE"], "sf-storefleet-store");
    assert_eq!(env["STOREFLEET_API_STORE_ROLE"], "sf-storefleet-store-api");
    let secret = find(objects, "Secret", "sf-storefleet-controller-token");
    assert_eq!(
        secret["type"], "kubernetes.io/service-account-token",
        "{what}"
    );
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.name"],
        "sf-storefleet-controller",
        "{what}"
    );
    assert_eq!(
        find(objects, "ClusterRole", "sf-storefleet-api")["rules"],
        json!([
            {
                "apiGroups": ["storefleet.dev"],
                "resources": ["stores"],
                "verbs": ["get", "list", "watch", "create", "patch", "delete"],
            },
            // Fleet rollouts: created, read, paused/resumed/aborted; never their status.
            {
                "apiGroups": ["storefleet.dev"],
                "resources": ["storerollouts"],
                "verbs": ["get", "list", "create", "patch"],
            },
            // A store's own domains: claimed (created) and released; never their status.
            {
                "apiGroups": ["storefleet.dev"],
                "resources": ["storedomains"],
                "verbs": ["get", "list", "create", "delete"],
            },
            // Backups and restores: asked for, read, a backup deleted; never their status.
            {
                "apiGroups": ["storefleet.dev"],
                "resources": ["storebackups"],
                "verbs": ["get", "list", "create", "delete"],
            },
            {
                "apiGroups": ["storefleet.dev"],
                "resources": ["storerestores"],
                "verbs": ["get", "list", "create"],
            },
            // A plan may grow a store's volumes only where their class allows expansion.
            {
                "apiGroups": ["storage.k8s.io"],
                "resources": ["storageclasses"],
                "verbs": ["get", "list"],
            },
        ]),
        "{what}: the API's cluster-wide rights"
    );
    assert_eq!(
        find(objects, "ClusterRole", "sf-storefleet-store-api")["rules"],
        json!([
            { "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"] },
            { "apiGroups": [""], "resources": ["services"], "verbs": ["get"] },
            { "apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get"] },
        ]),
        "{what}: the API's rights in a store namespace"
    );
    for (binding, account) in [
        ("sf-storefleet-api", "sf-storefleet-api"),
        ("sf-storefleet-controller", "sf-storefleet-controller"),
    ] {
        let subjects = &find(objects, "ClusterRoleBinding", binding)["subjects"];
        assert_eq!(subjects.as_array().unwrap().len(), 1, "{what}: {binding}");
        assert_eq!(subjects[0]["name"], account, "{what}: {binding}");
    }
    let events = &find(objects, "RoleBinding", "sf-storefleet-events")["subjects"];
    assert_eq!(events[0]["name"], "sf-storefleet-controller", "{what}");
}

/// The controller's token reaches the controller container only: the API server's ServiceAccount
/// admission plugin mounts the Pod's (the API's) token into every container that does not already
/// mount that path, and the controller container mounts its own Secret there. Asked of the real
/// admission chain with a server-side dry run of the Pod the Deployment makes.
#[tokio::test]
async fn only_the_controller_container_holds_the_controllers_token() {
    let cluster = testkit::cluster().await;
    let ns = cluster.namespace("sftoken").await;
    let objects = parse_objects(&template(&cluster, "sf", &ns.name, &[]));
    let template = &find(&objects, "Deployment", "sf-storefleet")["spec"]["template"];
    // The Pod's ServiceAccount must exist for admission to mount its token.
    let sa = template["spec"]["serviceAccountName"].as_str().unwrap();
    kubectl_stdin(
        &cluster,
        &["apply", "-n", &ns.name, "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}})
            .to_string(),
    );
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "token-check", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    });
    let admitted: Value = serde_json::from_str(&kubectl_stdin(
        &cluster,
        &[
            "create",
            "-n",
            &ns.name,
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
        ],
        &pod.to_string(),
    ))
    .unwrap();
    let token_mount = |container: &str| -> Vec<String> {
        admitted["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == container)
            .unwrap()["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        token_mount("controller"),
        ["controller-token"],
        "{admitted:#}"
    );
    let api = token_mount("api");
    assert_eq!(api.len(), 1, "{admitted:#}");
    assert_ne!(api[0], "controller-token");
}

/// `backups.s3.cidrs` reaches the controller (which passes it to every store's release as the backup
/// Jobs' way out), never the API; an endpoint given as an address needs none; one given by name, or
/// AWS's, without them is refused at render time rather than by a controller that will not start.
#[tokio::test]
async fn backup_s3_ranges_reach_the_controller_and_a_named_endpoint_needs_them() {
    let cluster = testkit::cluster().await;
    let s3 = |extra: &[&str]| -> std::process::Output {
        let mut cmd = template_cmd(&cluster, "sf", "platform", &[]);
        cmd.args(OPT_IN).args([
            "--set",
            "backups.target=s3",
            "--set",
            "backups.s3.bucket=storefleet-backups",
        ]);
        cmd.args(extra);
        cmd.output().expect("run helm")
    };
    let env_of = |out: &std::process::Output, name: &str| -> BTreeMap<String, Value> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let objects = parse_objects(&String::from_utf8_lossy(&out.stdout));
        let pod = &find(&objects, "Deployment", "sf-storefleet")["spec"]["template"]["spec"];
        env_map(container(pod, name))
    };
    let named = [
        "--set",
        "backups.s3.endpoint=https://s3.example.net",
        "--set",
        "backups.s3.cidrs={192.0.2.0/24,198.51.100.7/32}",
    ];
    let out = s3(&named);
    assert_eq!(
        env_of(&out, "controller")["STOREFLEET_BACKUP_S3_CIDR"],
        "192.0.2.0/24,198.51.100.7/32"
    );
    assert!(!env_of(&out, "api").contains_key("STOREFLEET_BACKUP_S3_CIDR"));
    // An address: the control plane takes its /32.
    let out = s3(&["--set", "backups.s3.endpoint=http://10.0.5.20:3900"]);
    assert!(!env_of(&out, "controller").contains_key("STOREFLEET_BACKUP_S3_CIDR"));
    let out = s3(&["--set", "backups.s3.endpoint=http://[fd00::5]:3900"]);
    assert!(!env_of(&out, "controller").contains_key("STOREFLEET_BACKUP_S3_CIDR"));
    // A name, or AWS's endpoint, without ranges: refused, saying what to give.
    for (extra, says) in [
        (
            &["--set", "backups.s3.endpoint=https://s3.example.net"][..],
            "the endpoint \"https://s3.example.net\" is given by name",
        ),
        (
            &[][..],
            "AWS's endpoint (no backups.s3.endpoint) is given by name",
        ),
    ] {
        let out = s3(extra);
        assert!(!out.status.success(), "{extra:?} rendered without ranges");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("backups.s3.cidrs is required with backups.target=s3"),
            "{stderr}"
        );
        assert!(stderr.contains(says), "{stderr}");
    }
    // A filesystem target opens nothing: ranges left in the values are not passed on.
    let mut cmd = template_cmd(&cluster, "sf", "platform", &[]);
    cmd.args(OPT_IN).args([
        "--set",
        "backups.target=filesystem",
        "--set",
        "backups.filesystem.existingClaim=backups",
        "--set",
        "backups.s3.cidrs={10.0.0.0/8}",
    ]);
    let out = cmd.output().unwrap();
    assert!(!env_of(&out, "controller").contains_key("STOREFLEET_BACKUP_S3_CIDR"));
}

/// On a cluster with ValidatingAdmissionPolicy the chart installs without the opt-in, and its policy
/// names the controller (not the API), allows both store roles and requires the Pod Security label.
#[tokio::test]
async fn admission_policy_is_rendered_for_the_controller_where_the_cluster_has_it() {
    let cluster = testkit::cluster().await;
    let objects = parse_objects(&template_with_policy(
        &cluster,
        "sf",
        "platform",
        &[chart_dir().join("values-prod.yaml")],
    ));
    let policy = &find(
        &objects,
        "ValidatingAdmissionPolicy",
        "sf-storefleet-store-namespaces",
    )["spec"];
    assert_eq!(
        policy["matchConditions"][0]["expression"],
        "request.userInfo.username == \"system:serviceaccount:platform:sf-storefleet-controller\""
    );
    let validations = policy["validations"].to_string();
    for needle in [
        "'sf-storefleet-store'",
        "'sf-storefleet-store-api'",
        "pod-security.kubernetes.io/enforce",
        "'restricted'",
        "^store-[0-9a-f]{6}$",
    ] {
        assert!(
            validations.contains(needle),
            "{needle} not in {validations}"
        );
    }
    find(
        &objects,
        "ValidatingAdmissionPolicyBinding",
        "sf-storefleet-store-namespaces",
    );
}

/// Kubernetes 1.20 has no ValidatingAdmissionPolicy: rendered for this cluster without the opt-in,
/// the chart fails and says what is at risk and how to accept it.
#[tokio::test]
async fn chart_refuses_a_cluster_without_admission_policy_unless_told() {
    let cluster = testkit::cluster().await;
    let out = cluster
        .helm()
        .args(["template", "sf"])
        .arg(chart_dir())
        .args(["-n", "platform", "--validate", "-f"])
        .arg(chart_dir().join("values-local.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "rendered without the opt-in:\n{stderr}"
    );
    for needle in [
        "has no ValidatingAdmissionPolicy",
        "cluster-admin",
        "rbac.allowWithoutAdmissionPolicy=true",
    ] {
        assert!(stderr.contains(needle), "{needle} not in:\n{stderr}");
    }
    // Told, it renders (and without the policy, which this cluster could not store).
    let objects = parse_objects(&template(
        &cluster,
        "sf",
        "platform",
        &[chart_dir().join("values-local.yaml")],
    ));
    assert!(
        objects
            .iter()
            .all(|o| o["kind"] != "ValidatingAdmissionPolicy"),
        "a ValidatingAdmissionPolicy rendered for Kubernetes 1.20"
    );
}

// --- install -----------------------------------------------------------------------------------

#[tokio::test]
async fn chart_installs_becomes_ready_upgrades_and_uninstalls() {
    let cluster = testkit::cluster().await;
    let ns = cluster.namespace("sfchart").await;
    let release = Release::install(&cluster, &ns.name);

    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns.name);
    let name = release.fullname();
    wait_for(
        "the control plane Deployment to be ready",
        READY_TIMEOUT,
        || {
            let deployments = deployments.clone();
            let name = name.clone();
            async move {
                deployments
                    .get(&name)
                    .await
                    .ok()
                    .filter(deployment_ready)
                    .map(drop)
            }
        },
    )
    .await;

    // The generated admin token survives an upgrade with unchanged values (lookup keeps it).
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns.name);
    let token_secret = format!("{name}-admin-token");
    let before = secrets
        .get(&token_secret)
        .await
        .expect("admin token Secret")
        .data
        .expect("data")["token"]
        .clone();
    assert!(before.0.len() >= 32, "admin token too short");
    run_ok(&mut release.upgrade_cmd(&cluster));
    let after = secrets.get(&token_secret).await.unwrap().data.unwrap()["token"].clone();
    assert_eq!(before, after, "helm upgrade replaced the admin token");

    release.uninstall(&cluster);
    let roles: Api<ClusterRole> = Api::all(cluster.client.clone());
    for role in ["controller", "api", "store", "store-api"].map(|r| format!("{name}-{r}")) {
        assert!(
            roles.get_opt(&role).await.unwrap().is_none(),
            "ClusterRole {role} left behind by uninstall"
        );
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), &ns.name);
    wait_for(
        "the data PVC to go (values-local: not kept)",
        GONE_TIMEOUT,
        || {
            let pvcs = pvcs.clone();
            let claim = format!("{name}-data");
            async move {
                pvcs.get_opt(&claim)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
}

// --- least privilege ---------------------------------------------------------------------------

#[tokio::test]
async fn each_identity_may_do_what_it_needs_and_nothing_more() {
    let cluster = testkit::cluster().await;
    let ns = cluster.namespace("sfrbac").await;
    let release = Release::install(&cluster, &ns.name);
    let fullname = release.fullname();
    let api = ServiceAccountIdentity::get(&cluster, &ns.name, &format!("{fullname}-api")).await;
    let controller = ServiceAccountIdentity::from_token_secret(
        &cluster,
        &ns.name,
        &format!("{fullname}-controller-token"),
    )
    .await;
    let store_role = format!("{fullname}-store");
    let store_api_role = format!("{fullname}-store-api");
    // The chart's instance is `default`.
    let lease = "storefleet-default";

    // Refused to both: the issue's three calls and their neighbours.
    let refused_to_both = [
        "get secrets -n kube-system",
        // The platform's own namespace holds the controller's token Secret.
        &format!("get secrets -n {}", ns.name),
        &format!("list secrets -n {}", ns.name),
        "list secrets --all-namespaces",
        "get secrets -n default",
        "create clusterrolebindings",
        "create clusterroles",
        "bind clusterroles/cluster-admin",
        "escalate clusterroles",
        "patch clusterroles",
        "delete namespaces/kube-system",
        "delete namespaces/default",
        "delete namespaces",
        "patch namespaces/kube-system",
        "update namespaces/kube-system",
        "create deployments -n kube-system",
        "create pods -n default",
        "delete pods -n default",
        "update deployments.apps -n kube-system",
        "list configmaps --all-namespaces",
        "create pods --subresource=exec -n kube-system",
        "impersonate serviceaccounts",
        "create serviceaccounts --subresource=token -n kube-system",
        "create customresourcedefinitions.apiextensions.k8s.io",
    ];
    // The API serves the network: Stores only, and nothing that grants a right.
    let api_refused = [
        "create rolebindings -n kube-system",
        "create rolebindings -n store-000000",
        "create roles -n kube-system",
        &format!("bind clusterroles/{store_role}"),
        &format!("bind clusterroles/{store_api_role}"),
        "create namespaces",
        "update stores.storefleet.dev",
        "patch stores.storefleet.dev --subresource=status",
        "update stores.storefleet.dev --subresource=finalizers",
        "create events -n default",
        "list pods --all-namespaces",
        "get secrets -n store-000000",
        "create storageclasses.storage.k8s.io",
        "patch storageclasses.storage.k8s.io",
        "delete storageclasses.storage.k8s.io",
        "patch storerollouts.storefleet.dev --subresource=status",
        "delete storerollouts.storefleet.dev",
        "patch storedomains.storefleet.dev --subresource=status",
        "patch storebackups.storefleet.dev --subresource=status",
        "patch storerestores.storefleet.dev --subresource=status",
        "delete storerestores.storefleet.dev",
        // Leader election is the controller's alone.
        &format!("create leases.coordination.k8s.io -n {}", ns.name),
        &format!("update leases.coordination.k8s.io/{lease} -n {}", ns.name),
    ];
    let api_allowed = [
        "get stores.storefleet.dev",
        "list stores.storefleet.dev",
        "watch stores.storefleet.dev",
        "create stores.storefleet.dev",
        // A store's spec (its name and plan: PATCH /stores/{id}); never its status.
        "patch stores.storefleet.dev",
        "delete stores.storefleet.dev",
        // Which StorageClass allows volume expansion (PATCH /stores/{id} with a plan): read only.
        "get storageclasses.storage.k8s.io",
        "list storageclasses.storage.k8s.io",
        // Fleet rollouts (POST /rollouts, pause, resume, abort).
        "create storerollouts.storefleet.dev",
        "patch storerollouts.storefleet.dev",
        // A store's own domains: claimed and released.
        "create storedomains.storefleet.dev",
        "delete storedomains.storefleet.dev",
        // Backups (POST/DELETE /stores/{id}/backups) and restores (POST /stores/{id}/restore).
        "create storebackups.storefleet.dev",
        "delete storebackups.storefleet.dev",
        "create storerestores.storefleet.dev",
        "list storerestores.storefleet.dev",
    ];
    // The controller: what reconciling needs outside store namespaces.
    let controller_refused = [
        "create storerollouts.storefleet.dev",
        "create storedomains.storefleet.dev",
        // Restores are asked for through the API only, and deleted there too.
        "create storerestores.storefleet.dev",
        "delete storerestores.storefleet.dev",
        "get secrets -n store-000000",
        // Its Lease only, in its own namespace only, and never deleted (a release is an update).
        "update leases.coordination.k8s.io -n kube-system",
        "create leases.coordination.k8s.io -n default",
        &format!(
            "update leases.coordination.k8s.io/kube-scheduler -n {}",
            ns.name
        ),
        &format!("delete leases.coordination.k8s.io/{lease} -n {}", ns.name),
        &format!("list leases.coordination.k8s.io -n {}", ns.name),
    ];
    let controller_allowed = [
        "get stores.storefleet.dev",
        // The warm pool's stores (owner `storefleet`), made by the leader's refill.
        "create stores.storefleet.dev",
        "watch stores.storefleet.dev",
        "delete stores.storefleet.dev",
        "patch stores.storefleet.dev",
        "patch stores.storefleet.dev --subresource=status",
        "update stores.storefleet.dev --subresource=finalizers",
        "list storerollouts.storefleet.dev",
        "patch storerollouts.storefleet.dev --subresource=status",
        "patch storedomains.storefleet.dev --subresource=status",
        "delete storedomains.storefleet.dev",
        // A rollout's pre-upgrade backup, a restore's safety backup, scheduled and final backups
        // are the controller's own; retention deletes backups it no longer keeps.
        "create storebackups.storefleet.dev",
        "delete storebackups.storefleet.dev",
        "patch storebackups.storefleet.dev --subresource=status",
        "patch storerestores.storefleet.dev --subresource=status",
        "list storerestores.storefleet.dev",
        // Its finalizer: an unfinished restore deleted by hand finishes first.
        "patch storerestores.storefleet.dev",
        "create namespaces",
        "watch namespaces",
        "create rolebindings -n store-000000",
        &format!("bind clusterroles/{store_role}"),
        &format!("bind clusterroles/{store_api_role}"),
        "create events.events.k8s.io -n default",
        "create events -n default",
        // rbac.watchWorkloadsClusterWide (the default): read-only watches for --workload-watch cluster.
        "list pods --all-namespaces",
        "watch deployments.apps --all-namespaces",
        "watch jobs.batch --all-namespaces",
        // Leader election (leaderElection.enabled, the default): its Lease in its namespace.
        &format!("create leases.coordination.k8s.io -n {}", ns.name),
        &format!("get leases.coordination.k8s.io/{lease} -n {}", ns.name),
        &format!("update leases.coordination.k8s.io/{lease} -n {}", ns.name),
    ];
    let mut table = Vec::new();
    for (who, identity, refused, allowed) in [
        (
            "api",
            &api,
            [&refused_to_both[..], &api_refused[..]].concat(),
            &api_allowed[..],
        ),
        (
            "controller",
            &controller,
            [&refused_to_both[..], &controller_refused[..]].concat(),
            &controller_allowed[..],
        ),
    ] {
        for check in refused {
            assert!(!identity.can_i(check), "the {who} identity may `{check}`");
            table.push(format!("{who:<10} no   {check}"));
        }
        for check in allowed {
            assert!(
                identity.can_i(check),
                "the {who} identity may not `{check}`"
            );
            table.push(format!("{who:<10} yes  {check}"));
        }
    }
    eprintln!("kubectl auth can-i, as observed:\n{}", table.join("\n"));

    // The issue's three-call path, first call, as the API: refused by RBAC on every cluster.
    let api_client = api.client().await;
    let controller_client = controller.client().await;
    let binding = |name: &str, namespace: &str, role: &str, account: &str| -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": namespace },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{ "kind": "ServiceAccount", "name": account, "namespace": ns.name }],
        }))
        .unwrap()
    };
    let api_account = format!("{fullname}-api");
    let controller_account = format!("{fullname}-controller");
    for role in [
        store_role.as_str(),
        store_api_role.as_str(),
        "cluster-admin",
    ] {
        assert_forbidden(
            Api::<RoleBinding>::namespaced(api_client.clone(), "kube-system")
                .create(
                    &PostParams::default(),
                    &binding("storefleet", "kube-system", role, &api_account),
                )
                .await,
            &format!("the API binding {role} in kube-system"),
        );
    }

    // The same call as the controller: on a cluster with ValidatingAdmissionPolicy the chart's policy
    // refuses it. This one (1.20) has none, so RBAC alone decides and lets it through: the gap the
    // chart refuses to install into without rbac.allowWithoutAdmissionPolicy (docs/security.md).
    // Shown, then undone at once; the later calls (reading kube-system's Secrets, patching a
    // ClusterRole with a token found there) are not made.
    let escalation = format!("storefleet-escalation-test-{}", ns.name);
    let undo = KubeSystemBinding {
        kubeconfig: cluster.kubeconfig.clone(),
        name: escalation.clone(),
    };
    let attempt = Api::<RoleBinding>::namespaced(controller_client.clone(), "kube-system")
        .create(
            &PostParams::default(),
            &binding(&escalation, "kube-system", &store_role, &controller_account),
        )
        .await;
    if has_admission_policy(&cluster) {
        assert_forbidden(
            attempt,
            "the controller binding the store role in kube-system",
        );
    } else {
        attempt.expect(
            "without ValidatingAdmissionPolicy RBAC cannot stop the controller binding the store \
             role in kube-system; if this now fails, update docs/security.md",
        );
        wait_for(
            "the kube-system RoleBinding to take effect",
            RBAC_TIMEOUT,
            || {
                let yes = controller.can_i("get secrets -n kube-system");
                async move { yes.then_some(()) }
            },
        )
        .await;
        eprintln!(
            "Kubernetes without ValidatingAdmissionPolicy: the controller identity bound the store \
             role in kube-system and may now read its Secrets (undone)"
        );
    }
    drop(undo);

    // Then the whole path of one store, each step by the identity that takes it: the API creates the
    // Store; the controller creates the namespace owned by it, the RoleBindings that open that
    // namespace (and only it) to itself and to the API, and runs helm in it; the API reads the
    // store's credentials and deletes the Store; the garbage collector deletes the namespace.
    let id = format!("store-{}", &ns.name[ns.name.len() - 6..]);
    let instance = format!("platform-chart-{}", &ns.name[ns.name.len() - 8..]);
    let api_stores: Api<DynamicObject> = Api::all_with(api_client.clone(), &store_resource());
    let store: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "storefleet.dev/v1alpha1",
        "kind": "Store",
        // An instance no running control plane serves: nobody else reconciles this Store.
        "metadata": { "name": id, "labels": { "storefleet.dev/instance": instance } },
        "spec": { "owner": "platform-chart-test", "engine": "woocommerce" },
    }))
    .unwrap();
    let store = api_stores
        .create(&PostParams::default(), &store)
        .await
        .expect("the API creates a Store");
    let _cleanup = StoreCleanup {
        kubectl_env: cluster.kubeconfig.clone(),
        name: id.clone(),
    };

    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {
            "name": id,
            "labels": {
                "storefleet.dev/store-id": id, "storefleet.dev/instance": instance,
                "app.kubernetes.io/managed-by": "storefleet",
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
            "ownerReferences": [{
                "apiVersion": "storefleet.dev/v1alpha1", "kind": "Store", "name": id, "uid": store.uid().unwrap(),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
    }))
    .unwrap();
    assert_forbidden(
        Api::<Namespace>::all(api_client.clone())
            .create(&PostParams::default(), &namespace)
            .await,
        "the API creating a namespace",
    );
    let namespaces: Api<Namespace> = Api::all(controller_client.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("the controller creates the store namespace");
    assert!(
        !controller.can_i(&format!("get secrets -n {id}")),
        "rights in a store namespace before its RoleBinding"
    );

    // RBAC's escalation check: the store roles, in the store namespace; never another role. And the
    // API binds nothing, not even there.
    for (namespace, role) in [
        ("kube-system", "cluster-admin"),
        (id.as_str(), "cluster-admin"),
        (id.as_str(), "admin"),
    ] {
        let refused = Api::<RoleBinding>::namespaced(controller_client.clone(), namespace)
            .create(
                &PostParams::default(),
                &binding("storefleet", namespace, role, &controller_account),
            )
            .await;
        assert_forbidden(refused, &format!("binding {role} in {namespace}"));
    }
    assert_forbidden(
        Api::<RoleBinding>::namespaced(api_client.clone(), &id)
            .create(
                &PostParams::default(),
                &binding("storefleet-api", &id, &store_api_role, &api_account),
            )
            .await,
        "the API binding its own role in the store namespace",
    );
    for (name, role, account) in [
        ("storefleet", &store_role, &controller_account),
        ("storefleet-api", &store_api_role, &api_account),
    ] {
        Api::<RoleBinding>::namespaced(controller_client.clone(), &id)
            .create(&PostParams::default(), &binding(name, &id, role, account))
            .await
            .unwrap_or_else(|e| panic!("the controller binds {role} in the store namespace: {e}"));
    }
    wait_for(
        "the store RoleBindings to take effect",
        RBAC_TIMEOUT,
        || {
            let yes = controller.can_i(&format!("create deployments -n {id}"))
                && api.can_i(&format!("get secrets -n {id}"));
            async move { yes.then_some(()) }
        },
    )
    .await;
    for check in [
        "get secrets",
        "create secrets",
        "create statefulsets.apps",
        "delete jobs.batch",
        "create cronjobs.batch",
        "create networkpolicies.networking.k8s.io",
        "create resourcequotas",
        "get pods --subresource=log",
        "list events",
    ] {
        assert!(
            controller.can_i(&format!("{check} -n {id}")),
            "the controller is not allowed in the store namespace: {check}"
        );
    }
    for check in [
        "create pods --subresource=exec",
        "create roles.rbac.authorization.k8s.io",
        "delete namespaces/{id}",
    ] {
        let check = check.replace("{id}", &id);
        assert!(
            !controller.can_i(&format!("{check} -n {id}")),
            "the controller is allowed in the store namespace: {check}"
        );
    }
    // The API reads a Secret (credentials), a Service (storefront check) and the PVCs (a plan
    // change) by name there, and nothing else.
    assert!(
        api.can_i(&format!("get services -n {id}")),
        "the API may not read the store's Services (GET /stores/{{id}}/health)"
    );
    assert!(
        api.can_i(&format!("get persistentvolumeclaims -n {id}")),
        "the API may not read the store's PVCs (PATCH /stores/{{id}} with a plan)"
    );
    for check in [
        "list secrets",
        "watch secrets",
        "create secrets",
        "list services",
        "watch services",
        "create services",
        "update services",
        "list persistentvolumeclaims",
        "patch persistentvolumeclaims",
        "update persistentvolumeclaims",
        "create deployments.apps",
        "create pods",
        "get configmaps",
        "create rolebindings",
    ] {
        assert!(
            !api.can_i(&format!("{check} -n {id}")),
            "the API is allowed in the store namespace: {check}"
        );
    }
    for identity in [&api, &controller] {
        assert!(
            !identity.can_i("get secrets -n kube-system"),
            "a store RoleBinding leaked beyond its namespace"
        );
    }

    // Helm, as the controller, installs and upgrades the store chart with what the store role grants.
    let values = controller.dir.join("store-values.yaml");
    std::fs::write(&values, format!("storeId: {id}\nhost: {id}.localhost\nsiteTitle: \"RBAC test\"\nsiteUrl: \"http://{id}.localhost\"\n")).unwrap();
    for _ in 0..2 {
        run_ok(
            controller
                .helm(&cluster)
                .args(["upgrade", "--install", &id])
                .arg(workspace().join("charts/store"))
                .args(["-n", &id, "-f"])
                .arg(workspace().join("charts/store/values-local.yaml"))
                .arg("-f")
                .arg(&values),
        );
    }
    // ... and the API reads the credentials helm made (GET /stores/{id}/credentials).
    let credentials = Api::<Secret>::namespaced(api_client.clone(), &id)
        .get(&format!("{id}-credentials"))
        .await
        .expect("the API reads the store's credentials");
    assert!(credentials.data.is_some_and(|d| !d.is_empty()));

    // Neither can delete the namespace; the API deleting the Store (foreground, as it does) makes the
    // garbage collector delete it, and the Store goes once its namespace is gone.
    assert_forbidden(
        namespaces
            .delete(&id, &DeleteParams::default())
            .await
            .map(drop),
        "deleting the store namespace",
    );
    api_stores
        .delete(&id, &DeleteParams::foreground())
        .await
        .expect("the API deletes its Store");
    let admin_namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let admin_stores: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &store_resource());
    wait_for(
        "the garbage collector to delete the store namespace, then the Store",
        GONE_TIMEOUT,
        || {
            let (namespaces, stores, id) =
                (admin_namespaces.clone(), admin_stores.clone(), id.clone());
            async move {
                let ns_gone = namespaces.get_opt(&id).await.ok()?.is_none();
                let store_gone = stores.get_opt(&id).await.ok()?.is_none();
                (ns_gone && store_gone).then_some(())
            }
        },
    )
    .await;
}

/// Does the cluster serve ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1)?
fn has_admission_policy(cluster: &Cluster) -> bool {
    let out = cluster
        .kubectl()
        .args([
            "api-resources",
            "--api-group=admissionregistration.k8s.io",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("validatingadmissionpolicies."))
}

/// Deletes the kube-system RoleBinding the escalation check made, however the test ends.
struct KubeSystemBinding {
    kubeconfig: PathBuf,
    name: String,
}

impl Drop for KubeSystemBinding {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args([
                "delete",
                "rolebindings.rbac.authorization.k8s.io",
                &self.name,
                "-n",
                "kube-system",
                "--ignore-not-found",
            ])
            .output();
    }
}

// --- the control plane as the chart's ServiceAccount --------------------------------------------

/// The default (`rbac.watchWorkloadsClusterWide: true`, `--workload-watch cluster`): a store made
/// through the API becomes Ready and is deleted through the API (foreground); a namespace of a store's
/// name that is not the store's is refused and never touched.
#[tokio::test]
async fn control_plane_as_its_service_accounts_creates_and_deletes_a_store() {
    let mut cp = ServiceAccountControlPlane::start("sfcp", true).await;
    assert!(
        cp.identity.can_i("watch pods --all-namespaces"),
        "the default chart does not grant what --workload-watch cluster needs"
    );
    // values-local.yaml keeps one store in the pool: the controller makes it as its own identity
    // (the chart's RBAC must let it create Stores), and the create claims it.
    let pooled = cp.wait_ready_pool_store().await;
    let id = cp.create_ready_store("Platform chart test").await;
    assert_eq!(
        id,
        pooled,
        "the create did not claim the pool's Ready store\n{}",
        cp.server.log_tail()
    );
    cp.assert_owned_and_bound(&id).await;
    cp.assert_credentials_revealed(&id).await;
    cp.assert_storefront_checked(&id).await;
    cp.assert_plan_checked(&id).await;
    let deleted = cp
        .http
        .delete(cp.server.url(&format!("/stores/{id}")))
        .bearer_auth(&cp.token)
        .send()
        .await
        .unwrap();
    assert!(
        deleted.status().is_success(),
        "DELETE /stores/{id}: {}",
        deleted.status()
    );
    cp.wait_gone(&id).await;

    // Someone else's namespace with a store's name: the store fails saying so, and deleting the
    // store leaves that namespace alone (the control plane could not delete it anyway: this checks
    // it does not install into it, or count it as the store's).
    let taken = format!("store-{}", &cp.ns.name[cp.ns.name.len() - 6..]);
    let namespaces: Api<Namespace> = Api::all(cp.cluster.client.clone());
    let foreign: Namespace = serde_json::from_value(json!({
        // The instance label only so that InstanceCleanup removes it if this test fails.
        "metadata": { "name": taken, "labels": { "storefleet.dev/instance": cp.instance } },
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &foreign)
        .await
        .expect("the admin creates a namespace");
    kubectl_stdin(
        &cp.cluster,
        &["apply", "-f", "-"],
        &json!({
            "apiVersion": "storefleet.dev/v1alpha1",
            "kind": "Store",
            "metadata": { "name": taken, "labels": { "storefleet.dev/instance": cp.instance } },
            "spec": { "owner": "platform-chart-test" },
        })
        .to_string(),
    );
    let stores: Api<DynamicObject> = Api::all_with(cp.cluster.client.clone(), &store_resource());
    let failed = wait_for(
        "the store to fail on a taken namespace",
        READY_TIMEOUT,
        || {
            let (stores, taken) = (stores.clone(), taken.clone());
            async move {
                let store = stores.get(&taken).await.ok()?;
                (store.data["status"]["phase"] == "Failed").then_some(store)
            }
        },
    )
    .await;
    let message = failed.data["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("already exists and is not this store's"),
        "{message}"
    );
    assert!(
        cp.helm_releases(&taken).is_empty(),
        "helm installed into a namespace that is not the store's"
    );
    run_ok(cp.cluster.kubectl().args([
        "delete",
        "stores.storefleet.dev",
        &taken,
        "--wait=true",
        "--timeout=120s",
    ]));
    let left = namespaces
        .get(&taken)
        .await
        .expect("the namespace is left alone");
    assert!(
        left.metadata.deletion_timestamp.is_none(),
        "deleting the store deleted a namespace that was not its own"
    );
    namespaces
        .delete(&taken, &DeleteParams::default())
        .await
        .unwrap();
    cp.assert_no_watch_errors();
    cp.stop();
}

/// `rbac.watchWorkloadsClusterWide: false`, `--workload-watch off`: no cluster-wide reads of workloads
/// at all, the store still becomes Ready (polled in its namespace); `kubectl delete store` (background
/// propagation) still removes the namespace the control plane may not delete.
#[tokio::test]
async fn control_plane_without_cluster_wide_watches_polls_and_cleans_up_after_kubectl_delete() {
    let mut cp = ServiceAccountControlPlane::start("sfcpoff", false).await;
    for check in [
        "list pods --all-namespaces",
        "watch deployments.apps --all-namespaces",
        "list jobs.batch --all-namespaces",
    ] {
        assert!(
            !cp.identity.can_i(check),
            "rbac.watchWorkloadsClusterWide=false still grants `{check}`"
        );
    }
    let id = cp.create_ready_store("Polled store").await;
    cp.assert_owned_and_bound(&id).await;
    run_ok(
        cp.cluster
            .kubectl()
            .args(["delete", "stores.storefleet.dev", &id, "--wait=false"]),
    );
    cp.wait_gone(&id).await;
    cp.assert_no_watch_errors();
    cp.stop();
}

/// The platform chart installed in a fresh namespace and its two processes running as the chart's
/// Deployment runs them: `storefleet serve --component api` as the API's ServiceAccount and
/// `--component controller` as the controller's, sharing one SQLite file, each configured from its
/// container in the rendered Deployment. Fields drop in order: both processes stop, their Stores are
/// cleaned up, then the chart is uninstalled and its namespace deleted.
struct ServiceAccountControlPlane {
    /// The API: what the tests talk HTTP to.
    server: ControlPlane,
    controller: ControlPlane,
    _leftovers: InstanceCleanup,
    /// The controller's identity.
    identity: ServiceAccountIdentity,
    _api_identity: ServiceAccountIdentity,
    release: Release,
    ns: testkit::TestNamespace,
    cluster: Cluster,
    instance: String,
    token: String,
    http: reqwest::Client,
    /// The release's extra values file (`rbac.watchWorkloadsClusterWide: false`).
    _values_dir: tempfile::TempDir,
}

impl ServiceAccountControlPlane {
    async fn start(prefix: &str, watch_workloads: bool) -> ServiceAccountControlPlane {
        let cluster = testkit::cluster().await;
        let ns = cluster.namespace(prefix).await;
        let mut release = Release::new(&cluster, &ns.name);
        let values_dir = tempfile::tempdir().unwrap();
        if !watch_workloads {
            // Without the pool of values-local.yaml too: this one makes its store the cold way.
            let values = values_dir.path().join("no-cluster-watches.yaml");
            std::fs::write(
                &values,
                "rbac:\n  watchWorkloadsClusterWide: false\npool: null\n",
            )
            .unwrap();
            release.extra_values.push(values);
        }
        run_ok(&mut release.upgrade_cmd(&cluster));
        let fullname = release.fullname();
        let identity = ServiceAccountIdentity::from_token_secret(
            &cluster,
            &ns.name,
            &format!("{fullname}-controller-token"),
        )
        .await;
        let api_identity =
            ServiceAccountIdentity::get(&cluster, &ns.name, &format!("{fullname}-api")).await;
        let instance = format!("platform-chart-{}", &ns.name[ns.name.len() - 8..]);
        let token = format!("platform-chart-admin-token-{}", &ns.name);
        let leftovers = InstanceCleanup {
            kubeconfig: cluster.kubeconfig.clone(),
            instance: instance.clone(),
        };
        let controller_settings = release.container_settings(&cluster, "controller");
        let api_settings = release.container_settings(&cluster, "api");
        assert_eq!(controller_settings.component, "controller");
        assert_eq!(api_settings.component, "api");
        assert_eq!(
            controller_settings
                .env
                .get("STOREFLEET_WORKLOAD_WATCH")
                .map(String::as_str),
            Some(if watch_workloads { "cluster" } else { "off" }),
            "the chart's Deployment"
        );
        assert!(
            api_settings.env.keys().all(|k| k == "STOREFLEET_POOL"),
            "the API container binds nothing and watches no workloads: {:?}",
            api_settings.env
        );
        assert_eq!(
            api_settings.env.get("STOREFLEET_POOL"),
            controller_settings.env.get("STOREFLEET_POOL"),
            "the API claims from the pool the controller fills: one setting"
        );
        // One database for both, as the Pod's shared volume.
        let database = identity.dir.join("storefleet.db");
        let controller = ControlPlane::start(
            &cluster,
            &identity,
            &database,
            &instance,
            None,
            &controller_settings,
        )
        .await;
        let server = ControlPlane::start(
            &cluster,
            &api_identity,
            &database,
            &instance,
            Some(&token),
            &api_settings,
        )
        .await;
        ServiceAccountControlPlane {
            server,
            controller,
            _leftovers: leftovers,
            identity,
            _api_identity: api_identity,
            release,
            ns,
            cluster,
            instance,
            token,
            http: reqwest::Client::new(),
            _values_dir: values_dir,
        }
    }

    fn stop(&mut self) {
        self.server.stop();
        self.controller.stop();
    }

    async fn status(&self, id: &str) -> Option<(u16, Value)> {
        let response = self
            .http
            .get(self.server.url(&format!("/stores/{id}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        Some((
            response.status().as_u16(),
            response.json::<Value>().await.unwrap_or(Value::Null),
        ))
    }

    /// The id of a Ready pool store of this instance, made by the controller as its ServiceAccount.
    async fn wait_ready_pool_store(&self) -> String {
        let stores: Api<DynamicObject> =
            Api::all_with(self.cluster.client.clone(), &store_resource());
        let selector = format!(
            "storefleet.dev/instance={},storefleet.dev/pool",
            self.instance
        );
        wait_for("a Ready pool store", READY_TIMEOUT, || {
            let (stores, selector) = (stores.clone(), selector.clone());
            async move {
                let listed = stores
                    .list(&kube::api::ListParams::default().labels(&selector))
                    .await
                    .ok()?;
                assert!(
                    !self.controller.log_tail().contains("pool pass failed"),
                    "the controller could not fill the pool:\n{}",
                    self.controller.log_tail()
                );
                listed
                    .items
                    .iter()
                    .find(|s| s.data["status"]["phase"] == "Ready")
                    .map(ResourceExt::name_any)
            }
        })
        .await
    }

    /// `POST /stores`, then Ready.
    async fn create_ready_store(&self, name: &str) -> String {
        let created: Value = self
            .http
            .post(self.server.url("/stores?wait=true"))
            .bearer_auth(&self.token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["store_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {created}\n{}", self.server.log_tail()))
            .to_owned();
        let id_ref = &id;
        wait_for("the store to be Ready", READY_TIMEOUT, move || async move {
            let (code, body) = self.status(id_ref).await?;
            assert!(
                body["status"] != "Failed",
                "store failed: {body}\n{}",
                self.controller.log_tail()
            );
            (code == 200 && body["status"] == "Ready").then_some(())
        })
        .await;
        id
    }

    /// The store namespace is owned by the Store (so the garbage collector can delete it) and holds the
    /// one RoleBinding that gives the control plane its rights there.
    async fn assert_owned_and_bound(&self, id: &str) {
        let namespace = Api::<Namespace>::all(self.cluster.client.clone())
            .get(id)
            .await
            .unwrap();
        let stores: Api<DynamicObject> =
            Api::all_with(self.cluster.client.clone(), &store_resource());
        let store = stores.get(id).await.unwrap();
        let owner = namespace
            .owner_references()
            .iter()
            .find(|r| r.kind == "Store")
            .unwrap_or_else(|| panic!("namespace {id} has no Store owner"));
        assert_eq!(Some(owner.uid.as_str()), store.metadata.uid.as_deref());
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(
            namespace
                .labels()
                .get("storefleet.dev/store-id")
                .map(String::as_str),
            Some(id)
        );
        // Inert on this 1.20 cluster (no Pod Security Admission), enforced from 1.23 on.
        assert_eq!(
            namespace
                .labels()
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted")
        );
        let mut bindings = Api::<RoleBinding>::namespaced(self.cluster.client.clone(), id)
            .list(&Default::default())
            .await
            .unwrap()
            .items;
        bindings.sort_by_key(|b| b.name_any());
        let fullname = self.release.fullname();
        let expected = [
            (
                "storefleet",
                format!("{fullname}-store"),
                format!("{fullname}-controller"),
            ),
            (
                "storefleet-api",
                format!("{fullname}-store-api"),
                format!("{fullname}-api"),
            ),
        ];
        assert_eq!(
            bindings.len(),
            expected.len(),
            "RoleBindings in {id}: {:?}",
            bindings.iter().map(|b| b.name_any()).collect::<Vec<_>>()
        );
        for (binding, (name, role, account)) in bindings.iter().zip(&expected) {
            assert_eq!(binding.name_any(), *name);
            assert_eq!(binding.role_ref.kind, "ClusterRole");
            assert_eq!(&binding.role_ref.name, role);
            let subjects = binding.subjects.clone().unwrap_or_default();
            assert_eq!(subjects.len(), 1, "{subjects:?}");
            assert_eq!(subjects[0].kind, "ServiceAccount");
            assert_eq!(&subjects[0].name, account);
            assert_eq!(
                subjects[0].namespace.as_deref(),
                Some(self.ns.name.as_str())
            );
        }
    }

    /// `GET /stores/{id}/credentials`: the API, as its own identity, reads the store's Secret through
    /// the RoleBinding the controller made for it.
    async fn assert_credentials_revealed(&self, id: &str) {
        let response = self
            .http
            .get(self.server.url(&format!("/stores/{id}/credentials")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status.as_u16(),
            200,
            "credentials of {id}: {body}\n{}",
            self.server.log_tail()
        );
    }

    /// `GET /stores/{id}/health`: the API, as its own identity, reads the store's WordPress Service
    /// (through the same RoleBinding) and asks it. Nothing runs behind it here, so the parts fail,
    /// but not for want of the Service: a 503 or `no_service` would be RBAC refusing the read.
    /// `PATCH /stores/{id}` with a bigger plan, as the API's identity: it reads the store's PVCs and
    /// their StorageClass (the test cluster's default, which does not allow expansion) and refuses
    /// with 422 naming the class. Without those rights it would answer 503.
    async fn assert_plan_checked(&self, id: &str) {
        let response = self
            .http
            .patch(self.server.url(&format!("/stores/{id}")))
            .bearer_auth(&self.token)
            .json(&json!({ "plan": "medium" }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status.as_u16(), body["type"].as_str()),
            (
                422,
                Some("https://storefleet.dev/problems/volume-not-expandable")
            ),
            "PATCH {id} to a bigger plan: {body}\n{}",
            self.server.log_tail()
        );
        assert!(
            body["detail"].as_str().unwrap().contains("StorageClass `"),
            "{body}"
        );
    }

    async fn assert_storefront_checked(&self, id: &str) {
        let response = self
            .http
            .get(self.server.url(&format!("/stores/{id}/health")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status.as_u16(),
            200,
            "health of {id}: {body}\n{}",
            self.server.log_tail()
        );
        for part in ["home_page", "rest_api"] {
            assert_eq!(body[part]["result"], "failed", "{body}");
            assert_ne!(body[part]["failure"], "no_service", "{body}");
        }
    }

    /// The store and its namespace are gone (the control plane may not delete namespaces: the garbage
    /// collector does, through the Store's ownership).
    async fn wait_gone(&self, id: &str) {
        let namespaces: Api<Namespace> = Api::all(self.cluster.client.clone());
        wait_for(
            "the store and its namespace to be gone",
            GONE_TIMEOUT,
            || {
                let namespaces = namespaces.clone();
                async move {
                    let (code, _) = self.status(id).await?;
                    (code == 404 && namespaces.get_opt(id).await.ok()?.is_none()).then_some(())
                }
            },
        )
        .await;
    }

    fn helm_releases(&self, namespace: &str) -> Vec<String> {
        let out = run_ok(
            self.cluster
                .helm()
                .args(["list", "-q", "-n", namespace])
                .args(testkit::HELM_LIST_ALL),
        );
        out.lines().map(str::to_owned).collect()
    }

    /// Every watch either process opened was allowed: what each watches matches what the chart grants
    /// its identity.
    fn assert_no_watch_errors(&self) {
        for process in [&self.server, &self.controller] {
            let log = std::fs::read_to_string(&process.process.log_path).unwrap_or_default();
            let denied: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("forbidden") && l.contains("watch"))
                .collect();
            assert!(
                denied.is_empty(),
                "refused watches ({}):\n{}",
                process.process.log_path.display(),
                denied.join("\n")
            );
        }
    }
}

// --- the image ---------------------------------------------------------------------------------

#[tokio::test]
async fn dockerfile_copies_what_exists_and_pins_the_tested_helm() {
    let cluster = testkit::cluster().await;
    let dockerfile = Dockerfile::read();
    let ignored = dockerignore();
    for copy in dockerfile.copies.iter().filter(|c| c.from.is_none()) {
        for source in &copy.sources {
            assert!(
                workspace().join(source).exists(),
                "Dockerfile copies {source}, which does not exist"
            );
            let top = source.split('/').next().unwrap();
            assert!(
                !ignored.iter().any(|i| i == top || i == source),
                ".dockerignore excludes {source}, which the Dockerfile copies"
            );
        }
    }
    // The paths the image's ENV names are where the COPYs put things.
    let env = &dockerfile.env;
    let chart_copy = dockerfile
        .copies
        .iter()
        .find(|c| c.sources == ["charts/store"])
        .expect("COPY charts/store");
    assert_eq!(env["STOREFLEET_CHART"], chart_copy.dest);
    let helm_copy = dockerfile
        .copies
        .iter()
        .find(|c| c.from.as_deref() == Some("helm") && c.dest.ends_with("/helm"))
        .expect("COPY --from=helm .../helm");
    assert_eq!(env["STOREFLEET_HELM"], helm_copy.dest);
    // ... and the platform chart runs the image with the same paths and user.
    let objects = parse_objects(&template(
        &cluster,
        "sf",
        "platform",
        &[chart_dir().join("values-local.yaml")],
    ));
    let pod = &find(&objects, "Deployment", "sf-storefleet")["spec"]["template"]["spec"];
    let chart_env = env_map(container(pod, "controller"));
    for key in [
        "STOREFLEET_CHART",
        "STOREFLEET_HELM",
        "STOREFLEET_DATABASE_URL",
    ] {
        assert_eq!(
            chart_env[key],
            env[key].as_str(),
            "{key}: chart and image disagree"
        );
    }
    let user = dockerfile.user.split(':').next().unwrap().to_owned();
    assert_eq!(
        pod["securityContext"]["runAsUser"].to_string(),
        user,
        "chart and image run as different users"
    );
    assert_ne!(user, "0", "the image runs as root");

    // The helm the image pins is byte for byte the helm every test here runs (scripts/testcluster
    // checks the same sha256 when it fetches it).
    let sha = run_ok(Command::new("sha256sum").arg(&cluster.helm));
    assert_eq!(
        dockerfile.args["HELM_SHA256_amd64"],
        sha.split_whitespace().next().unwrap(),
        "pinned helm differs from the tested one"
    );
    let version = run_ok(
        cluster
            .helm()
            .args(["version", "--template", "{{.Version}}"]),
    );
    assert_eq!(
        format!("v{}", dockerfile.args["HELM_VERSION"]),
        version.trim()
    );
}

#[tokio::test]
async fn binary_starts_as_the_image_runs_it() {
    let cluster = testkit::cluster().await;
    let binary = storefleet_binary();
    let help = run_ok(Command::new(&binary).arg("--help"));
    assert!(
        help.contains("serve") && help.contains("crd"),
        "storefleet --help:\n{help}"
    );
    let crd = run_ok(Command::new(&binary).arg("crd"));
    let committed =
        std::fs::read_to_string(chart_dir().join("crds/stores.storefleet.dev.yaml")).unwrap();
    assert_eq!(
        crd, committed,
        "charts/storefleet/crds is not what `storefleet crd` prints"
    );
    let rollouts = run_ok(Command::new(&binary).args(["crd", "--rollouts"]));
    let committed =
        std::fs::read_to_string(chart_dir().join("crds/storerollouts.storefleet.dev.yaml"))
            .unwrap();
    assert_eq!(
        rollouts, committed,
        "charts/storefleet/crds is not what `storefleet crd --rollouts` prints"
    );
    run_ok(
        cluster
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(chart_dir().join("crds")),
    );

    // The image's layout (Dockerfile COPYs and ENV), user and read-only root, in a private mount
    // namespace: the store chart at its image path, helm at its image path, /data and /tmp writable.
    let dockerfile = Dockerfile::read();
    let dir = scratch_dir("image");
    let kubeconfig = dir.join("kubeconfig");
    write_kubeconfig(&cluster.kubeconfig, None, &kubeconfig);
    let user = dockerfile.user.clone();
    std::os::unix::fs::chown(
        &kubeconfig,
        Some(user.split(':').next().unwrap().parse().unwrap()),
        None,
    )
    .unwrap();
    let instance = format!(
        "platform-chart-image-{}",
        &dir.file_name().unwrap().to_string_lossy()[6..]
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "bash",
        "-euc",
        IMAGE_LAYOUT_SCRIPT,
        "image-layout",
    ])
    .arg(
        workspace().join(
            dockerfile
                .copies
                .iter()
                .find(|c| c.sources == ["charts/store"])
                .unwrap()
                .sources[0]
                .as_str(),
        ),
    )
    .arg(&dockerfile.env["STOREFLEET_CHART"])
    .arg(&cluster.helm)
    .arg(&dockerfile.env["STOREFLEET_HELM"])
    .arg(&kubeconfig)
    .arg(&user)
    .arg(&binary)
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .envs(dockerfile.env.iter())
    .env("KUBECONFIG", "/tmp/kubeconfig")
    .env("STOREFLEET_LISTEN", "127.0.0.1:0") // not the image's 0.0.0.0:8080: a shared machine
    .env("STOREFLEET_INSTANCE", &instance)
    .env(
        "STOREFLEET_ADMIN_TOKEN",
        "image-layout-test-token-of-at-least-32-chars",
    )
    .env("STOREFLEET_LOG_FORMAT", "json");
    let mut server = Spawned::start(cmd, &dir.join("serve.log"));
    let addr = server.wait_listening().await;
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let url = format!("http://{addr}{path}");
        let log = server.log_path.clone();
        wait_for(
            &format!("{path} to answer 200"),
            Duration::from_secs(60),
            || {
                let (http, url, log) = (http.clone(), url.clone(), log.clone());
                async move {
                    let ok = http
                        .get(&url)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(drop);
                    if ok.is_none() {
                        eprintln!(
                            "{}",
                            std::fs::read_to_string(&log)
                                .unwrap_or_default()
                                .lines()
                                .last()
                                .unwrap_or("")
                        );
                    }
                    ok
                }
            },
        )
        .await;
    }
    server.stop();
    let log = std::fs::read_to_string(&server.log_path).unwrap();
    assert!(
        log.contains("helm version v4"),
        "helm at the image path did not run as the image user:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir); // the kubeconfig in it holds the admin token
}

/// Builds the image's filesystem view, then runs `storefleet serve` as the image's user.
/// Arguments: chart source, chart path in the image, helm source, helm path in the image, kubeconfig,
/// user (uid:gid), storefleet binary. Fixed text; the arguments never become code.
const IMAGE_LAYOUT_SCRIPT: &str = r#"
chart_src=$1 chart_dst=$2 helm_src=$3 helm_dst=$4 kubeconfig=$5 user=$6 binary=$7
uid=${user%%:*} gid=${user##*:}
# Private tmpfs over the image's top folders (only this mount namespace sees them).
top=/$(printf '%s' "${chart_dst#/}" | cut -d/ -f1)
mount -t tmpfs -o mode=0755 image-top "$top"
mkdir -p "$chart_dst" && mount --bind -o ro "$chart_src" "$chart_dst"
mount -t tmpfs -o mode=0755 image-bin "$(dirname "$helm_dst")"
touch "$helm_dst" && mount --bind -o ro "$helm_src" "$helm_dst"
# The binary at its image path too. Both it and the kubeconfig are taken before /tmp is covered below:
# the workspace itself may live under /tmp (a CI clone).
bin_dst=$(dirname "$helm_dst")/storefleet
touch "$bin_dst" && mount --bind -o ro "$binary" "$bin_dst"
kubeconfig_text=$(cat "$kubeconfig")
mkdir -p /data # the mount point only; what the test writes goes to the tmpfs
mount -t tmpfs -o "mode=0750,uid=$uid,gid=$gid" image-data /data
mount -t tmpfs -o mode=1777 image-tmp /tmp
(umask 077 && printf '%s\n' "$kubeconfig_text" >/tmp/kubeconfig) && chown "$uid" /tmp/kubeconfig
# readOnlyRootFilesystem: `bind` makes this a per-mount flag of this namespace's copy, not the host's.
mount -o remount,bind,ro /
echo "helm version $(setpriv --reuid="$uid" --regid="$gid" --clear-groups "$helm_dst" version --short)"
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups "$bin_dst" serve
"#;

// --- the quickstart ----------------------------------------------------------------------------

#[test]
fn quickstart_passes_shellcheck() {
    let script = workspace().join("scripts/quickstart");
    let out = Command::new("shellcheck").arg(&script).output().unwrap_or_else(|e| {
        panic!("cannot run shellcheck ({e}); install it (apt-get install shellcheck) or run scripts/test")
    });
    assert!(
        out.status.success(),
        "shellcheck {}:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The storefront check (`GET /stores/{id}/health`) crosses two policies: the platform's egress to
/// WordPress's port in its store namespaces, and each store's ingress from the control plane's pods,
/// whose selectors the platform passes to every store through the store values. Rendered together,
/// they admit exactly the control plane's pods to exactly WordPress's HTTP port.
#[tokio::test]
async fn control_plane_reaches_wordpress_port_only_through_both_charts() {
    let cluster = testkit::cluster().await;
    let objects = parse_objects(&template(
        &cluster,
        "sf",
        "platform",
        &[chart_dir().join("values-local.yaml")],
    ));
    let pod_labels =
        &find(&objects, "Deployment", "sf-storefleet")["spec"]["template"]["metadata"]["labels"];
    let store_values =
        find(&objects, "ConfigMap", "sf-storefleet-store-values")["data"]["store-values.yaml"]
            .as_str()
            .unwrap();

    // The platform's egress: its pod to WordPress pods of this instance's store namespaces, port http.
    let policy = &find(&objects, "NetworkPolicy", "sf-storefleet")["spec"];
    let to_wordpress: Vec<&Value> = policy["egress"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rule| {
            rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                == "wordpress"
        })
        .collect();
    assert_eq!(to_wordpress.len(), 1, "{policy:#}");
    assert_eq!(
        to_wordpress[0]["to"],
        json!([{
            "namespaceSelector": { "matchLabels": {
                "app.kubernetes.io/managed-by": "storefleet", "storefleet.dev/instance": "default" } },
            "podSelector": { "matchLabels": {
                "app.kubernetes.io/part-of": "storefleet", "app.kubernetes.io/component": "wordpress" } },
        }])
    );
    assert_eq!(
        to_wordpress[0]["ports"],
        json!([{ "port": "http", "protocol": "TCP" }])
    );

    // The store's ingress, rendered with what the platform passes (storeValues empty here).
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("store-values.yaml");
    std::fs::write(&values, store_values).unwrap();
    let id = "store-c0ffee";
    let mut cmd = cluster.helm();
    cmd.args(["template", id])
        .arg(workspace().join("charts/store"))
        .args(["-n", id, "-f"])
        .arg(workspace().join("charts/store/values-local.yaml"))
        .arg("-f")
        .arg(&values);
    let store = parse_objects(&run_ok(&mut cmd));
    let wordpress = &find(&store, "Deployment", &format!("{id}-wordpress"))["spec"]["template"];
    assert_eq!(
        wordpress["metadata"]["labels"]["app.kubernetes.io/component"],
        "wordpress"
    );
    assert!(
        wordpress["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "http"),
        "WordPress's port is named http"
    );
    let admit = &find(
        &store,
        "NetworkPolicy",
        &format!("{id}-allow-control-plane"),
    )["spec"];
    assert_eq!(
        admit["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "wordpress"
    );
    assert_eq!(admit["policyTypes"], json!(["Ingress"]));
    let rules = admit["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{admit:#}");
    assert_eq!(
        rules[0]["ports"],
        json!([{ "port": "http", "protocol": "TCP" }])
    );
    let peers = rules[0]["from"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "{admit:#}");
    assert_eq!(
        peers[0]["namespaceSelector"],
        json!({ "matchLabels": { "kubernetes.io/metadata.name": "platform" } })
    );
    // The peer selects the control plane's pods: every label it asks for, they carry.
    let asked = peers[0]["podSelector"]["matchLabels"].as_object().unwrap();
    assert!(!asked.is_empty());
    for (key, value) in asked {
        assert_eq!(&pod_labels[key], value, "{key}: {pod_labels:#}");
    }

    // A `networkPolicy.controlPlane` in storeValues replaces what the platform passes, whole;
    // storeValues' other keys ride along.
    let override_file = dir.path().join("override.yaml");
    std::fs::write(
        &override_file,
        "storeValues:\n  networkPolicy:\n    controlPlane:\n      namespaceSelector:\n        matchLabels: {team: platform}\n  ingress:\n    className: traefik\n",
    )
    .unwrap();
    let objects = parse_objects(&template(
        &cluster,
        "sf",
        "platform",
        &[chart_dir().join("values-local.yaml"), override_file],
    ));
    let passed: Value = serde_yaml::from_str(
        find(&objects, "ConfigMap", "sf-storefleet-store-values")["data"]["store-values.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        passed["networkPolicy"]["controlPlane"]["namespaceSelector"],
        json!({ "matchLabels": { "team": "platform" } })
    );
    assert_eq!(
        passed["networkPolicy"]["controlPlane"]["podSelector"],
        Value::Null
    );
    assert_eq!(passed["ingress"]["className"], "traefik");
}

// --- routing -----------------------------------------------------------------------------------

/// The edge through both charts: the platform's Gateway (created here), its HTTPRoute for the
/// dashboard, and a store's HTTPRoute rendered with what the platform passes, attached to the
/// Gateway's stores listener, whose hostname covers the store's host and whose allowedRoutes admit
/// exactly the namespaces the controller makes (crates/storefleet/src/controller/namespace.rs).
#[tokio::test]
async fn store_and_dashboard_routes_attach_to_the_platform_gateway() {
    let cluster = testkit::cluster().await;
    // (platform values, store values, class, HTTP and HTTPS ports, base domain, dashboard host, tls)
    for (file, store_file, class, (http, https), domain, host, tls) in [
        (
            "values-local.yaml",
            "values-local.yaml",
            "traefik",
            (8000, 8443),
            "localhost",
            "storefleet.localhost",
            false,
        ),
        (
            "values-prod.yaml",
            "values-prod.yaml",
            "eg",
            (80, 443),
            "stores.example.com",
            "storefleet.example.com",
            true,
        ),
    ] {
        let objects = parse_objects(&template(
            &cluster,
            "sf",
            "platform",
            &[chart_dir().join(file)],
        ));
        let gateway = find(&objects, "Gateway", "sf-storefleet");
        assert_eq!(
            gateway["apiVersion"], "gateway.networking.k8s.io/v1",
            "{file}"
        );
        assert_eq!(gateway["metadata"]["namespace"], "platform", "{file}");
        assert_eq!(gateway["spec"]["gatewayClassName"], class, "{file}");
        let listeners = gateway["spec"]["listeners"].as_array().unwrap();
        let listener = |name: &str| {
            listeners
                .iter()
                .find(|l| l["name"] == name)
                .unwrap_or_else(|| panic!("{file}: no listener {name}: {listeners:?}"))
        };
        let expected: &[(&str, &str, u16, String)] = &[
            ("http", "HTTP", http, host.to_owned()),
            ("stores-http", "HTTP", http, format!("*.{domain}")),
            ("https", "HTTPS", https, host.to_owned()),
            ("stores-https", "HTTPS", https, format!("*.{domain}")),
        ];
        let expected = if tls { expected } else { &expected[..2] };
        assert_eq!(listeners.len(), expected.len(), "{file}: {listeners:?}");
        for (name, protocol, port, hostname) in expected {
            let l = listener(name);
            assert_eq!(
                (&l["protocol"], &l["port"], &l["hostname"]),
                (&json!(protocol), &json!(port), &json!(hostname)),
                "{file}: listener {name}"
            );
        }
        // The dashboard's listeners take routes from this namespace only, the stores' from this
        // instance's store namespaces only.
        for name in ["http", "https"].iter().take(if tls { 2 } else { 1 }) {
            assert_eq!(
                listener(name)["allowedRoutes"],
                json!({ "namespaces": { "from": "Same" } })
            );
        }
        let store_namespace_labels = json!({
            "app.kubernetes.io/managed-by": "storefleet", "storefleet.dev/instance": "default" });
        let stores_listener = listener(if tls { "stores-https" } else { "stores-http" });
        assert_eq!(
            stores_listener["allowedRoutes"],
            json!({ "namespaces": { "from": "Selector",
                "selector": { "matchLabels": store_namespace_labels } } }),
            "{file}"
        );

        let dashboard = find(&objects, "HTTPRoute", "sf-storefleet");
        assert_eq!(
            dashboard["spec"]["parentRefs"],
            json!([{ "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "sf-storefleet",
                     "namespace": "platform", "sectionName": if tls { "https" } else { "http" } }]),
            "{file}"
        );
        assert_eq!(dashboard["spec"]["hostnames"], json!([host]), "{file}");
        assert_eq!(
            dashboard["spec"]["rules"][0]["backendRefs"],
            json!([{ "group": "", "kind": "Service", "name": "sf-storefleet", "port": 80 }]),
            "{file}"
        );
        let env = env_map(container(
            &find(&objects, "Deployment", "sf-storefleet")["spec"]["template"]["spec"],
            "api",
        ));
        assert_eq!(
            env["STOREFLEET_PUBLIC_URL"],
            format!("{}://{host}", if tls { "https" } else { "http" }),
            "{file}"
        );

        // A store, rendered as the controller installs it: env values, then the platform's.
        let dir = tempfile::tempdir().unwrap();
        let values = dir.path().join("store-values.yaml");
        std::fs::write(
            &values,
            find(&objects, "ConfigMap", "sf-storefleet-store-values")["data"]["store-values.yaml"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let id = "store-0a7e11";
        let mut cmd = cluster.helm();
        cmd.args(["template", id])
            .arg(workspace().join("charts/store"))
            .args(["-n", id, "-f"])
            .arg(workspace().join("charts/store").join(store_file))
            .arg("-f")
            .arg(&values);
        let store = parse_objects(&run_ok(&mut cmd));
        let route = find(&store, "HTTPRoute", id);
        let section = if tls { "stores-https" } else { "stores-http" };
        assert_eq!(
            route["spec"]["parentRefs"],
            json!([{ "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "sf-storefleet",
                     "namespace": "platform", "sectionName": section }]),
            "{file}: the store's route names the platform's Gateway and its stores listener"
        );
        let store_host = format!("{id}.{domain}");
        assert_eq!(route["spec"]["hostnames"], json!([store_host]), "{file}");
        let wildcard = listener(section)["hostname"].as_str().unwrap();
        assert!(
            store_host.ends_with(wildcard.trim_start_matches('*')),
            "{file}: {store_host} is not under the listener's {wildcard}"
        );
        assert_eq!(
            route["spec"]["rules"][0]["backendRefs"],
            json!([{ "group": "", "kind": "Service", "name": format!("{id}-wordpress"), "port": 80 }]),
            "{file}"
        );
    }
}

// --- helpers -----------------------------------------------------------------------------------

fn workspace() -> PathBuf {
    testkit::workspace_root()
}

fn chart_dir() -> PathBuf {
    workspace().join("charts/storefleet")
}

/// `target/debug/storefleet`, built by `cargo build` (scripts/test builds the workspace first).
fn storefleet_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let binary = target.join("debug/storefleet");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p storefleet` (scripts/test does)",
        binary.display()
    );
    binary
}

/// `helm template` as for the test cluster (Kubernetes 1.20, no ValidatingAdmissionPolicy: opted in).
fn template(cluster: &Cluster, release: &str, namespace: &str, values: &[PathBuf]) -> String {
    let mut cmd = template_cmd(cluster, release, namespace, values);
    cmd.args(OPT_IN);
    run_ok(&mut cmd)
}

/// `helm template` as for a cluster with ValidatingAdmissionPolicy (Kubernetes 1.30+): no opt-in
/// needed, and the policy is rendered.
fn template_with_policy(
    cluster: &Cluster,
    release: &str,
    namespace: &str,
    values: &[PathBuf],
) -> String {
    let mut cmd = template_cmd(cluster, release, namespace, values);
    cmd.args([
        "--api-versions",
        "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
    ]);
    run_ok(&mut cmd)
}

/// The API server's version, as `helm template --kube-version` takes it (`1.20.0`).
async fn kube_version(cluster: &Cluster) -> String {
    let info = cluster
        .client
        .apiserver_version()
        .await
        .expect("server version");
    format!("{}.{}.0", info.major, info.minor.trim_end_matches('+'))
}

fn template_cmd(cluster: &Cluster, release: &str, namespace: &str, values: &[PathBuf]) -> Command {
    let mut cmd = cluster.helm();
    cmd.args(["template", release])
        .arg(chart_dir())
        .args(["-n", namespace]);
    for file in values {
        cmd.arg("-f").arg(file);
    }
    cmd
}

/// A Pod template's container by name.
fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn parse_objects(manifest: &str) -> Vec<Value> {
    manifest
        .split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// A container's `env` as name -> value (valueFrom entries map to Null).
fn env_map(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e.get("value").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn kubectl_stdin(cluster: &Cluster, args: &[&str], input: &str) -> String {
    let mut child = cluster
        .kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn deployment_ready(d: &Deployment) -> bool {
    let Some(status) = &d.status else {
        return false;
    };
    let want = d.spec.replicas.unwrap_or(1);
    status.observed_generation >= d.metadata.generation
        && status.ready_replicas.unwrap_or(0) == want
        && status.updated_replicas.unwrap_or(0) == want
}

fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

fn store_resource() -> ApiResource {
    ApiResource {
        group: "storefleet.dev".into(),
        version: "v1alpha1".into(),
        api_version: "storefleet.dev/v1alpha1".into(),
        kind: "Store".into(),
        plural: "stores".into(),
    }
}

/// A folder under target/ for one test's files (kubeconfigs hold tokens: not in /tmp).
fn scratch_dir(prefix: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let suffix = format!(
        "{:08x}",
        (std::process::id() ^ nanos).wrapping_add(n.wrapping_mul(0x9e37_79b9))
    );
    let dir = workspace()
        .join("target/platform-chart")
        .join(format!("{prefix}-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A kubeconfig for the test cluster with a bearer token (the admin's when `token` is None), the CA
/// inlined so it works from any path; mode 0600, as helm wants.
fn write_kubeconfig(admin: &Path, token: Option<&str>, out: &Path) {
    let kc = Kubeconfig::read_from(admin).expect("admin kubeconfig");
    let cluster = kc.clusters[0].cluster.as_ref().expect("cluster entry");
    let ca = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => data.clone(),
        (None, Some(path)) => base64(&std::fs::read(path).expect("CA file")),
        _ => panic!("the admin kubeconfig has no CA"),
    };
    let token = match token {
        Some(t) => t.to_owned(),
        None => {
            let raw: Value =
                serde_yaml::from_str(&std::fs::read_to_string(admin).unwrap()).unwrap();
            raw["users"][0]["user"]["token"]
                .as_str()
                .expect("admin token")
                .to_owned()
        }
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
         users:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
        cluster.server.as_deref().expect("server")
    );
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One container of the chart's Deployment, as the tests run it: `--component` and rights settings.
struct ContainerSettings {
    component: String,
    env: BTreeMap<String, String>,
}

/// One install of the platform chart (release name = namespace name), uninstalled on drop.
struct Release {
    name: String,
    namespace: String,
    kubeconfig: PathBuf,
    helm: PathBuf,
    /// After values-local.yaml.
    extra_values: Vec<PathBuf>,
    installed: bool,
}

impl Release {
    /// Not installed yet: `upgrade_cmd` does that.
    fn new(cluster: &Cluster, namespace: &str) -> Release {
        Release {
            name: namespace.to_owned(),
            namespace: namespace.to_owned(),
            kubeconfig: cluster.kubeconfig.clone(),
            helm: cluster.helm.clone(),
            extra_values: Vec::new(),
            installed: true,
        }
    }

    fn install(cluster: &Cluster, namespace: &str) -> Release {
        let release = Release::new(cluster, namespace);
        run_ok(&mut release.upgrade_cmd(cluster));
        release
    }

    /// `helm upgrade --install` with values-local.yaml, opted in for the 1.20 test cluster (no
    /// ValidatingAdmissionPolicy); the image is irrelevant on the stand-in node.
    fn upgrade_cmd(&self, cluster: &Cluster) -> Command {
        let mut cmd = cluster.helm();
        cmd.args(["upgrade", "--install", &self.name])
            .arg(chart_dir())
            .args(["-n", &self.namespace, "-f"])
            .arg(chart_dir().join("values-local.yaml"))
            .args(OPT_IN);
        for file in &self.extra_values {
            cmd.arg("-f").arg(file);
        }
        cmd
    }

    /// How the installed Deployment runs one of its containers: the component (`--component`) and
    /// the settings about rights (which roles to bind to whom, the workload watch mode that matches
    /// the ClusterRole), those of them the container sets.
    fn container_settings(&self, cluster: &Cluster, name: &str) -> ContainerSettings {
        let manifest =
            run_ok(
                cluster
                    .helm()
                    .args(["get", "manifest", &self.name, "-n", &self.namespace]),
            );
        let objects = parse_objects(&manifest);
        let container = container(
            &find(&objects, "Deployment", &self.fullname())["spec"]["template"]["spec"],
            name,
        );
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap_or_else(|| panic!("container {name} has no args"))
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let component = args
            .iter()
            .skip_while(|a| **a != "--component")
            .nth(1)
            .unwrap_or_else(|| panic!("container {name} runs no --component: {args:?}"))
            .to_string();
        let env = env_map(container);
        let env = [
            "STOREFLEET_STORE_ROLE",
            "STOREFLEET_SERVICE_ACCOUNT",
            "STOREFLEET_API_STORE_ROLE",
            "STOREFLEET_API_SERVICE_ACCOUNT",
            "STOREFLEET_WORKLOAD_WATCH",
            // Leader election as the chart sets it (the identity is the pod's name there; here the
            // default, `<hostname>-<pid>`): the Lease in the release's namespace.
            "STOREFLEET_LEADER_ELECTION",
            "STOREFLEET_LEADER_ELECTION_NAMESPACE",
            "STOREFLEET_LEADER_ELECTION_LEASE",
            // The warm pool: the controller fills it (creating Stores as its own identity), the API
            // claims from it.
            "STOREFLEET_POOL",
        ]
        .into_iter()
        .filter_map(|key| {
            let value = env.get(key)?.as_str()?;
            Some((key.to_owned(), value.to_owned()))
        })
        .collect();
        ContainerSettings { component, env }
    }

    fn fullname(&self) -> String {
        format!("{}-storefleet", self.name)
    }

    fn uninstall(mut self, cluster: &Cluster) {
        run_ok(
            cluster
                .helm()
                .args(["uninstall", &self.name, "-n", &self.namespace]),
        );
        self.installed = false;
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.installed && std::env::var_os("STOREFLEET_KEEP_NAMESPACES").is_none() {
            // Cluster-scoped RBAC and the events Role in `default` outlive the namespace otherwise.
            let _ = Command::new(&self.helm)
                .env("KUBECONFIG", &self.kubeconfig)
                .args(["uninstall", &self.name, "-n", &self.namespace])
                .output();
        }
    }
}

/// Removes a test Store however the test ended (no controller serves its instance).
struct StoreCleanup {
    kubectl_env: PathBuf,
    name: String,
}

impl Drop for StoreCleanup {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubectl_env)
            .args([
                "delete",
                "stores.storefleet.dev",
                &self.name,
                "--ignore-not-found",
                "--wait=false",
                "--cascade=foreground",
            ])
            .output();
    }
}

/// Removes what a failed control-plane test leaves: its instance's Stores (finalizers too, since its
/// controller is gone by then) and their namespaces.
struct InstanceCleanup {
    kubeconfig: PathBuf,
    instance: String,
}

impl Drop for InstanceCleanup {
    fn drop(&mut self) {
        testkit::force_remove_instance(&self.kubeconfig, &self.instance);
    }
}

/// One of the chart's ServiceAccounts, authenticated by its own token.
struct ServiceAccountIdentity {
    kubeconfig: PathBuf,
    dir: PathBuf,
}

impl ServiceAccountIdentity {
    /// By the token in a `kubernetes.io/service-account-token` Secret, once Kubernetes has filled it:
    /// how the chart gives the controller container its identity.
    async fn from_token_secret(
        cluster: &Cluster,
        namespace: &str,
        secret: &str,
    ) -> ServiceAccountIdentity {
        let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
        let token = wait_for(
            "Kubernetes to fill the token Secret",
            Duration::from_secs(60),
            || {
                let secrets = secrets.clone();
                async move {
                    let secret = secrets.get(secret).await.ok()?;
                    String::from_utf8(secret.data?.get("token")?.0.clone()).ok()
                }
            },
        )
        .await;
        let dir = scratch_dir(namespace);
        let kubeconfig = dir.join("kubeconfig");
        write_kubeconfig(&cluster.kubeconfig, Some(&token), &kubeconfig);
        ServiceAccountIdentity { kubeconfig, dir }
    }

    /// By the token Kubernetes 1.20 issues for every ServiceAccount in a Secret of its own (a Pod of
    /// the account gets an equivalent one, projected).
    async fn get(cluster: &Cluster, namespace: &str, name: &str) -> ServiceAccountIdentity {
        let accounts: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
        let token = wait_for(
            "the ServiceAccount's token Secret",
            Duration::from_secs(60),
            || {
                let (accounts, secrets, name) =
                    (accounts.clone(), secrets.clone(), name.to_owned());
                async move {
                    let account = accounts.get(&name).await.ok()?;
                    let secret_name = account.secrets?.into_iter().next()?.name;
                    let secret = secrets.get(secret_name.as_deref()?).await.ok()?;
                    String::from_utf8(secret.data?.get("token")?.0.clone()).ok()
                }
            },
        )
        .await;
        let dir = scratch_dir(namespace);
        let kubeconfig = dir.join("kubeconfig");
        write_kubeconfig(&cluster.kubeconfig, Some(&token), &kubeconfig);
        ServiceAccountIdentity { kubeconfig, dir }
    }

    /// `kubectl auth can-i <check>` as this identity: the API server answers (SelfSubjectAccessReview).
    fn can_i(&self, check: &str) -> bool {
        let out = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["auth", "can-i"])
            .args(check.split_whitespace())
            .output()
            .unwrap();
        match String::from_utf8_lossy(&out.stdout).trim() {
            "yes" => true,
            s if s.starts_with("no") => false,
            s => panic!(
                "kubectl auth can-i {check}: {s}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        Client::try_from(config).unwrap()
    }

    fn helm(&self, cluster: &Cluster) -> Command {
        let mut cmd = cluster.helm();
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }
}

impl Drop for ServiceAccountIdentity {
    fn drop(&mut self) {
        // STOREFLEET_KEEP_NAMESPACES keeps the control plane's log here too (and the token: target/).
        if std::env::var_os("STOREFLEET_KEEP_NAMESPACES").is_some() {
            eprintln!("kept {}", self.dir.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process with its output in a file; killed on drop.
struct Spawned {
    child: Option<Child>,
    log_path: PathBuf,
}

impl Spawned {
    fn start(mut cmd: Command, log_path: &Path) -> Spawned {
        let log = std::fs::File::create(log_path).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Spawned {
            child: Some(child),
            log_path: log_path.to_owned(),
        }
    }

    /// The address from storefleet's JSON `listening` log line.
    async fn wait_listening(&mut self) -> String {
        let log_path = self.log_path.clone();
        let child = self.child.as_mut().unwrap();
        wait_for(
            "storefleet serve to listen",
            Duration::from_secs(120),
            || {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("storefleet serve exited early ({status}):\n{text}");
                }
                let addr = text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|v| v["message"] == "listening" || v["fields"]["message"] == "listening")
                    .and_then(|v| {
                        v["addr"]
                            .as_str()
                            .or(v["fields"]["addr"].as_str())
                            .map(str::to_owned)
                    });
                async move { addr }
            },
        )
        .await
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- {} -----\n{}",
                self.log_path.display(),
                self.log_tail()
            );
        }
        self.stop();
    }
}

/// `storefleet serve --component <c>` from target/debug as one of the chart's ServiceAccounts,
/// configured as the chart's Deployment configures that container (`settings`: component, roles,
/// identities, workload watch mode). The admin token only where the chart gives it (the API).
struct ControlPlane {
    process: Spawned,
    base: String,
}

impl ControlPlane {
    async fn start(
        cluster: &Cluster,
        identity: &ServiceAccountIdentity,
        database: &Path,
        instance: &str,
        admin_token: Option<&str>,
        settings: &ContainerSettings,
    ) -> ControlPlane {
        let dir = identity.dir.clone();
        let mut cmd = Command::new(storefleet_binary());
        cmd.args([
            "serve",
            "--component",
            &settings.component,
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--instance",
            instance,
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()))
        .arg("--chart")
        .arg(workspace().join("charts/store"))
        .arg("--helm")
        .arg(&cluster.helm)
        .env("KUBECONFIG", &identity.kubeconfig)
        .env_remove("STOREFLEET_ADMIN_TOKEN")
        .envs(&settings.env)
        .env("RUST_LOG", "info,storefleet=debug")
        .current_dir(&dir);
        if let Some(token) = admin_token {
            cmd.env("STOREFLEET_ADMIN_TOKEN", token);
        }
        let log = dir.join(format!("serve-{}.log", settings.component));
        let mut process = Spawned::start(cmd, &log);
        let addr = process.wait_listening().await;
        ControlPlane {
            process,
            base: format!("http://{addr}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    fn stop(&mut self) {
        self.process.stop();
    }
}

/// What the tests need from the Dockerfile: COPY instructions, ENV, ARG defaults, USER.
struct Dockerfile {
    copies: Vec<Copy>,
    env: BTreeMap<String, String>,
    args: BTreeMap<String, String>,
    user: String,
}

struct Copy {
    from: Option<String>,
    sources: Vec<String>,
    dest: String,
}

impl Dockerfile {
    fn read() -> Dockerfile {
        let text = std::fs::read_to_string(workspace().join("Dockerfile")).expect("Dockerfile");
        let joined = text.replace("\\\n", " ");
        let mut file = Dockerfile {
            copies: Vec::new(),
            env: BTreeMap::new(),
            args: BTreeMap::new(),
            user: String::new(),
        };
        for line in joined
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
        {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("COPY") => {
                    let mut from = None;
                    let mut rest = Vec::new();
                    for word in words {
                        if let Some(stage) = word.strip_prefix("--from=") {
                            from = Some(stage.to_owned());
                        } else if !word.starts_with("--") {
                            rest.push(word.to_owned());
                        }
                    }
                    let dest = rest.pop().expect("COPY destination");
                    let sources = rest
                        .into_iter()
                        .map(|s| s.trim_start_matches("./").trim_end_matches('/').to_owned())
                        .collect();
                    file.copies.push(Copy {
                        from,
                        sources,
                        dest,
                    });
                }
                Some("ENV") => {
                    for pair in words {
                        let (k, v) = pair.split_once('=').expect("ENV key=value");
                        file.env.insert(k.to_owned(), v.to_owned());
                    }
                }
                Some("ARG") => {
                    if let Some((k, v)) = words.next().and_then(|w| w.split_once('=')) {
                        file.args.insert(k.to_owned(), v.to_owned());
                    }
                }
                Some("USER") => file.user = words.next().expect("USER value").to_owned(),
                _ => {}
            }
        }
        assert!(!file.user.is_empty(), "the Dockerfile sets no USER");
        file
    }
}

fn dockerignore() -> Vec<String> {
    std::fs::read_to_string(workspace().join(".dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

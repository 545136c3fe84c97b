//! Tests of the deployment artefacts: the platform chart (charts/storefleet), its least-privilege RBAC,
//! the image recipe (Dockerfile) and the laptop quickstart (scripts/quickstart).
//!
//! Everything about RBAC is decided by the test cluster's real API server: the tests read the token
//! Kubernetes 1.20 issues for the chart's ServiceAccount and act as that identity (`kubectl auth can-i`,
//! which asks the API server with a SelfSubjectAccessReview, and real requests that must succeed or be
//! refused with 403). No Docker engine exists here, so the image is checked by running the binary as
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
    for file in VALUES_FILES {
        let manifest = template(&cluster, &ns.name, &ns.name, &[chart_dir().join(file)]);
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
        for kind in [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "Ingress",
            "PersistentVolumeClaim",
            "NetworkPolicy",
        ] {
            assert!(
                kinds.contains(&kind),
                "{file}: no {kind} rendered ({kinds:?})"
            );
        }
        let deployment = find(&objects, "Deployment", "sf-storefleet");
        assert_eq!(
            deployment["spec"]["replicas"], 1,
            "{file}: one writer only (SQLite, in-process quota lock)"
        );
        assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate", "{file}");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{file}");
        let container = &pod["containers"][0];
        assert_eq!(
            container["securityContext"]["readOnlyRootFilesystem"], true,
            "{file}"
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/healthz",
            "{file}"
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/readyz",
            "{file}"
        );
        assert!(
            container["resources"]["limits"]["memory"].is_string(),
            "{file}: no memory limit"
        );
        let env = env_map(container);
        assert_eq!(
            env.get("STOREFLEET_DATABASE_URL").and_then(Value::as_str),
            Some("sqlite:///data/storefleet.db"),
            "{file}"
        );
        let mounts: Vec<&str> = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert!(
            mounts.contains(&"/data") && mounts.contains(&"/tmp"),
            "{file}: mounts {mounts:?}"
        );
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
    let ingress = find(&prod, "Ingress", "sf-storefleet");
    assert!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"].is_string(),
        "prod: no cert-manager issuer"
    );
    assert!(
        ingress["spec"]["tls"][0]["secretName"].is_string(),
        "prod: no TLS"
    );
    assert!(
        prod.iter().all(|o| o["kind"] != "Secret"),
        "prod: the admin token must come from an existing Secret"
    );
    let prod_env = env_map(
        &find(&prod, "Deployment", "sf-storefleet")["spec"]["template"]["spec"]["containers"][0],
    );
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

/// What the ClusterRole bound cluster-wide may touch in namespaces: with `watch_workloads`, read-only
/// list/watch of pods and workloads; otherwise nothing namespaced. Never Secrets or RBAC objects. The
/// Deployment passes the matching `--workload-watch`.
fn assert_cluster_role_is_least_privilege(objects: &[Value], what: &str, watch_workloads: bool) {
    let rules = &find(objects, "ClusterRole", "sf-storefleet")["rules"];
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
    let env = env_map(
        &find(objects, "Deployment", "sf-storefleet")["spec"]["template"]["spec"]["containers"][0],
    );
    assert_eq!(
        env["STOREFLEET_WORKLOAD_WATCH"],
        if watch_workloads { "cluster" } else { "off" },
        "{what}: the control plane's mode does not match its RBAC"
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
    for role in [name.clone(), format!("{name}-store")] {
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
async fn service_account_may_do_what_the_control_plane_needs_and_nothing_more() {
    let cluster = testkit::cluster().await;
    let ns = cluster.namespace("sfrbac").await;
    let release = Release::install(&cluster, &ns.name);
    let identity = ServiceAccountIdentity::get(&cluster, &ns.name, &release.fullname()).await;
    let store_role = format!("{}-store", release.fullname());

    // Refused: the issue's three, and their neighbours.
    for check in [
        "get secrets -n kube-system",
        "list secrets --all-namespaces",
        "get secrets -n default",
        "create clusterrolebindings",
        "create clusterroles",
        "bind clusterroles/cluster-admin",
        "escalate clusterroles",
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
        "create customresourcedefinitions.apiextensions.k8s.io",
    ] {
        assert!(
            !identity.can_i(check),
            "the control plane's ServiceAccount may `{check}`"
        );
    }
    // Allowed: what the controller and the API need outside store namespaces.
    for check in [
        "get stores.storefleet.dev",
        "list stores.storefleet.dev",
        "watch stores.storefleet.dev",
        "create stores.storefleet.dev",
        "delete stores.storefleet.dev",
        "patch stores.storefleet.dev",
        "patch stores.storefleet.dev --subresource=status",
        "update stores.storefleet.dev --subresource=finalizers",
        "create namespaces",
        "watch namespaces",
        "create rolebindings -n store-000000",
        &format!("bind clusterroles/{store_role}"),
        "create events.events.k8s.io -n default",
        "create events -n default",
        // rbac.watchWorkloadsClusterWide (the default): read-only watches for --workload-watch cluster.
        "list pods --all-namespaces",
        "watch deployments.apps --all-namespaces",
        "watch jobs.batch --all-namespaces",
    ] {
        assert!(
            identity.can_i(check),
            "the control plane's ServiceAccount may not `{check}`"
        );
    }

    // Then the whole path of one store, as that identity: Store, namespace owned by it, the
    // RoleBinding that opens that namespace (and only it), helm in it, deletion through ownership.
    let client = identity.client().await;
    let id = format!("store-{}", &ns.name[ns.name.len() - 6..]);
    let instance = format!("platform-chart-{}", &ns.name[ns.name.len() - 8..]);
    let stores: Api<DynamicObject> = Api::all_with(client.clone(), &store_resource());
    let store: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "storefleet.dev/v1alpha1",
        "kind": "Store",
        // An instance no running control plane serves: nobody else reconciles this Store.
        "metadata": { "name": id, "labels": { "storefleet.dev/instance": instance } },
        "spec": { "owner": "platform-chart-test", "engine": "woocommerce" },
    }))
    .unwrap();
    let store = stores
        .create(&PostParams::default(), &store)
        .await
        .expect("the ServiceAccount creates a Store");
    let _cleanup = StoreCleanup {
        kubectl_env: cluster.kubeconfig.clone(),
        name: id.clone(),
    };

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {
            "name": id,
            "labels": { "storefleet.dev/store-id": id, "storefleet.dev/instance": instance, "app.kubernetes.io/managed-by": "storefleet" },
            "ownerReferences": [{
                "apiVersion": "storefleet.dev/v1alpha1", "kind": "Store", "name": id, "uid": store.uid().unwrap(),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("the ServiceAccount creates the store namespace");
    assert!(
        !identity.can_i(&format!("get secrets -n {id}")),
        "rights in a store namespace before its RoleBinding"
    );

    // RBAC's escalation check: the store role, in the store namespace; never another role, never elsewhere.
    let binding = |namespace: &str, role: &str| -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": { "name": "storefleet", "namespace": namespace },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{ "kind": "ServiceAccount", "name": release.fullname(), "namespace": ns.name }],
        }))
        .unwrap()
    };
    for (namespace, role) in [
        ("kube-system", "cluster-admin"),
        (id.as_str(), "cluster-admin"),
        (id.as_str(), "admin"),
    ] {
        let refused = Api::<RoleBinding>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &binding(namespace, role))
            .await;
        assert_forbidden(refused, &format!("binding {role} in {namespace}"));
    }
    Api::<RoleBinding>::namespaced(client.clone(), &id)
        .create(&PostParams::default(), &binding(&id, &store_role))
        .await
        .expect("the ServiceAccount binds the store role in the store namespace");
    wait_for("the store RoleBinding to take effect", RBAC_TIMEOUT, || {
        let yes = identity.can_i(&format!("create deployments -n {id}"));
        async move { yes.then_some(()) }
    })
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
            identity.can_i(&format!("{check} -n {id}")),
            "not allowed in the store namespace: {check}"
        );
    }
    for check in [
        "create pods --subresource=exec",
        "create roles.rbac.authorization.k8s.io",
        "delete namespaces/{id}",
    ] {
        let check = check.replace("{id}", &id);
        assert!(
            !identity.can_i(&format!("{check} -n {id}")),
            "allowed in the store namespace: {check}"
        );
    }
    assert!(
        !identity.can_i("get secrets -n kube-system"),
        "the store RoleBinding leaked beyond its namespace"
    );

    // Helm, as this identity, installs and upgrades the store chart with what the store role grants.
    let values = identity.dir.join("store-values.yaml");
    std::fs::write(&values, format!("storeId: {id}\nhost: {id}.localhost\nsiteTitle: \"RBAC test\"\nsiteUrl: \"http://{id}.localhost\"\n")).unwrap();
    for _ in 0..2 {
        run_ok(
            identity
                .helm(&cluster)
                .args(["upgrade", "--install", &id])
                .arg(workspace().join("charts/store"))
                .args(["-n", &id, "-f"])
                .arg(workspace().join("charts/store/values-local.yaml"))
                .arg("-f")
                .arg(&values),
        );
    }

    // It cannot delete the namespace; deleting the Store (foreground, as the API does) makes the
    // garbage collector delete it, and the Store goes once its namespace is gone.
    assert_forbidden(
        namespaces
            .delete(&id, &DeleteParams::default())
            .await
            .map(drop),
        "deleting the store namespace",
    );
    stores
        .delete(&id, &DeleteParams::foreground())
        .await
        .expect("the ServiceAccount deletes its Store");
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

// --- the control plane as the chart's ServiceAccount --------------------------------------------

/// The default (`rbac.watchWorkloadsClusterWide: true`, `--workload-watch cluster`): a store made
/// through the API becomes Ready and is deleted through the API (foreground); a namespace of a store's
/// name that is not the store's is refused and never touched.
#[tokio::test]
async fn control_plane_as_its_service_account_creates_and_deletes_a_store() {
    let mut cp = ServiceAccountControlPlane::start("sfcp", true).await;
    assert!(
        cp.identity.can_i("watch pods --all-namespaces"),
        "the default chart does not grant what --workload-watch cluster needs"
    );
    let id = cp.create_ready_store("Platform chart test").await;
    cp.assert_owned_and_bound(&id).await;
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
    cp.server.stop();
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
    cp.server.stop();
}

/// The platform chart installed in a fresh namespace and `storefleet serve` running as its
/// ServiceAccount, configured from the rendered Deployment. Fields drop in order: the control plane
/// stops, its Stores are cleaned up, then the chart is uninstalled and its namespace deleted.
struct ServiceAccountControlPlane {
    server: ControlPlane,
    _leftovers: InstanceCleanup,
    identity: ServiceAccountIdentity,
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
            let values = values_dir.path().join("no-cluster-watches.yaml");
            std::fs::write(&values, "rbac:\n  watchWorkloadsClusterWide: false\n").unwrap();
            release.extra_values.push(values);
        }
        run_ok(&mut release.upgrade_cmd(&cluster));
        let identity = ServiceAccountIdentity::get(&cluster, &ns.name, &release.fullname()).await;
        let instance = format!("platform-chart-{}", &ns.name[ns.name.len() - 8..]);
        let token = format!("token-{}", &ns.name);
        let leftovers = InstanceCleanup {
            kubeconfig: cluster.kubeconfig.clone(),
            instance: instance.clone(),
        };
        let env = release.deployment_env(&cluster);
        assert_eq!(
            env.get("STOREFLEET_WORKLOAD_WATCH").map(String::as_str),
            Some(if watch_workloads { "cluster" } else { "off" }),
            "the chart's Deployment"
        );
        let server = ControlPlane::start(&cluster, &identity, &instance, &token, &env).await;
        ServiceAccountControlPlane {
            server,
            _leftovers: leftovers,
            identity,
            release,
            ns,
            cluster,
            instance,
            token,
            http: reqwest::Client::new(),
            _values_dir: values_dir,
        }
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
                self.server.log_tail()
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
        let bindings = Api::<RoleBinding>::namespaced(self.cluster.client.clone(), id)
            .list(&Default::default())
            .await
            .unwrap()
            .items;
        assert_eq!(
            bindings.len(),
            1,
            "RoleBindings in {id}: {:?}",
            bindings.iter().map(|b| b.name_any()).collect::<Vec<_>>()
        );
        let binding = &bindings[0];
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(
            binding.role_ref.name,
            format!("{}-store", self.release.fullname())
        );
        let subjects = binding.subjects.clone().unwrap_or_default();
        assert_eq!(subjects.len(), 1, "{subjects:?}");
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].name, self.release.fullname());
        assert_eq!(
            subjects[0].namespace.as_deref(),
            Some(self.ns.name.as_str())
        );
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
                .args(["list", "-a", "-q", "-n", namespace]),
        );
        out.lines().map(str::to_owned).collect()
    }

    /// Every watch the control plane opened was allowed: what it watches matches what the chart grants.
    fn assert_no_watch_errors(&self) {
        let log = std::fs::read_to_string(&self.server.process.log_path).unwrap_or_default();
        let denied: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("forbidden") && l.contains("watch"))
            .collect();
        assert!(denied.is_empty(), "refused watches:\n{}", denied.join("\n"));
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
    let chart_env = env_map(&pod["containers"][0]);
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
    .env("STOREFLEET_ADMIN_TOKEN", "image-layout-test-token")
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
        log.contains("helm version v3"),
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

fn template(cluster: &Cluster, release: &str, namespace: &str, values: &[PathBuf]) -> String {
    let mut cmd = cluster.helm();
    cmd.args(["template", release])
        .arg(chart_dir())
        .args(["-n", namespace]);
    for file in values {
        cmd.arg("-f").arg(file);
    }
    run_ok(&mut cmd)
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

    /// `helm upgrade --install` with values-local.yaml; the image is irrelevant on the stand-in node.
    fn upgrade_cmd(&self, cluster: &Cluster) -> Command {
        let mut cmd = cluster.helm();
        cmd.args(["upgrade", "--install", &self.name])
            .arg(chart_dir())
            .args(["-n", &self.namespace, "-f"])
            .arg(chart_dir().join("values-local.yaml"));
        for file in &self.extra_values {
            cmd.arg("-f").arg(file);
        }
        cmd
    }

    /// How the installed Deployment configures the control plane's rights: the store role, its own
    /// identity, and the workload watch mode that matches the ClusterRole.
    fn deployment_env(&self, cluster: &Cluster) -> BTreeMap<String, String> {
        let manifest =
            run_ok(
                cluster
                    .helm()
                    .args(["get", "manifest", &self.name, "-n", &self.namespace]),
            );
        let objects = parse_objects(&manifest);
        let env = env_map(
            &find(&objects, "Deployment", &self.fullname())["spec"]["template"]["spec"]["containers"]
                [0],
        );
        [
            "STOREFLEET_STORE_ROLE",
            "STOREFLEET_SERVICE_ACCOUNT",
            "STOREFLEET_WORKLOAD_WATCH",
        ]
        .into_iter()
        .map(|key| {
            let value = env[key]
                .as_str()
                .unwrap_or_else(|| panic!("the Deployment sets no {key}"));
            (key.to_owned(), value.to_owned())
        })
        .collect()
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

/// The chart's ServiceAccount, authenticated by its own token (Kubernetes 1.20 keeps one in a Secret).
struct ServiceAccountIdentity {
    kubeconfig: PathBuf,
    dir: PathBuf,
}

impl ServiceAccountIdentity {
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

/// `storefleet serve` from target/debug as the chart's ServiceAccount, configured as the chart's
/// Deployment configures it (`chart_env`: store role, identity, workload watch mode).
struct ControlPlane {
    process: Spawned,
    base: String,
    _dir: PathBuf,
}

impl ControlPlane {
    async fn start(
        cluster: &Cluster,
        identity: &ServiceAccountIdentity,
        instance: &str,
        token: &str,
        chart_env: &BTreeMap<String, String>,
    ) -> ControlPlane {
        let dir = identity.dir.clone();
        let mut cmd = Command::new(storefleet_binary());
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--instance",
            instance,
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("storefleet.db").display()))
        .arg("--chart")
        .arg(workspace().join("charts/store"))
        .arg("--helm")
        .arg(&cluster.helm)
        .env("KUBECONFIG", &identity.kubeconfig)
        .env("STOREFLEET_ADMIN_TOKEN", token)
        .envs(chart_env)
        .env("RUST_LOG", "info,storefleet=debug")
        .current_dir(&dir);
        let mut process = Spawned::start(cmd, &dir.join("serve.log"));
        let addr = process.wait_listening().await;
        ControlPlane {
            process,
            base: format!("http://{addr}"),
            _dir: dir,
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

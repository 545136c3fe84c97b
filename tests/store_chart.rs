//! Tests of charts/store: rendering, admission, install, upgrade, uninstall.
//!
//! The rendering tests parse `helm template` output and check the store contract (labels,
//! workloads, container security, network isolation, credentials, quota size). The others run
//! against the test cluster's real API server; the kubelet stand-in plays kubelet and storage
//! provisioner, so workloads turn ready without any image being pulled.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use serde::Deserialize;
use serde_json::{Value, json};
use testkit::{Cluster, run_ok, wait_for};

/// The values files an install can use: defaults only, local, prod.
const VALUES_SETS: [Option<&str>; 3] = [None, Some("values-local.yaml"), Some("values-prod.yaml")];

/// Secret keys that hold generated credentials (the rest name the admin account).
fn is_generated_credential(key: &str) -> bool {
    key.contains("password") || key.ends_with("-key") || key.ends_with("-salt")
}

// --- rendering ---------------------------------------------------------------------------------

#[tokio::test]
async fn helm_lint_passes_with_each_values_file() {
    let cluster = testkit::cluster().await;
    for values in VALUES_SETS {
        let mut cmd = cluster.helm();
        cmd.args(["lint", "--strict"]).arg(chart_dir());
        if let Some(file) = values {
            cmd.arg("-f").arg(chart_dir().join(file));
        }
        let out = run_ok(&mut cmd);
        assert!(
            out.contains("0 chart(s) failed"),
            "helm lint with {values:?}:\n{out}"
        );
    }
}

#[tokio::test]
async fn rendered_manifests_keep_the_store_contract() {
    let cluster = testkit::cluster().await;
    for values in VALUES_SETS {
        let id = new_store_id();
        let objects = render(&cluster, &id, values, &[]);
        let what = format!("values {values:?}");
        check_labels(&objects, &id, &what);
        check_workloads(&objects, &what);
        check_containers(&objects, &what);
        check_network_policies(&objects, &what);
        check_credentials(&objects, &id, &what);
        check_quota_fits(&objects, &what);

        // Gateway API by default: one HTTPRoute, no Ingress (routing is checked in detail below).
        assert!(
            !objects.iter().any(|o| o["kind"] == "Ingress"),
            "{what}: an Ingress in gateway mode"
        );
        let route = only_named(&objects, "HTTPRoute", &id, &what);
        assert_eq!(
            route["spec"]["hostnames"],
            json!([host_for(&id, values)]),
            "{what}"
        );
    }
}

// --- routing -----------------------------------------------------------------------------------

/// The parentRef the store chart's values files give: the platform's Gateway `storefleet` in
/// namespace `storefleet`, on its stores' listener.
fn parent_ref(section: &str) -> Value {
    json!([{
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "storefleet",
        "namespace": "storefleet",
        "sectionName": section,
    }])
}

/// The store's host, on the platform's Gateway, to the WordPress Service: exactly these fields. With
/// TLS (prod) the route sits on the HTTPS listener, and a second route on the HTTP listener redirects.
#[tokio::test]
async fn httproute_routes_the_store_host_to_wordpress_on_the_platform_gateway() {
    let cluster = testkit::cluster().await;
    for values in VALUES_SETS {
        let id = new_store_id();
        let what = format!("values {values:?}");
        let objects = render(&cluster, &id, values, &[]);
        let host = host_for(&id, values);
        let tls = values == Some("values-prod.yaml");
        let route = only_named(&objects, "HTTPRoute", &id, &what);
        assert_eq!(
            route["apiVersion"], "gateway.networking.k8s.io/v1",
            "{what}"
        );
        assert_eq!(route["spec"]["hostnames"], json!([host]), "{what}");
        assert_eq!(
            route["spec"]["parentRefs"],
            parent_ref(if tls { "stores-https" } else { "stores-http" }),
            "{what}"
        );
        let rules = route["spec"]["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 1, "{what}: {rules:?}");
        assert_eq!(
            rules[0]["matches"],
            json!([{ "path": { "type": "PathPrefix", "value": "/" } }]),
            "{what}"
        );
        assert_eq!(
            rules[0]["backendRefs"],
            json!([{ "group": "", "kind": "Service", "name": format!("{id}-wordpress"), "port": 80 }]),
            "{what}"
        );
        // The backend is the chart's own WordPress Service, on the port it serves.
        let service = only_named(&objects, "Service", &format!("{id}-wordpress"), &what);
        assert_eq!(service["spec"]["ports"][0]["port"], 80, "{what}");

        let redirect = objects
            .iter()
            .find(|o| o["kind"] == "HTTPRoute" && name(o) == format!("{id}-https-redirect"));
        if tls {
            let redirect = redirect.unwrap_or_else(|| panic!("{what}: no https redirect"));
            assert_eq!(redirect["spec"]["hostnames"], json!([host]), "{what}");
            assert_eq!(
                redirect["spec"]["parentRefs"],
                parent_ref("stores-http"),
                "{what}"
            );
            assert_eq!(
                redirect["spec"]["rules"],
                json!([{ "filters": [{ "type": "RequestRedirect",
                    "requestRedirect": { "scheme": "https", "statusCode": 301 } }] }]),
                "{what}"
            );
        } else {
            assert!(redirect.is_none(), "{what}: a redirect without TLS");
        }
    }
}

/// `routing.mode: ingress` keeps a plain Ingress: no class and no controller-specific annotation
/// unless the values name one; TLS and the issuer annotation from values-prod.yaml.
#[tokio::test]
async fn ingress_mode_renders_an_ingress_and_no_httproute() {
    let cluster = testkit::cluster().await;
    for values in VALUES_SETS {
        let id = new_store_id();
        let what = format!("values {values:?}, ingress mode");
        let objects = render(&cluster, &id, values, &["--set", "routing.mode=ingress"]);
        assert!(!objects.iter().any(|o| o["kind"] == "HTTPRoute"), "{what}");
        let ingress = only(&objects, "Ingress", &what);
        assert!(ingress["spec"]["ingressClassName"].is_null(), "{what}");
        assert_eq!(
            ingress["spec"]["rules"][0]["host"],
            host_for(&id, values),
            "{what}"
        );
        assert_eq!(
            ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"],
            json!({ "name": format!("{id}-wordpress"), "port": { "name": "http" } }),
            "{what}"
        );
        if values == Some("values-prod.yaml") {
            assert_eq!(
                ingress["spec"]["tls"][0]["hosts"][0],
                host_for(&id, values),
                "{what}"
            );
            assert_eq!(
                ingress["spec"]["tls"][0]["secretName"],
                format!("{id}-tls"),
                "{what}"
            );
            assert_eq!(
                ingress["metadata"]["annotations"],
                json!({ "cert-manager.io/cluster-issuer": "letsencrypt-prod" }),
                "{what}"
            );
        } else {
            assert!(ingress["spec"]["tls"].is_null(), "{what}: no TLS expected");
            assert!(ingress["metadata"]["annotations"].is_null(), "{what}");
        }
    }
    let id = new_store_id();
    let objects = render(
        &cluster,
        &id,
        None,
        &[
            "--set",
            "routing.mode=ingress",
            "--set",
            "routing.ingress.className=traefik",
        ],
    );
    assert_eq!(
        only(&objects, "Ingress", "class")["spec"]["ingressClassName"],
        "traefik"
    );
    let objects = render(&cluster, &id, None, &["--set", "routing.mode=none"]);
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "HTTPRoute" || o["kind"] == "Ingress"),
        "routing.mode=none still routes"
    );
}

/// The values of before `routing` (a platform's storeValues may hold them) keep their meaning.
#[tokio::test]
async fn the_ingress_values_of_before_still_work() {
    let cluster = testkit::cluster().await;
    let id = new_store_id();
    let objects = render(
        &cluster,
        &id,
        None,
        &[
            "--set",
            "routing.mode=ingress",
            "--set",
            "ingress.className=traefik",
            "--set",
            "ingress.tls.enabled=true",
            "--set",
            "ingress.tls.secretName=legacy-tls",
            "--set",
            "ingress.annotations.team=shop",
        ],
    );
    let ingress = only(&objects, "Ingress", "legacy values");
    assert_eq!(ingress["spec"]["ingressClassName"], "traefik");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "legacy-tls");
    assert_eq!(ingress["metadata"]["annotations"]["team"], "shop");
    // ingress.tls.enabled still makes the site https.
    let job = only(&objects, "Job", "legacy values");
    let env = container_env(&job["spec"]["template"]["spec"]["containers"][0]);
    assert_eq!(env["SITE_URL"], format!("https://{id}.localhost"));
    // ingress.enabled=false still means no route at all.
    let objects = render(&cluster, &id, None, &["--set", "ingress.enabled=false"]);
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "HTTPRoute" || o["kind"] == "Ingress")
    );
    // And a mode the chart does not know fails the render.
    let mut cmd = cluster.helm();
    cmd.args(["template", &id])
        .arg(chart_dir())
        .args(["--set", "routing.mode=nginx"]);
    let out = cmd.output().expect("run helm");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("routing.mode must be gateway, ingress or none")
    );
}

/// Without `networkPolicy.controlPlane` (the platform chart always passes it), nobody outside the
/// namespace but the ingress controller reaches WordPress: no rule for the control plane at all.
#[tokio::test]
async fn control_plane_is_admitted_only_when_the_platform_says_where_it_is() {
    let cluster = testkit::cluster().await;
    for values in VALUES_SETS {
        let id = new_store_id();
        let objects = render(&cluster, &id, values, &[]);
        assert!(
            !objects
                .iter()
                .any(|o| o["kind"] == "NetworkPolicy" && name(o).ends_with("-allow-control-plane")),
            "values {values:?}: a control-plane rule without selectors"
        );
    }
    let id = new_store_id();
    let objects = render(
        &cluster,
        &id,
        Some("values-local.yaml"),
        &[
            "--set",
            "networkPolicy.controlPlane.namespaceSelector.matchLabels.team=platform",
        ],
    );
    check_network_policies(&objects, "with a control-plane selector");
    let policy = objects
        .iter()
        .find(|o| o["kind"] == "NetworkPolicy" && name(o) == format!("{id}-allow-control-plane"))
        .expect("the control-plane rule");
    // An empty podSelector: every pod of the selected namespaces.
    assert_eq!(
        policy["spec"]["ingress"][0]["from"],
        json!([{ "namespaceSelector": { "matchLabels": { "team": "platform" } }, "podSelector": {} }])
    );
    // And with network policies off, nothing at all.
    let objects = render(
        &cluster,
        &id,
        Some("values-local.yaml"),
        &[
            "--set",
            "networkPolicy.enabled=false",
            "--set",
            "networkPolicy.controlPlane.namespaceSelector.matchLabels.team=platform",
        ],
    );
    assert!(!objects.iter().any(|o| o["kind"] == "NetworkPolicy"));
}

#[tokio::test]
async fn control_plane_values_reach_the_setup_job_unchanged() {
    let cluster = testkit::cluster().await;
    let id = new_store_id();
    let title = "Läden & Co — 商店 \"quoted\" $(not a shell) --title=x";
    let generated = write_generated_values(&id, title);
    let objects = render_with(
        &cluster,
        &id,
        &[chart_dir().join("values-local.yaml"), generated],
        &[],
    );
    let job = only(&objects, "Job", "generated values");
    let env = container_env(&job["spec"]["template"]["spec"]["containers"][0]);
    assert_eq!(env.get("SITE_TITLE").map(String::as_str), Some(title));
    assert_eq!(
        env.get("SITE_URL").map(String::as_str),
        Some(format!("http://{id}.localhost").as_str())
    );
    let route = only_named(&objects, "HTTPRoute", &id, "generated values");
    assert_eq!(
        route["spec"]["hostnames"],
        json!([format!("{id}.localhost")])
    );
    // The title is data for WP-CLI, never part of the script the Job runs.
    let scripts = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && name(o).ends_with("-scripts"))
        .expect("scripts ConfigMap");
    assert!(
        !scripts.to_string().contains("商店"),
        "title leaked into the setup scripts"
    );
    let _ = std::fs::remove_dir_all(generated_values_dir(&id));
}

#[tokio::test]
async fn setup_job_is_renamed_exactly_when_its_pod_template_changes() {
    let cluster = testkit::cluster().await;
    let id = new_store_id();
    let local = Some("values-local.yaml");
    let first = render(&cluster, &id, local, &[]);
    let again = render(&cluster, &id, local, &[]);
    let retitled = render(
        &cluster,
        &id,
        local,
        &["--set-string", "siteTitle=Another title"],
    );
    let job_name = |objs: &[Value]| name(only(objs, "Job", "setup")).to_string();
    // Same values: same Job, so `helm upgrade` has nothing to patch in its immutable template.
    assert_eq!(job_name(&first), job_name(&again));
    // New settings: a new Job (which runs the idempotent setup again) instead of a patch.
    assert_ne!(job_name(&first), job_name(&retitled));
    // The title is the setup Job's business; WordPress is not restarted for it.
    assert_eq!(
        only(&first, "Deployment", "wp"),
        only(&retitled, "Deployment", "wp")
    );
}

#[tokio::test]
async fn cronjob_api_version_follows_the_cluster() {
    let cluster = testkit::cluster().await;
    let id = new_store_id();
    let version = |extra: &[&str]| {
        only(&render(&cluster, &id, None, extra), "CronJob", "cron")["apiVersion"].clone()
    };
    // 1.20 serves only batch/v1beta1; 1.21+ serves batch/v1 (and 1.25+ only that).
    assert_eq!(
        version(&["--api-versions", "batch/v1beta1/CronJob"]),
        "batch/v1beta1"
    );
    assert_eq!(
        version(&[
            "--api-versions",
            "batch/v1beta1/CronJob",
            "--api-versions",
            "batch/v1/CronJob"
        ]),
        "batch/v1"
    );
    assert_eq!(version(&["--api-versions", "batch/v1/CronJob"]), "batch/v1");
    // The real test cluster (Kubernetes 1.20).
    assert_eq!(version(&["--validate"]), "batch/v1beta1");
}

#[tokio::test]
async fn bad_values_are_rejected_with_a_clear_message() {
    let cluster = testkit::cluster().await;
    for (args, expected) in [
        (vec!["--set", "storeId=Store_1"], "must be a DNS label"),
        (vec!["--set", "engine=medusa"], "needs its own chart"),
    ] {
        let mut cmd = cluster.helm();
        cmd.args(["template", "store-abc123"])
            .arg(chart_dir())
            .args(&args);
        let out = cmd.output().expect("run helm");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "helm template {args:?} should fail");
        assert!(
            stderr.contains(expected),
            "helm template {args:?}: {stderr}"
        );
    }
}

// --- admission ---------------------------------------------------------------------------------

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_api_server() {
    let cluster = testkit::cluster().await;
    // Both routing modes: the HTTPRoute needs the Gateway API CRDs (scripts/testcluster applies them).
    for (values, mode) in VALUES_SETS
        .into_iter()
        .flat_map(|v| [(v, "gateway"), (v, "ingress")])
    {
        let ns = StoreNamespace::create(&cluster).await;
        let mode_value = format!("routing.mode={mode}");
        // --validate renders with the API server's real version and API groups.
        let objects = render(
            &cluster,
            &ns.name,
            values,
            &["--validate", "--set", &mode_value],
        );
        let routes = objects.iter().filter(|o| o["kind"] == "HTTPRoute").count();
        let ingresses = objects.iter().filter(|o| o["kind"] == "Ingress").count();
        assert_eq!(
            (routes > 0, ingresses),
            (mode == "gateway", usize::from(mode == "ingress")),
            "values {values:?}, {mode} mode"
        );
        assert!(
            objects.len() > 10,
            "suspiciously few objects: {}",
            objects.len()
        );
        for object in &objects {
            let what = format!(
                "{} {} (values {values:?}, {mode} mode)",
                object["kind"],
                name(object)
            );
            let gvk = gvk_of(object);
            let (resource, caps) = kube::discovery::pinned_kind(&cluster.client, &gvk)
                .await
                .unwrap_or_else(|e| panic!("{what}: API server does not serve {gvk:?}: {e}"));
            let api: Api<DynamicObject> = match caps.scope {
                kube::discovery::Scope::Namespaced => {
                    Api::namespaced_with(cluster.client.clone(), &ns.name, &resource)
                }
                kube::discovery::Scope::Cluster => {
                    panic!("{what}: the chart must stay inside its namespace")
                }
            };
            let obj: DynamicObject =
                serde_json::from_value(object.clone()).expect("dynamic object");
            let params = PostParams {
                dry_run: true,
                field_manager: Some("store-chart-test".into()),
            };
            api.create(&params, &obj)
                .await
                .unwrap_or_else(|e| panic!("{what} rejected by the API server: {e}"));
        }
    }
}

// --- mail ---------------------------------------------------------------------------------------

/// What the control plane passes for a relay with a login (the login itself is in the Secret named).
const MAIL_VALUES: [&str; 10] = [
    "--set-string",
    "mail.relay.host=smtp.relay.example.net",
    "--set-string",
    "mail.relay.cidr=10.99.0.0/24",
    "--set-string",
    "mail.from.address=no-reply@stores.example.com",
    "--set-string",
    "mail.relay.credentialsSecret=relay-login",
    "--set",
    "mail.relay.port=587",
];

#[tokio::test]
async fn a_relay_gets_the_plugin_its_settings_and_exactly_one_way_out() {
    let cluster = testkit::cluster().await;
    let id = new_store_id();
    let objects = render(&cluster, &id, Some("values-local.yaml"), &MAIL_VALUES);
    check_network_policies(&objects, "with a relay");

    // The must-use plugin: a ConfigMap, copied into wp-content/mu-plugins before WordPress starts.
    let plugins = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && name(o) == format!("{id}-mu-plugins"))
        .expect("mu-plugins ConfigMap");
    let php = plugins["data"]["storefleet-mail.php"].as_str().unwrap();
    assert!(
        php.contains("phpmailer_init") && php.contains("isSMTP"),
        "{php}"
    );
    let wordpress = only(&objects, "Deployment", "with a relay");
    let pod = &wordpress["spec"]["template"]["spec"];
    let init = &pod["initContainers"][0];
    assert_eq!(init["name"], "mail-plugin");
    assert_eq!(
        init["command"].as_array().unwrap().last().unwrap(),
        "/var/www/html/wp-content/mu-plugins/storefleet-mail.php"
    );
    assert_eq!(init["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["configMap"]["name"] == format!("{id}-mu-plugins"))
    );

    // Settings from env in every pod that runs WordPress code; the login only by secretKeyRef.
    let job = only(&objects, "Job", "with a relay");
    let cron = only(&objects, "CronJob", "with a relay");
    let containers = [
        &pod["containers"][0],
        &job["spec"]["template"]["spec"]["containers"][0],
        &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0],
    ];
    for container in containers {
        let env = container_env(container);
        let whose = format!("container {}", container["name"]);
        assert_eq!(
            env["STOREFLEET_SMTP_HOST"], "smtp.relay.example.net",
            "{whose}"
        );
        assert_eq!(env["STOREFLEET_SMTP_PORT"], "587", "{whose}");
        assert_eq!(env["STOREFLEET_SMTP_TLS"], "starttls", "{whose}");
        assert_eq!(
            env["STOREFLEET_MAIL_FROM"], "no-reply@stores.example.com",
            "{whose}"
        );
        for (var, key) in [
            ("STOREFLEET_SMTP_USERNAME", "username"),
            ("STOREFLEET_SMTP_PASSWORD", "password"),
        ] {
            let entry = container["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == var)
                .unwrap_or_else(|| panic!("{whose}: no {var}"));
            assert!(entry["value"].is_null(), "{whose}: {var} is a plain value");
            assert_eq!(
                entry["valueFrom"]["secretKeyRef"],
                json!({"name": "relay-login", "key": key}),
                "{whose}"
            );
        }
    }

    // Exactly the relay: its range, its port, TCP, for the pods that send mail and never MariaDB.
    let policy = objects
        .iter()
        .find(|o| o["kind"] == "NetworkPolicy" && name(o) == format!("{id}-allow-mail-relay"))
        .expect("mail relay policy");
    assert_eq!(
        policy["spec"]["egress"],
        json!([{
            "to": [{"ipBlock": {"cidr": "10.99.0.0/24"}}],
            "ports": [{"port": 587, "protocol": "TCP"}],
        }])
    );
    let database =
        &only(&objects, "StatefulSet", "with a relay")["spec"]["template"]["metadata"]["labels"];
    assert!(!selects(&policy["spec"]["podSelector"], database));
    assert!(selects(
        &policy["spec"]["podSelector"],
        &pod_template(wordpress).unwrap()["metadata"]["labels"]
    ));

    // The real API server takes every object the relay adds or changes.
    let ns = StoreNamespace::create(&cluster).await;
    let objects = render(
        &cluster,
        &ns.name,
        Some("values-local.yaml"),
        &[&MAIL_VALUES[..], &["--validate"]].concat(),
    );
    for object in objects.iter().filter(|o| {
        matches!(
            o["kind"].as_str(),
            Some("Deployment" | "Job" | "CronJob" | "NetworkPolicy" | "ConfigMap")
        )
    }) {
        let gvk = gvk_of(object);
        let (resource, _) = kube::discovery::pinned_kind(&cluster.client, &gvk)
            .await
            .unwrap();
        let api: Api<DynamicObject> =
            Api::namespaced_with(cluster.client.clone(), &ns.name, &resource);
        let obj: DynamicObject = serde_json::from_value(object.clone()).unwrap();
        let params = PostParams {
            dry_run: true,
            field_manager: Some("store-chart-test".into()),
        };
        api.create(&params, &obj).await.unwrap_or_else(|e| {
            panic!(
                "{} {} rejected by the API server: {e}",
                object["kind"],
                name(object)
            )
        });
    }
}

#[tokio::test]
async fn without_a_relay_there_is_no_mail_setting_and_no_way_out() {
    let cluster = testkit::cluster().await;
    for values in VALUES_SETS {
        let objects = render(&cluster, &new_store_id(), values, &[]);
        let text = serde_json::to_string(&objects).unwrap();
        for absent in [
            "STOREFLEET_SMTP",
            "STOREFLEET_MAIL",
            "mu-plugins",
            "allow-mail-relay",
        ] {
            assert!(
                !text.contains(absent),
                "values {values:?}: {absent} rendered"
            );
        }
    }
    // A relay without its range or From is refused, not rendered half.
    for (missing, message) in [
        ("mail.relay.cidr", "mail.relay.cidr is required"),
        ("mail.from.address", "mail.from.address is required"),
    ] {
        let mut cmd = cluster.helm();
        cmd.args(["template", "store-abcdef"])
            .arg(chart_dir())
            .args(MAIL_VALUES);
        cmd.args(["--set-string", &format!("{missing}=")]);
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
}

// --- backups ------------------------------------------------------------------------------------

/// What the control plane passes with an S3 backup target (`--backup-s3-cidr`, the endpoint's port).
const BACKUP_TARGET_VALUES: [&str; 4] = [
    "--set",
    "networkPolicy.backupTarget.cidrs={10.0.5.0/24,192.0.2.7/32}",
    "--set",
    "networkPolicy.backupTarget.ports={3900}",
];

/// The pod labels of the control plane's agent Jobs (backups/job.rs): a backup's, and a restore's
/// (which has `storefleet.dev/restore` too).
fn agent_pod_labels(id: &str) -> [Value; 2] {
    let backup = json!({
        "app.kubernetes.io/managed-by": "storefleet",
        "storefleet.dev/store-id": id,
        "storefleet.dev/backup": "backup-20260101-000000-abcdef",
    });
    let mut restore = backup.clone();
    restore["storefleet.dev/restore"] = json!("restore-20260101-000100-fedcba");
    [backup, restore]
}

/// An S3 target opens exactly its ranges and port, to the backup and restore Jobs' pods only; every
/// other policy stays as it was without it (WordPress's internet and mail rules among them).
#[tokio::test]
async fn an_s3_target_opens_exactly_its_ranges_to_the_backup_jobs_only() {
    let cluster = testkit::cluster().await;
    for values in VALUES_SETS {
        let id = new_store_id();
        let what = format!("values {values:?}, S3 target");
        let with_mail = [&MAIL_VALUES[..], &BACKUP_TARGET_VALUES[..]].concat();
        let objects = render(&cluster, &id, values, &with_mail);
        check_network_policies(&objects, &what);
        let policy = only_named(
            &objects,
            "NetworkPolicy",
            &format!("{id}-allow-backup-target"),
            &what,
        );
        assert_eq!(
            policy["spec"],
            json!({
                "podSelector": {"matchExpressions": [
                    {"key": "storefleet.dev/backup", "operator": "Exists"},
                ]},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [
                        {"ipBlock": {"cidr": "10.0.5.0/24"}},
                        {"ipBlock": {"cidr": "192.0.2.7/32"}},
                    ],
                    "ports": [{"port": 3900, "protocol": "TCP"}],
                }],
            }),
            "{what}"
        );
        let selector = &policy["spec"]["podSelector"];
        for labels in agent_pod_labels(&id) {
            assert!(selects(selector, &labels), "{what}: misses {labels}");
        }
        // None of the chart's own pods: WordPress, MariaDB, the setup Job, wp-cron.
        for workload in objects.iter().filter(|o| pod_template(o).is_some()) {
            let labels = &pod_template(workload).unwrap()["metadata"]["labels"];
            assert!(
                !selects(selector, labels),
                "{what}: selects {} {}",
                workload["kind"],
                name(workload)
            );
        }
        // Every other policy is the one rendered without a backup target.
        let others = |objects: &[Value]| -> Vec<Value> {
            objects
                .iter()
                .filter(|o| {
                    o["kind"] == "NetworkPolicy" && !name(o).ends_with("-allow-backup-target")
                })
                .cloned()
                .collect()
        };
        let without = render(&cluster, &id, values, &MAIL_VALUES);
        assert!(
            !without
                .iter()
                .any(|o| name(o).ends_with("-allow-backup-target")),
            "{what}: a backup target rule without a target"
        );
        assert_eq!(others(&objects), others(&without), "{what}");
        // No policy but this one lets an agent pod out of the namespace (DNS aside).
        for other in others(&objects) {
            let spec = &other["spec"];
            let egress_out = spec["egress"].as_array().into_iter().flatten().any(|rule| {
                rule["to"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p.get("ipBlock").is_some())
            });
            if egress_out {
                for labels in agent_pod_labels(&id) {
                    assert!(
                        !selects(&spec["podSelector"], &labels),
                        "{what}: {} lets an agent pod out",
                        name(&other)
                    );
                }
            }
        }
    }

    // The real API server takes the policy.
    let ns = StoreNamespace::create(&cluster).await;
    let objects = render(
        &cluster,
        &ns.name,
        Some("values-local.yaml"),
        &[&BACKUP_TARGET_VALUES[..], &["--validate"]].concat(),
    );
    let policy = only_named(
        &objects,
        "NetworkPolicy",
        &format!("{}-allow-backup-target", ns.name),
        "validated",
    );
    let (resource, _) = kube::discovery::pinned_kind(&cluster.client, &gvk_of(policy))
        .await
        .unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), &ns.name, &resource);
    let params = PostParams {
        dry_run: true,
        field_manager: Some("store-chart-test".into()),
    };
    api.create(&params, &serde_json::from_value(policy.clone()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("the backup target policy rejected by the API server: {e}"));
}

/// Off by default (a filesystem target needs nothing), with network policies off nothing at all, and
/// ranges without a port are refused rather than rendered as "every port".
#[tokio::test]
async fn without_an_s3_target_backup_jobs_have_no_way_out() {
    let cluster = testkit::cluster().await;
    for values in VALUES_SETS {
        let objects = render(&cluster, &new_store_id(), values, &[]);
        assert!(
            !objects
                .iter()
                .any(|o| name(o).ends_with("-allow-backup-target")),
            "values {values:?}: a backup target rule by default"
        );
        let text = serde_json::to_string(&objects).unwrap();
        assert!(!text.contains("storefleet.dev/backup"), "values {values:?}");
    }
    let mut off = BACKUP_TARGET_VALUES.to_vec();
    off.extend(["--set", "networkPolicy.enabled=false"]);
    let objects = render(&cluster, &new_store_id(), Some("values-local.yaml"), &off);
    assert!(!objects.iter().any(|o| o["kind"] == "NetworkPolicy"));
    let mut cmd = cluster.helm();
    cmd.args(["template", "store-abcdef"])
        .arg(chart_dir())
        .args(&BACKUP_TARGET_VALUES[..2]);
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "ranges without ports rendered");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("networkPolicy.backupTarget.ports is required"),
        "{stderr}"
    );
}

// --- install, upgrade, quota, uninstall --------------------------------------------------------

#[tokio::test]
async fn installed_store_becomes_ready_keeps_secrets_enforces_quota_and_uninstalls_cleanly() {
    let cluster = testkit::cluster().await;
    let mut ns = StoreNamespace::create(&cluster).await;
    let id = ns.name.clone();
    let client = cluster.client.clone();
    let values = vec![
        chart_dir().join("values-local.yaml"),
        write_generated_values(&id, "Erster Laden ✓"),
    ];

    // Helm returns once the objects exist; readiness is watched here, as the control plane does.
    run_ok(&mut install_cmd(&cluster, &id, &values));
    wait_until_ready(&cluster, &id).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &id);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &id);
    for pod in pods.list(&ListParams::default()).await.expect("pods") {
        assert_eq!(
            store_label(&pod.metadata.labels),
            Some(id.as_str()),
            "pod {:?}",
            pod.metadata.name
        );
    }
    let claim_list = claims.list(&ListParams::default()).await.expect("claims");
    assert_eq!(claim_list.items.len(), 2, "WordPress and MariaDB volumes");
    for claim in claim_list {
        assert_eq!(
            store_label(&claim.metadata.labels),
            Some(id.as_str()),
            "claim {:?}",
            claim.metadata.name
        );
    }

    // Credentials survive an upgrade with unchanged values, and one with a new title.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &id);
    let credentials = format!("{id}-credentials");
    let before = secrets
        .get(&credentials)
        .await
        .expect("credentials secret")
        .data
        .expect("data");
    for key in [
        "wordpress-admin-user",
        "wordpress-admin-password",
        "wordpress-admin-email",
    ] {
        assert!(before.contains_key(key), "credentials lack {key}");
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &id);
    let setup_jobs = ListParams::default().labels("app.kubernetes.io/component=setup");
    let first_job = jobs.list(&setup_jobs).await.expect("jobs").items;
    assert_eq!(first_job.len(), 1);

    run_ok(&mut install_cmd(&cluster, &id, &values));
    let after = secrets
        .get(&credentials)
        .await
        .expect("credentials secret")
        .data
        .expect("data");
    assert_eq!(before, after, "credentials changed on an unchanged upgrade");
    let same_job = jobs.list(&setup_jobs).await.expect("jobs").items;
    assert_eq!(same_job.len(), 1);
    assert_eq!(
        same_job[0].metadata.uid, first_job[0].metadata.uid,
        "unchanged upgrade replaced the setup Job"
    );

    let retitled = vec![
        values[0].clone(),
        write_generated_values(&id, "Zweiter Laden"),
    ];
    run_ok(&mut install_cmd(&cluster, &id, &retitled));
    let after = secrets
        .get(&credentials)
        .await
        .expect("credentials secret")
        .data
        .expect("data");
    assert_eq!(
        before, after,
        "credentials changed when the store was renamed"
    );
    let first_name = first_job[0].metadata.name.clone();
    wait_for(
        "the renamed store's new setup Job to replace the old one",
        Duration::from_secs(120),
        || {
            let jobs = jobs.clone();
            let setup_jobs = setup_jobs.clone();
            let first_name = first_name.clone();
            async move {
                let items = jobs.list(&setup_jobs).await.ok()?.items;
                (items.len() == 1 && items[0].metadata.name != first_name).then_some(())
            }
        },
    )
    .await;
    wait_until_ready(&cluster, &id).await;

    // A claimed pool store (identityGeneration 1, docs/pool.md): a new admin password and nothing
    // else changed; a second upgrade of that generation keeps it.
    let claim_file = generated_values_dir(&id).join("claimed.yaml");
    std::fs::write(&claim_file, "identityGeneration: 1\n").expect("write values");
    let claimed_values = [retitled.clone(), vec![claim_file]].concat();
    run_ok(&mut install_cmd(&cluster, &id, &claimed_values));
    let claimed = secrets
        .get(&credentials)
        .await
        .expect("credentials secret")
        .data
        .expect("data");
    assert_ne!(
        claimed["wordpress-admin-password"], before["wordpress-admin-password"],
        "a claim kept the pool's admin password"
    );
    for (key, value) in &before {
        if key != "wordpress-admin-password" {
            assert_eq!(claimed.get(key), Some(value), "a claim changed {key}");
        }
    }
    run_ok(&mut install_cmd(&cluster, &id, &claimed_values));
    let again = secrets
        .get(&credentials)
        .await
        .expect("credentials secret")
        .data
        .expect("data");
    assert_eq!(
        claimed, again,
        "the claimed password changed on an unchanged upgrade"
    );

    // The quota is enforced by the API server itself.
    let hog: Pod = serde_json::from_value(json!({
        "metadata": { "name": "beyond-the-quota" },
        "spec": { "containers": [{
            "name": "hog",
            "image": "example.invalid/hog",
            "resources": {
                "requests": { "cpu": "32", "memory": "64Gi" },
                "limits": { "cpu": "32", "memory": "64Gi" }
            }
        }]}
    }))
    .expect("pod");
    match pods.create(&PostParams::default(), &hog).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status.message.contains("exceeded quota"),
                "{}",
                status.message
            );
            assert!(
                status.message.contains(&id),
                "not our quota: {}",
                status.message
            );
        }
        Err(e) => panic!("unexpected error creating a pod beyond the quota: {e}"),
        Ok(_) => {
            let _ = pods
                .delete("beyond-the-quota", &DeleteParams::default())
                .await;
            panic!("a pod beyond the store's quota was accepted");
        }
    }

    // Uninstall, delete the namespace: nothing of the store is left, volumes included.
    run_ok(cluster.helm().args(["uninstall", &id, "--namespace", &id]));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &id);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &id);
    wait_for(
        "helm uninstall to remove the workloads and credentials",
        Duration::from_secs(60),
        || {
            let (deployments, statefulsets, jobs, secrets) = (
                deployments.clone(),
                statefulsets.clone(),
                jobs.clone(),
                secrets.clone(),
            );
            let credentials = credentials.clone();
            async move {
                let lp = ListParams::default();
                let gone = deployments.list(&lp).await.ok()?.items.is_empty()
                    && statefulsets.list(&lp).await.ok()?.items.is_empty()
                    && jobs
                        .list(&lp.clone().labels("app.kubernetes.io/component=setup"))
                        .await
                        .ok()?
                        .items
                        .is_empty()
                    && secrets.get_opt(&credentials).await.ok()?.is_none();
                gone.then_some(())
            }
        },
    )
    .await;

    ns.keep(); // deleted here, and waited for
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&id, &DeleteParams::default())
        .await
        .expect("delete namespace");
    wait_for(
        "the store's namespace to be gone",
        Duration::from_secs(300),
        || {
            let namespaces = namespaces.clone();
            let id = id.clone();
            async move { matches!(namespaces.get_opt(&id).await, Ok(None)).then_some(()) }
        },
    )
    .await;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    wait_for(
        "the store's volumes to be deleted",
        Duration::from_secs(120),
        || {
            let volumes = volumes.clone();
            let id = id.clone();
            async move {
                let left = volumes
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .filter(|pv| {
                        pv.spec
                            .as_ref()
                            .and_then(|s| s.claim_ref.as_ref())
                            .and_then(|c| c.namespace.as_deref())
                            == Some(id.as_str())
                    });
                (left.count() == 0).then_some(())
            }
        },
    )
    .await;
    let _ = std::fs::remove_dir_all(generated_values_dir(&id));
}

/// `helm upgrade --install` exactly as the control plane runs it (no --wait, no --set).
fn install_cmd(cluster: &Cluster, id: &str, values: &[PathBuf]) -> std::process::Command {
    let mut cmd = cluster.helm();
    cmd.args(["upgrade", "--install", id])
        .arg(chart_dir())
        .args(["--namespace", id]);
    for file in values {
        cmd.arg("-f").arg(file);
    }
    cmd
}

/// The control plane's Ready rule: every Deployment and StatefulSet fully ready, setup Job succeeded.
async fn wait_until_ready(cluster: &Cluster, ns: &str) {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), ns);
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), ns);
    wait_for(
        &format!("store {ns} to become ready"),
        Duration::from_secs(300),
        || {
            let (deployments, statefulsets, jobs) =
                (deployments.clone(), statefulsets.clone(), jobs.clone());
            async move {
                let lp = ListParams::default();
                let deployments = deployments.list(&lp).await.ok()?.items;
                let statefulsets = statefulsets.list(&lp).await.ok()?.items;
                let setup = jobs
                    .list(&lp.clone().labels("app.kubernetes.io/component=setup"))
                    .await
                    .ok()?
                    .items;
                let deployments_ready = !deployments.is_empty()
                    && deployments.iter().all(|d| {
                        let status = d.status.clone().unwrap_or_default();
                        status.observed_generation == d.metadata.generation
                            && status.ready_replicas.unwrap_or(0) == d.spec.replicas.unwrap_or(1)
                    });
                let statefulsets_ready = !statefulsets.is_empty()
                    && statefulsets.iter().all(|s| {
                        let status = s.status.clone().unwrap_or_default();
                        status.observed_generation == s.metadata.generation
                            && status.ready_replicas.unwrap_or(0) == s.spec.replicas.unwrap_or(1)
                    });
                let setup_done = setup.len() == 1
                    && setup[0]
                        .status
                        .as_ref()
                        .and_then(|s| s.succeeded)
                        .unwrap_or(0)
                        >= 1;
                (deployments_ready && statefulsets_ready && setup_done).then_some(())
            }
        },
    )
    .await;
}

fn store_label(labels: &Option<BTreeMap<String, String>>) -> Option<&str> {
    labels
        .as_ref()?
        .get("storefleet.dev/store-id")
        .map(String::as_str)
}

// --- contract checks on rendered manifests ---------------------------------------------------

/// The pod template of a workload (Deployment, StatefulSet, Job, CronJob).
fn pod_template(object: &Value) -> Option<&Value> {
    let spec = &object["spec"];
    spec.get("template").or_else(|| {
        spec.get("jobTemplate")
            .and_then(|j| j["spec"].get("template"))
    })
}

fn check_labels(objects: &[Value], id: &str, what: &str) {
    let expect = |labels: &Value, whose: &str| {
        assert_eq!(
            labels["storefleet.dev/store-id"], id,
            "{what}: {whose} lacks the store id label"
        );
        assert_eq!(labels["app.kubernetes.io/instance"], id, "{whose} ({what})");
        assert_eq!(
            labels["app.kubernetes.io/managed-by"], "Helm",
            "{whose} ({what})"
        );
        assert!(
            labels["app.kubernetes.io/name"].is_string(),
            "{whose} ({what})"
        );
    };
    for object in objects {
        let whose = format!("{} {}", object["kind"], name(object));
        expect(&object["metadata"]["labels"], &whose);
        if let Some(template) = pod_template(object) {
            expect(
                &template["metadata"]["labels"],
                &format!("pod template of {whose}"),
            );
        }
        if let Some(template) = object["spec"].get("jobTemplate") {
            expect(
                &template["metadata"]["labels"],
                &format!("job template of {whose}"),
            );
        }
        for claim in object["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            expect(
                &claim["metadata"]["labels"],
                &format!("volume claim template of {whose}"),
            );
        }
    }
}

fn check_workloads(objects: &[Value], what: &str) {
    let component = |o: &Value| {
        pod_template(o).expect("pod template")["metadata"]["labels"]["app.kubernetes.io/component"]
            .clone()
    };
    assert_eq!(
        component(only(objects, "Deployment", what)),
        "wordpress",
        "{what}"
    );
    assert_eq!(
        component(only(objects, "StatefulSet", what)),
        "database",
        "{what}"
    );
    assert_eq!(component(only(objects, "CronJob", what)), "cron", "{what}");
    let job = only(objects, "Job", what);
    assert_eq!(component(job), "setup", "{what}");
    assert!(
        job["spec"]["ttlSecondsAfterFinished"].is_null(),
        "{what}: the setup Job must stay"
    );
    for object in objects {
        assert!(
            object["metadata"]["annotations"]["helm.sh/hook"].is_null(),
            "{what}: {} is a Helm hook; helm must return right after creating objects",
            name(object)
        );
    }
    // One pod on a ReadWriteOnce volume: a surge pod would wait forever on another node.
    assert_eq!(
        only(objects, "Deployment", what)["spec"]["strategy"]["type"],
        "Recreate",
        "{what}"
    );
    // The Jobs that mount the ReadWriteOnce WordPress volume must run on WordPress's node.
    let wordpress =
        &pod_template(only(objects, "Deployment", what)).expect("pod")["metadata"]["labels"];
    for kind in ["Job", "CronJob"] {
        let pod = &pod_template(only(objects, kind, what)).expect("pod template")["spec"];
        let terms =
            &pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        let beside = terms.as_array().into_iter().flatten().any(|t| {
            t["topologyKey"] == "kubernetes.io/hostname" && selects(&t["labelSelector"], wordpress)
        });
        assert!(
            beside,
            "{what}: the {kind} is not placed beside the WordPress pod"
        );
    }
    let account = only(objects, "ServiceAccount", what);
    assert_eq!(account["automountServiceAccountToken"], false, "{what}");
}

fn check_containers(objects: &[Value], what: &str) {
    let mut seen = 0;
    for object in objects {
        let Some(pod) = pod_template(object).and_then(|t| t.get("spec")) else {
            continue;
        };
        let whose = format!("{} {} ({what})", object["kind"], name(object));
        assert_eq!(
            pod["automountServiceAccountToken"], false,
            "{whose}: token mounted"
        );
        assert!(
            pod["hostNetwork"].is_null() && pod["hostPID"].is_null() && pod["hostIPC"].is_null(),
            "{whose}"
        );
        // Store namespaces enforce the `restricted` Pod Security Standard: only these volume types.
        for volume in pod["volumes"].as_array().into_iter().flatten() {
            let kinds: Vec<&String> = volume
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "name")
                .collect();
            assert!(
                kinds.iter().all(|k| [
                    "configMap",
                    "csi",
                    "downwardAPI",
                    "emptyDir",
                    "ephemeral",
                    "persistentVolumeClaim",
                    "projected",
                    "secret"
                ]
                .contains(&k.as_str())),
                "{whose}: volume {volume} is not allowed under the restricted Pod Security Standard"
            );
        }
        let containers = ["initContainers", "containers"]
            .iter()
            .flat_map(|k| pod[*k].as_array().cloned().unwrap_or_default());
        for container in containers {
            seen += 1;
            let whose = format!("container {} of {whose}", container["name"]);
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        container["resources"][bound][resource].is_string(),
                        "{whose}: no {bound}.{resource}"
                    );
                }
            }
            let sc = &container["securityContext"];
            let psc = &pod["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{whose}");
            assert_ne!(sc["privileged"], true, "{whose}");
            assert!(
                container["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|p| p["hostPort"].is_null()),
                "{whose}: hostPort"
            );
            let drops = sc["capabilities"]["drop"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                drops.contains(&json!("ALL")),
                "{whose}: capabilities not dropped"
            );
            assert!(
                sc["capabilities"]["add"].is_null(),
                "{whose}: adds capabilities"
            );
            let either = |key: &str| {
                if sc[key].is_null() {
                    psc[key].clone()
                } else {
                    sc[key].clone()
                }
            };
            assert_eq!(either("runAsNonRoot"), true, "{whose}");
            assert_ne!(either("runAsUser"), 0, "{whose}");
            assert_eq!(
                either("seccompProfile")["type"],
                "RuntimeDefault",
                "{whose}"
            );
            if !matches!(object["kind"].as_str(), Some("Job" | "CronJob")) {
                assert!(
                    container["readinessProbe"].is_object(),
                    "{whose}: no readiness probe"
                );
                assert!(
                    container["livenessProbe"].is_object(),
                    "{whose}: no liveness probe"
                );
            }
        }
    }
    assert_eq!(
        seen, 4,
        "{what}: expected the WordPress, MariaDB, setup and wp-cron containers"
    );
}

fn check_network_policies(objects: &[Value], what: &str) {
    let policies: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "NetworkPolicy")
        .collect();
    let default_deny = policies.iter().any(|p| {
        let spec = &p["spec"];
        let types = spec["policyTypes"].as_array().cloned().unwrap_or_default();
        spec["podSelector"] == json!({})
            && types.contains(&json!("Ingress"))
            && types.contains(&json!("Egress"))
            && spec["ingress"].as_array().is_none_or(|r| r.is_empty())
            && spec["egress"].as_array().is_none_or(|r| r.is_empty())
    });
    assert!(
        default_deny,
        "{what}: no default-deny policy (all pods, Ingress+Egress, no rules)"
    );

    let pod_labels =
        |kind: &str| only(objects, kind, what)["spec"]["template"]["metadata"]["labels"].clone();
    let (wordpress, database) = (pod_labels("Deployment"), pod_labels("StatefulSet"));
    for policy in &policies {
        let spec = &policy["spec"];
        let whose = format!("policy {} ({what})", name(policy));
        let from_outside = spec["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|rule| {
                rule["from"].as_array().into_iter().flatten().any(|peer| {
                    peer.get("namespaceSelector").is_some() || peer.get("ipBlock").is_some()
                })
            });
        if from_outside {
            assert!(selects(&spec["podSelector"], &wordpress), "{whose}");
            assert!(
                !selects(&spec["podSelector"], &database),
                "{whose}: opens the database to other namespaces"
            );
        }
        let to_outside = spec["egress"].as_array().into_iter().flatten().any(|rule| {
            rule["to"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|peer| peer.get("ipBlock").is_some())
        });
        if to_outside {
            assert!(
                !selects(&spec["podSelector"], &database),
                "{whose}: lets the database reach the internet"
            );
        }
    }
}

/// Whether a label selector (matchLabels and matchExpressions) selects pods with these labels.
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels[k].as_str();
    let labels_match = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let expressions_match = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => label(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => label(key).is_some(),
                Some("DoesNotExist") => label(key).is_none(),
                other => panic!("unknown selector operator {other:?}"),
            }
        });
    labels_match && expressions_match
}

fn check_credentials(objects: &[Value], id: &str, what: &str) {
    let secret = only(objects, "Secret", what);
    assert_eq!(name(secret), format!("{id}-credentials"), "{what}");
    let data = secret["data"].as_object().expect("secret data");
    for key in [
        "wordpress-admin-user",
        "wordpress-admin-password",
        "wordpress-admin-email",
        "mariadb-password",
        "mariadb-root-password",
    ] {
        assert!(data.contains_key(key), "{what}: credentials lack {key}");
    }
    let values_files: String = VALUES_SETS
        .iter()
        .map(|f| {
            std::fs::read_to_string(chart_dir().join(f.unwrap_or("values.yaml")))
                .expect("values file")
        })
        .collect();
    let others: Vec<String> = objects
        .iter()
        .filter(|o| *o != secret)
        .map(Value::to_string)
        .collect();
    let mut generated = 0;
    for (key, encoded) in data {
        if !is_generated_credential(key) {
            continue;
        }
        generated += 1;
        let encoded = encoded.as_str().expect("base64 string");
        let plain = String::from_utf8(decode_base64(encoded)).expect("utf-8 credential");
        assert!(
            plain.len() >= 24,
            "{what}: {key} is only {} characters",
            plain.len()
        );
        for text in others.iter().chain(std::iter::once(&values_files)) {
            assert!(
                !text.contains(&plain) && !text.contains(encoded),
                "{what}: {key} appears outside the Secret"
            );
        }
    }
    // Root and user passwords, admin password, eight WordPress salts.
    assert_eq!(generated, 11, "{what}");
}

/// The store (WordPress, MariaDB, a wp-cron run, two setup Jobs overlapping during an upgrade)
/// fits its quota.
fn check_quota_fits(objects: &[Value], what: &str) {
    let quota = &only(objects, "ResourceQuota", what)["spec"]["hard"];
    let hard = |key: &str| {
        quantity(
            quota[key]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: quota lacks {key}")),
        )
    };
    let mut used: BTreeMap<&str, f64> = BTreeMap::new();
    let mut pods = 0.0;
    for object in objects {
        let copies = match object["kind"].as_str() {
            Some("Deployment") | Some("StatefulSet") => {
                object["spec"]["replicas"].as_f64().unwrap_or(1.0)
            }
            Some("Job") => 2.0,
            Some("CronJob") => 1.0, // concurrencyPolicy Forbid
            _ => continue,
        };
        pods += copies;
        let containers = &pod_template(object).expect("pod template")["spec"]["containers"];
        for container in containers.as_array().into_iter().flatten() {
            for (key, bound, resource) in [
                ("requests.cpu", "requests", "cpu"),
                ("requests.memory", "requests", "memory"),
                ("limits.cpu", "limits", "cpu"),
                ("limits.memory", "limits", "memory"),
            ] {
                let amount = quantity(
                    container["resources"][bound][resource]
                        .as_str()
                        .unwrap_or("0"),
                );
                *used.entry(key).or_default() += copies * amount;
            }
        }
    }
    let mut claims = Vec::new();
    for object in objects {
        if object["kind"] == "PersistentVolumeClaim" {
            claims.push(&object["spec"]);
        }
        for template in object["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            claims.push(&template["spec"]);
        }
    }
    let storage: f64 = claims
        .iter()
        .map(|c| {
            quantity(
                c["resources"]["requests"]["storage"]
                    .as_str()
                    .unwrap_or("0"),
            )
        })
        .sum();
    for (key, amount) in &used {
        assert!(
            *amount <= hard(key),
            "{what}: the store needs {key}={amount}, quota allows {}",
            hard(key)
        );
    }
    assert!(pods <= hard("pods"), "{what}: pods");
    assert!(
        claims.len() as f64 <= hard("persistentvolumeclaims"),
        "{what}: claims"
    );
    assert!(storage <= hard("requests.storage"), "{what}: storage");
}

/// A Kubernetes quantity (`250m`, `2`, `512Mi`, `1G`) in base units.
fn quantity(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("bad quantity {text:?}"));
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        _ => panic!("unknown quantity suffix in {text:?}"),
    };
    number * factor
}

fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET
            .iter()
            .position(|c| *c == byte)
            .expect("base64 character") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

// --- helpers -----------------------------------------------------------------------------------

/// charts/store, or the chart at STOREFLEET_STORE_CHART (to try the tests on a modified copy).
fn chart_dir() -> PathBuf {
    std::env::var_os("STOREFLEET_STORE_CHART")
        .map(PathBuf::from)
        .unwrap_or_else(|| testkit::workspace_root().join("charts/store"))
}

/// A fresh id shaped like the control plane's (`store-` + 6 hex).
fn new_store_id() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("store-{:06x}", hasher.finish() & 0xff_ffff)
}

fn host_for(id: &str, values: Option<&str>) -> String {
    match values {
        Some("values-prod.yaml") => format!("{id}.stores.example.com"),
        _ => format!("{id}.localhost"),
    }
}

fn generated_values_dir(id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("storefleet-store-chart-{id}"))
}

/// The values file the control plane writes for a store (never --set: no escaping problems).
fn write_generated_values(id: &str, title: &str) -> PathBuf {
    let dir = generated_values_dir(id);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hasher.write(title.as_bytes());
    let file = dir.join(format!("generated-{:016x}.yaml", hasher.finish()));
    let values = json!({
        "storeId": id,
        "host": format!("{id}.localhost"),
        "siteTitle": title,
        "siteUrl": format!("http://{id}.localhost"),
    });
    std::fs::write(&file, serde_yaml::to_string(&values).expect("yaml")).expect("write values");
    file
}

fn render(cluster: &Cluster, release: &str, values: Option<&str>, extra: &[&str]) -> Vec<Value> {
    let files: Vec<PathBuf> = values.into_iter().map(|f| chart_dir().join(f)).collect();
    render_with(cluster, release, &files, extra)
}

fn render_with(cluster: &Cluster, release: &str, values: &[PathBuf], extra: &[&str]) -> Vec<Value> {
    let mut cmd = cluster.helm();
    cmd.args(["template", release])
        .arg(chart_dir())
        .args(["--namespace", release]);
    for file in values {
        cmd.arg("-f").arg(file);
    }
    cmd.args(extra);
    let yaml = run_ok(&mut cmd);
    serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn only<'a>(objects: &'a [Value], kind: &str, what: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "{what}: expected exactly one {kind}");
    found[0]
}

fn only_named<'a>(objects: &'a [Value], kind: &str, object_name: &str, what: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && name(o) == object_name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: expected exactly one {kind} {object_name}"
    );
    found[0]
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn container_env(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn gvk_of(object: &Value) -> GroupVersionKind {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, object["kind"].as_str().expect("kind"))
}

/// A namespace named like a store id, deleted (without waiting) when dropped.
struct StoreNamespace {
    name: String,
    kubeconfig: PathBuf,
    keep: bool,
}

impl StoreNamespace {
    async fn create(cluster: &Cluster) -> Self {
        let name = new_store_id();
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { "storefleet.dev/test": "true" } }
        }))
        .expect("namespace");
        Api::<Namespace>::all(cluster.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        StoreNamespace {
            name,
            kubeconfig: cluster.kubeconfig.clone(),
            keep: false,
        }
    }

    fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for StoreNamespace {
    fn drop(&mut self) {
        if self.keep || std::env::var_os("STOREFLEET_KEEP_NAMESPACES").is_some() {
            return;
        }
        let _ = std::process::Command::new("kubectl")
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

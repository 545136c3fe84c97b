//! Backups as Kubernetes objects on the real API server: a `StoreBackup` gets a Job in the store's
//! namespace (its spec checked here as the API server stored it: argv, env from the copied Secret,
//! resources, volumes, owner) and is judged by its manifest on the target, never by the Job alone.
//!
//! The kubelet stand-in ends Job pods Succeeded without running them, so the agent never runs here:
//! a backup whose Job "succeeded" without leaving a manifest must end `Failed` with that reason.
//! To see the other outcomes, this test writes backups on the target itself with the archive's
//! writer, under the ids it then asks for (standing in for the agent, which
//! `tests/backups_agent.rs` runs for real against MariaDB).
//!
//! With an S3 target, `--backup-s3-cidr` and the endpoint's port reach each store's release as the
//! NetworkPolicy that lets exactly the backup Jobs out to the endpoint.
mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::SelectorExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storefleet::backups::controller::NO_MANIFEST;
use storefleet::backups::{BackupId, BackupPhase, PlatformKey, StoreBackup, StoreBackupSpec};
use storefleet::crd::LABEL_INSTANCE;
use support::backups::write_backup;
use support::{Options, READY_TIMEOUT, Server};

const AGENT_IMAGE: &str = "registry.example/storefleet:backup-test";
const JUDGED: Duration = Duration::from_secs(120);

/// A failed test leaves its StoreBackups behind with the controller's finalizer and no controller
/// to honour it: this strips and deletes them, so the shared cluster stays clean.
struct Leftovers {
    cluster: testkit::Cluster,
    instance: String,
}

impl Leftovers {
    fn of(server: &Server) -> Self {
        Self {
            cluster: server.cluster.clone(),
            instance: server.instance.clone(),
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let selector = format!("{LABEL_INSTANCE}={}", self.instance);
        let Ok(out) = self
            .cluster
            .kubectl()
            .args(["get", "storebackups", "-l", &selector, "-o", "name"])
            .output()
        else {
            return;
        };
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            let strip = r#"{"metadata":{"finalizers":null}}"#;
            let _ = self
                .cluster
                .kubectl()
                .args(["patch", name, "--type=merge", "-p", strip])
                .output();
            let _ = self
                .cluster
                .kubectl()
                .args(["delete", name, "--wait=false"])
                .output();
        }
    }
}

fn new_backup_id() -> BackupId {
    BackupId::new(chrono::Utc::now())
}

async fn ask(server: &Server, store: &str, id: &BackupId) {
    let backups = Api::<StoreBackup>::all(server.cluster.client.clone());
    let mut b = StoreBackup::new(
        id.as_str(),
        StoreBackupSpec {
            store_id: store.into(),
        },
    );
    b.metadata.labels = Some([(LABEL_INSTANCE.to_owned(), server.instance.clone())].into());
    backups.create(&PostParams::default(), &b).await.unwrap();
}

async fn judged(server: &Server, id: &BackupId) -> StoreBackup {
    let backups = Api::<StoreBackup>::all(server.cluster.client.clone());
    testkit::wait_for(&format!("backup {id} judged"), JUDGED, || async {
        let b = backups.get(id.as_str()).await.ok()?;
        b.phase().filter(|p| p.is_finished()).map(|_| b)
    })
    .await
}

fn message(b: &StoreBackup) -> String {
    b.status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn backups_run_as_jobs_and_are_judged_by_their_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backups");
    let key_text = "7f".repeat(32);
    let key = PlatformKey::parse(&key_text).unwrap();
    std::fs::write(dir.path().join("key"), &key_text).unwrap();
    let mut server = Server::start(
        "backups",
        Options {
            extra_args: [
                "--backup-dir",
                target.to_str().unwrap(),
                "--backup-key-file",
                dir.path().join("key").to_str().unwrap(),
                "--backup-agent-image",
                AGENT_IMAGE,
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    )
    .await;
    let _leftovers = Leftovers::of(&server);
    let client = server.cluster.client.clone();

    // A store that does not exist: refused with the reason, no Job anywhere.
    let nowhere = new_backup_id();
    ask(&server, "store-ffffff", &nowhere).await;
    let b = judged(&server, &nowhere).await;
    assert_eq!(b.phase(), Some(BackupPhase::Failed));
    assert_eq!(message(&b), "store store-ffffff does not exist");

    let r = server.create(json!({ "name": "Backed up" })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let store = r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_phase(&store, "Ready", READY_TIMEOUT).await;
    let jobs = Api::<Job>::namespaced(client.clone(), &store);
    // A filesystem target's Jobs mount a claim: no way out of the namespace is opened for them.
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &store);
    assert!(
        policies
            .get_opt(&format!("{store}-allow-backup-target"))
            .await
            .unwrap()
            .is_none()
    );

    // Without the target's claim in the store's namespace: said at once, not a Job stuck Pending.
    let unclaimed = new_backup_id();
    ask(&server, &store, &unclaimed).await;
    let b = judged(&server, &unclaimed).await;
    assert_eq!(b.phase(), Some(BackupPhase::Failed));
    assert!(
        message(&b).contains("PersistentVolumeClaim storefleet-backups does not exist"),
        "{}",
        message(&b)
    );
    assert!(jobs.get_opt(unclaimed.as_str()).await.unwrap().is_none());

    // The operator's claim on the backup storage (here the stand-in provisions any claim).
    support::backups::create_job_claim(&client, &store).await;

    // 1. The stand-in "runs" the Job: it succeeds, and no manifest exists. Honest failure.
    let honest = new_backup_id();
    ask(&server, &store, &honest).await;
    let b = judged(&server, &honest).await;
    assert_eq!(b.phase(), Some(BackupPhase::Failed), "{:?}", b.status);
    assert_eq!(message(&b), NO_MANIFEST);
    assert_eq!(
        b.status.as_ref().unwrap().job.as_deref(),
        Some(honest.as_str())
    );

    // Its Job, as the API server holds it.
    let job = jobs.get(honest.as_str()).await.unwrap();
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("StoreBackup", honest.as_str())
    );
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    let pod = spec.template.spec.as_ref().unwrap();
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.image.as_deref(), Some(AGENT_IMAGE));
    assert_eq!(
        init.args.as_ref().unwrap(),
        &["backup-agent", "install", "--to", "/agent/storefleet"]
    );
    let agent = &pod.containers[0];
    let mariadb = Api::<StatefulSet>::namespaced(client.clone(), &store)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let mariadb_image = mariadb.spec.template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(
        agent.image, mariadb_image,
        "the agent runs beside MariaDB's own clients"
    );
    assert_eq!(agent.command.as_ref().unwrap(), &["/agent/storefleet"]);
    assert_eq!(agent.args.as_ref().unwrap(), &["backup-agent", "backup"]);
    let env: std::collections::BTreeMap<_, _> = agent
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), serde_json::to_value(e).unwrap()))
        .collect();
    assert_eq!(env["STOREFLEET_BACKUP_ID"]["value"], honest.as_str());
    assert_eq!(env["STOREFLEET_STORE_ID"]["value"], store.as_str());
    assert_eq!(env["STOREFLEET_BACKUP_DIR"]["value"], "/backups");
    assert_eq!(
        env["STOREFLEET_WP_CONTENT"]["value"],
        "/wordpress/wp-content"
    );
    assert_eq!(
        env["STOREFLEET_BACKUP_KEY"]["valueFrom"]["secretKeyRef"],
        json!({"name": "storefleet-backup", "key": "key", "optional": false})
    );
    // The database password from the store's own Secret, never a literal.
    assert!(env["STOREFLEET_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"].is_string());
    assert!(env["STOREFLEET_DB_PASSWORD"].get("value").is_none());
    let text = serde_json::to_string(&job).unwrap();
    assert!(!text.contains(&key_text), "the key is never in the Job");
    for c in [init, agent] {
        let r = c.resources.as_ref().unwrap();
        for k in ["cpu", "memory"] {
            assert!(
                r.requests.as_ref().unwrap().contains_key(k),
                "{} requests {k}",
                c.name
            );
            assert!(
                r.limits.as_ref().unwrap().contains_key(k),
                "{} limits {k}",
                c.name
            );
        }
    }
    let claims: Vec<_> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.clone())
        })
        .collect();
    assert!(
        claims.contains(&"storefleet-backups".to_owned()),
        "{claims:?}"
    );
    assert!(
        claims.iter().any(|c| c.ends_with("-wordpress")),
        "{claims:?}"
    );
    // The key, copied into the store's namespace for the Job.
    let secret = Api::<Secret>::namespaced(client.clone(), &store)
        .get("storefleet-backup")
        .await
        .unwrap();
    assert_eq!(secret.data.unwrap()["key"].0, key_text.as_bytes());

    // A control plane killed with -9 while a backup runs: after the restart the same Job (its name
    // is the backup id) is judged, none is made twice, and the verdict is the honest one.
    let killed = new_backup_id();
    ask(&server, &store, &killed).await;
    testkit::wait_for("the backup Job made", JUDGED, || async {
        jobs.get_opt(killed.as_str()).await.unwrap().map(|_| ())
    })
    .await;
    server.kill9();
    server.restart().await;
    let b = judged(&server, &killed).await;
    assert_eq!(message(&b), NO_MANIFEST);
    let made = jobs
        .list(&kube::api::ListParams::default().labels(&format!("storefleet.dev/backup={killed}")))
        .await
        .unwrap();
    assert_eq!(made.items.len(), 1);

    // 2. A whole, sealed backup at the id: Succeeded, with its sizes.
    let good = new_backup_id();
    write_backup(&target, &key, &store, &good).await;
    ask(&server, &store, &good).await;
    let b = judged(&server, &good).await;
    assert_eq!(b.phase(), Some(BackupPhase::Succeeded), "{:?}", b.status);
    let st = b.status.clone().unwrap();
    assert_eq!(st.database_bytes, Some(32));
    assert_eq!(st.files_bytes, Some(1024));
    assert!(st.stored_bytes.unwrap() > 64, "{st:?}");
    assert!(st.size.clone().unwrap().ends_with(" B"));
    // No word left over from its last step ("the agent runs in the store's namespace").
    assert_eq!(st.message, None, "{st:?}");

    // Metrics: the verdicts by outcome, the size of the success, and the store's newest successful
    // backup time (refilled from the objects by the next pass of the controller).
    let finished = st.finished_at.unwrap().0.as_second();
    let want = format!(
        "storefleet_store_last_successful_backup_timestamp_seconds{{store_id=\"{store}\"}} {finished}"
    );
    let text = testkit::wait_for("the last successful backup in /metrics", JUDGED, || async {
        let text = server
            .req(Method::GET, "/metrics")
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().any(|l| l.starts_with(&want)).then_some(text)
    })
    .await;
    let sample = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in:\n{text}"))
    };
    // Since the restart: the killed one failed (no manifest), this one succeeded.
    assert_eq!(
        sample(r#"storefleet_backup_duration_seconds_count{outcome="failure"}"#),
        1.0
    );
    assert_eq!(
        sample(r#"storefleet_backup_duration_seconds_count{outcome="success"}"#),
        1.0
    );
    assert_eq!(sample("storefleet_backup_size_bytes_count"), 1.0);
    assert_eq!(
        sample("storefleet_backup_size_bytes_sum"),
        st.stored_bytes.unwrap() as f64
    );

    // 3. A manifest altered on the target: refused with the reason.
    let altered = new_backup_id();
    write_backup(&target, &key, &store, &altered).await;
    let manifest = target
        .join(&store)
        .join(altered.as_str())
        .join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"0.1.0\"", "\"0.1.1\"")).unwrap();
    ask(&server, &store, &altered).await;
    let b = judged(&server, &altered).await;
    assert_eq!(b.phase(), Some(BackupPhase::Failed));
    assert!(
        message(&b).contains("manifest was altered"),
        "{}",
        message(&b)
    );

    // Deleting a backup deletes its data (the finalizer), then the object.
    let backups = Api::<StoreBackup>::all(client.clone());
    for id in [&nowhere, &unclaimed, &honest, &killed, &good, &altered] {
        backups
            .delete(id.as_str(), &DeleteParams::default())
            .await
            .unwrap();
    }
    for id in [&nowhere, &unclaimed, &honest, &killed, &good, &altered] {
        testkit::wait_for(&format!("backup {id} gone"), JUDGED, || async {
            backups
                .get_opt(id.as_str())
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
    assert!(
        !target.join(&store).join(good.as_str()).exists(),
        "the good backup's data is gone"
    );
    assert!(!target.join(&store).join(altered.as_str()).exists());
}

/// With an S3 target, the control plane opens the endpoint to each store's backup and restore Jobs:
/// `--backup-s3-cidr` and the endpoint URL's port reach the store's release as
/// `networkPolicy.backupTarget`, the release has the policy, and it selects the Job the backup
/// controller then makes (and no pod of the store chart's own). The endpoint answers nothing here:
/// the Job is made before the target is asked anything.
#[tokio::test]
async fn an_s3_targets_addresses_reach_each_release_as_the_backup_jobs_way_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "7f".repeat(32)).unwrap();
    let server = Server::start(
        "backups-s3",
        Options {
            extra_args: [
                "--backup-s3-bucket",
                "storefleet-backups",
                "--backup-s3-endpoint",
                "http://127.0.0.1:9",
                "--backup-s3-allow-http",
                "--backup-s3-path-style",
                // Wider than the endpoint's /32, and a second range: given ranges are passed as given.
                "--backup-s3-cidr",
                "127.0.0.0/8,192.0.2.7/32",
                "--backup-schedule",
                "off",
                "--backup-key-file",
                dir.path().join("key").to_str().unwrap(),
                "--backup-agent-image",
                AGENT_IMAGE,
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    )
    .await;
    let _leftovers = Leftovers::of(&server);
    let client = server.cluster.client.clone();
    let r = server.create(json!({ "name": "Backed up to S3" })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let store = r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_phase(&store, "Ready", READY_TIMEOUT).await;

    // The release's values: the ranges as given, the endpoint URL's port.
    let values = testkit::run_ok(
        server
            .cluster
            .helm()
            .args(["get", "values", "--all", "-o", "json", &store, "-n", &store]),
    );
    let values: Value = serde_json::from_str(&values).unwrap();
    assert_eq!(
        values["networkPolicy"]["backupTarget"],
        json!({"cidrs": ["127.0.0.0/8", "192.0.2.7/32"], "ports": [9]})
    );
    // Merged into the environment file's policies, not replacing them.
    assert_eq!(values["networkPolicy"]["enabled"], true);
    assert!(values["networkPolicy"]["internetEgress"]["enabled"].is_boolean());

    // The policy, as the API server holds it.
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), &store)
        .get(&format!("{store}-allow-backup-target"))
        .await
        .unwrap();
    let spec = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(spec["policyTypes"], json!(["Egress"]));
    assert_eq!(
        spec["egress"],
        json!([{
            "to": [{"ipBlock": {"cidr": "127.0.0.0/8"}}, {"ipBlock": {"cidr": "192.0.2.7/32"}}],
            "ports": [{"port": 9, "protocol": "TCP"}],
        }])
    );
    let selector: kube::core::Selector = serde_json::from_value::<
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    >(spec["podSelector"].clone())
    .unwrap()
    .try_into()
    .unwrap();

    // The backup Job the controller makes is what it selects; the chart's own pods are not.
    let backup = new_backup_id();
    ask(&server, &store, &backup).await;
    let jobs = Api::<Job>::namespaced(client.clone(), &store);
    let job = testkit::wait_for("the backup Job made", JUDGED, || async {
        jobs.get_opt(backup.as_str()).await.unwrap()
    })
    .await;
    let template = job.spec.unwrap().template;
    let pod_labels = template.metadata.unwrap().labels.unwrap();
    assert!(selector.matches(&pod_labels), "{pod_labels:?}");
    // And the endpoint it connects to is the one the policy opens.
    let endpoint = template.spec.unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "STOREFLEET_BACKUP_S3_ENDPOINT")
        .and_then(|e| e.value.clone());
    assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:9"));
    let deployments =
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &store);
    for d in deployments.list(&Default::default()).await.unwrap() {
        let labels = d.spec.template.metadata.unwrap().labels.unwrap();
        assert!(!selector.matches(&labels), "selects {labels:?}");
    }
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &store);
    for s in statefulsets.list(&Default::default()).await.unwrap() {
        let labels = s.spec.template.metadata.unwrap().labels.unwrap();
        assert!(!selector.matches(&labels), "selects {labels:?}");
    }

    // The target never answers, so the backup's finalizer could not delete its data: let it go.
    let backups = Api::<StoreBackup>::all(client.clone());
    backups
        .patch(
            backup.as_str(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    let _ = backups
        .delete(backup.as_str(), &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn the_api_asks_for_lists_reads_and_deletes_a_stores_backups() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "5a".repeat(32)).unwrap();
    let server = Server::start(
        "backups-api",
        Options {
            extra_args: [
                "--backup-dir",
                dir.path().join("backups").to_str().unwrap(),
                "--backup-key-file",
                dir.path().join("key").to_str().unwrap(),
                "--backup-agent-image",
                AGENT_IMAGE,
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    )
    .await;
    let _leftovers = Leftovers::of(&server);
    let r = server.create(json!({ "name": "Mine" })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let store = r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let backups = format!("/stores/{store}/backups");

    let (status, created) = server.call(None, Method::POST, &backups, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["backup_id"].as_str().unwrap().to_owned();
    BackupId::parse(&id).unwrap();
    assert_eq!(created["store_id"], store.as_str());
    let one = format!("{backups}/{id}");
    let (status, listed) = server.call(None, Method::GET, &backups, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["backup_id"], id.as_str());
    let (status, read) = server.call(None, Method::GET, &one, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ["Pending", "Running", "Succeeded", "Failed"].contains(&read["state"].as_str().unwrap()),
        "{read}"
    );

    // Another user sees neither the store nor its backups, and changes nothing.
    let other = server.create_user("eve", "member", 1).await;
    let eve = other["token"].as_str().unwrap();
    for (method, path) in [
        (Method::POST, backups.as_str()),
        (Method::GET, backups.as_str()),
        (Method::GET, one.as_str()),
        (Method::DELETE, one.as_str()),
    ] {
        let (status, body) = server.call(Some(eve), method.clone(), path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_eq!(
            body["type"].as_str().unwrap().rsplit('/').next(),
            Some("not-found")
        );
    }
    // Malformed and unknown ids.
    let (status, body) = server
        .call(None, Method::GET, &format!("{backups}/../x"), None)
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, body) = server
        .call(None, Method::GET, &format!("{backups}/backup-nope"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("not a backup id"),
        "{body}"
    );
    let (status, _) = server
        .call(
            None,
            Method::DELETE,
            &format!("{backups}/backup-nope"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let unknown = format!("{backups}/backup-20200101-000000-000000");
    assert_eq!(
        server.call(None, Method::GET, &unknown, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.call(None, Method::DELETE, &unknown, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = server
        .call(None, Method::POST, "/stores/store-ffffff/backups", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A backup of one store is not reachable under another's id.
    let r = server.create(json!({ "name": "Second" })).await;
    let second = r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = server
        .call(
            None,
            Method::GET,
            &format!("/stores/{second}/backups/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // None of that left anything behind.
    let all = Api::<StoreBackup>::all(server.cluster.client.clone())
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("{LABEL_INSTANCE}={}", server.instance)),
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1, "only the one backup asked for");

    let (status, body) = server.call(None, Method::DELETE, &one, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    testkit::wait_for("the deleted backup gone", JUDGED, || async {
        (server.call(None, Method::GET, &one, None).await.0 == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    let (_, listed) = server.call(None, Method::GET, &backups, None).await;
    assert_eq!(listed, json!([]));

    let audit = server.audit("?limit=500").await;
    let ours: Vec<_> = audit
        .iter()
        .filter(|e| e["action"] == "backup")
        .map(|e| {
            (
                e["outcome"].as_str().unwrap().to_owned(),
                e["store_id"].clone(),
            )
        })
        .collect();
    assert!(
        ours.contains(&("requested".into(), json!(store))),
        "{audit:?}"
    );
    assert!(
        ours.contains(&("deleted".into(), json!(store))),
        "{audit:?}"
    );
    assert_eq!(
        ours.len(),
        2,
        "refused requests change nothing and are not backups: {ours:?}"
    );
}

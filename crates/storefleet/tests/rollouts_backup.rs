//! Fleet rollouts with a backup target (issue 15, the pre-upgrade backup) on the real API server:
//! each store is backed up (a `StoreBackup` named in its progress) before it is upgraded, and only
//! a `Succeeded` backup lets it move; a `Failed` one pauses the rollout with the store untouched;
//! an id recorded by a control plane killed before it made the backup is made after the restart,
//! with that id, once.
//!
//! The kubelet stand-in ends Job pods Succeeded without running them, so the agent never runs here
//! and a backup nobody wrote ends `Failed` (no manifest), honestly. The other tests play the agent:
//! they write a sealed backup on the filesystem target under the id the rollout recorded, as
//! `tests/backups_cluster.rs` does.
mod support;

use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, PostParams};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use storefleet::backups::controller::NO_MANIFEST;
use storefleet::backups::{BackupId, BackupPhase, PlatformKey, StoreBackup};
use storefleet::crd::LABEL_INSTANCE;
use storefleet::rollouts::StoreRollout;
use support::backups::write_backup;
use support::{Options, READY_TIMEOUT, Server, stores_api};

const AGENT_IMAGE: &str = "registry.example/storefleet:backup-test";
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(600);

/// The platform with a filesystem backup target (as `tests/backups_cluster.rs` configures it).
struct Platform {
    server: Server,
    target: std::path::PathBuf,
    key: PlatformKey,
    _dir: tempfile::TempDir,
}

async fn start(test: &str) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backups");
    let key_text = "3c".repeat(32);
    std::fs::write(dir.path().join("key"), &key_text).unwrap();
    let server = Server::start(
        test,
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
    Platform {
        server,
        target,
        key: PlatformKey::parse(&key_text).unwrap(),
        _dir: dir,
    }
}

/// Deletes the instance's StoreBackups while its controller runs (their finalizer removes the data),
/// and, after a failed test (no controller left to honour the finalizer), strips and deletes them,
/// so the shared cluster stays clean.
struct Leftovers {
    cluster: testkit::Cluster,
    instance: String,
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

fn leftovers(server: &Server) -> Leftovers {
    Leftovers {
        cluster: server.cluster.clone(),
        instance: server.instance.clone(),
    }
}

async fn delete_backups(server: &Server, ids: &[String]) {
    let backups = Api::<StoreBackup>::all(server.cluster.client.clone());
    for id in ids {
        backups.delete(id, &DeleteParams::default()).await.unwrap();
    }
    for id in ids {
        testkit::wait_for(&format!("backup {id} gone"), READY_TIMEOUT, || async {
            backups.get_opt(id).await.unwrap().is_none().then_some(())
        })
        .await;
    }
}

/// Ready stores, each with the operator's claim on the backup storage in its namespace (here the
/// stand-in provisions any claim), so a backup Job can start.
async fn create_stores(server: &Server, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = server.create(json!({ "name": format!("Shop {i}") })).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        ids.push(
            r.json::<Value>().await.unwrap()["store_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        server.wait_phase(id, "Ready", READY_TIMEOUT).await;
        support::backups::create_job_claim(&server.cluster.client, id).await;
    }
    ids.sort();
    ids
}

async fn start_rollout(server: &Server, target: &str) -> String {
    let r = server
        .req(Method::POST, "/rollouts")
        .header(header::CONTENT_TYPE, "application/json")
        .body(
            json!({
                "target": target,
                "values": {"wordpress": {"image": {"tag": format!("6.9-{target}")}}},
                "gate_timeout_seconds": 240,
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["rollout_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn wait_rollout(server: &Server, id: &str, phase: &str) -> Value {
    testkit::wait_for(
        &format!("rollout {id} to be {phase}"),
        ROLLOUT_TIMEOUT,
        || async {
            let (status, body) = server.get_json(&format!("/rollouts/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let now = body["phase"].as_str().unwrap_or_default();
            assert!(
                now == phase || !matches!(now, "Completed" | "Aborted" | "Paused"),
                "rollout {id} is {now}, not {phase}: {body:#}"
            );
            (now == phase).then_some(body)
        },
    )
    .await
}

fn events_of(server: &Server, store: &str) -> String {
    testkit::run_ok(server.cluster.kubectl().args([
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &format!("involvedObject.name={store}"),
        "-o",
        "json",
    ]))
}

async fn backup_phase(server: &Server, id: &str) -> (Option<BackupPhase>, String) {
    let b = Api::<StoreBackup>::all(server.cluster.client.clone())
        .get(id)
        .await
        .unwrap();
    let message = b
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    (b.phase(), message)
}

#[tokio::test]
async fn a_failed_pre_upgrade_backup_pauses_the_rollout_with_the_store_untouched() {
    let platform = start("rollout-backup-failed").await;
    let server = &platform.server;
    let _leftovers = leftovers(server);
    let ids = create_stores(server, 2).await;
    let before: Vec<_> = ids.iter().map(|id| server.helm_history(id)).collect();

    let rollout = start_rollout(server, "wp-next").await;
    // Nobody writes the backup (the stand-in's agent does nothing): it fails, and the canary is
    // never upgraded.
    let paused = wait_rollout(server, &rollout, "Paused").await;
    let canary = &paused["stores"][0];
    assert_eq!(canary["store_id"], ids[0].as_str(), "{paused:#}");
    assert_eq!(canary["step"], "Pending", "{paused:#}");
    let backup = canary["backup"].as_str().expect("the canary's backup id");
    BackupId::parse(backup).unwrap();
    let message = paused["message"].as_str().unwrap();
    for part in [ids[0].as_str(), backup, NO_MANIFEST] {
        assert!(message.contains(part), "{part} missing: {paused:#}");
    }
    assert!(paused["paused"].as_bool().unwrap(), "{paused:#}");
    assert_eq!(paused["stores"][1]["step"], "Pending", "{paused:#}");
    assert!(paused["stores"][1]["backup"].is_null(), "{paused:#}");
    assert_eq!(
        backup_phase(server, backup).await,
        (Some(BackupPhase::Failed), NO_MANIFEST.to_owned())
    );

    // No store was touched: the same helm revisions, no target in any spec.
    for (id, history) in ids.iter().zip(&before) {
        assert_eq!(&server.helm_history(id), history, "{id} was upgraded");
        let s = stores_api(&server.cluster.client).get(id).await.unwrap();
        assert!(s.spec.release.is_none(), "{id} got the target");
    }

    // Told everywhere: kubectl, an Event on the Store, the audit log.
    let yaml = testkit::run_ok(server.cluster.kubectl().args([
        "get",
        "storerollouts",
        &rollout,
        "-o",
        "yaml",
    ]));
    assert!(yaml.contains(&format!("backup: {backup}")), "{yaml}");
    let events = events_of(server, &ids[0]);
    assert!(
        events.contains("BackingUp") && events.contains("BackupFailed"),
        "{events}"
    );
    let audit = server.audit(&format!("?store_id={}", ids[0])).await;
    assert!(
        audit.iter().any(|e| e["action"] == "rollout"
            && e["outcome"] == "backup_failed"
            && e["detail"].as_str().unwrap_or_default().contains(backup)),
        "{audit:#?}"
    );

    // Still nothing moves a few passes later.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, still) = server.get_json(&format!("/rollouts/{rollout}")).await;
    assert_eq!(still["phase"], "Paused", "{still:#}");
    assert_eq!(server.helm_history(&ids[0]), before[0]);

    delete_backups(server, &[backup.to_owned()]).await;
}

#[tokio::test]
async fn a_store_is_upgraded_after_its_backup_succeeded() {
    let platform = start("rollout-backup-ok").await;
    let server = &platform.server;
    let _leftovers = leftovers(server);
    let ids = create_stores(server, 1).await;
    let store = &ids[0];
    let before = server.helm_history(store).len();

    let rollout = start_rollout(server, "wp-next").await;
    // This test plays the agent (the stand-in runs none): as soon as the rollout has recorded the
    // backup's id, it writes a sealed backup there. It has time: the id is written before the
    // StoreBackup is made, and the backup controller judges a Job no sooner than its next pass
    // (2 s) after making it.
    let rollouts = Api::<StoreRollout>::all(server.cluster.client.clone());
    let backup = testkit::wait_for("the backup id recorded", ROLLOUT_TIMEOUT, || async {
        let r = rollouts.get(&rollout).await.ok()?;
        r.status?.stores.first()?.backup.clone()
    })
    .await;
    let backup_id = BackupId::parse(&backup).unwrap();
    write_backup(&platform.target, &platform.key, store, &backup_id).await;

    let done = wait_rollout(server, &rollout, "Completed").await;
    let progress = &done["stores"][0];
    assert_eq!(progress["step"], "Upgraded", "{done:#}");
    assert_eq!(progress["backup"], backup.as_str(), "{done:#}");
    assert_eq!(
        backup_phase(server, &backup).await.0,
        Some(BackupPhase::Succeeded)
    );
    // Upgraded once, after the backup.
    let history = server.helm_history(store);
    assert_eq!(history.len(), before + 1, "{history:?}");
    let s = stores_api(&server.cluster.client).get(store).await.unwrap();
    assert_eq!(s.spec.release.unwrap().target, "wp-next");

    let yaml = testkit::run_ok(server.cluster.kubectl().args([
        "get",
        "storerollouts",
        &rollout,
        "-o",
        "yaml",
    ]));
    assert!(yaml.contains(&format!("backup: {backup}")), "{yaml}");
    let events = events_of(server, store);
    assert!(
        events.contains("BackingUp") && events.contains("RolloutStarted"),
        "{events}"
    );

    delete_backups(server, &[backup]).await;
}

#[tokio::test]
async fn a_backup_id_recorded_before_a_kill_is_made_once_with_that_id() {
    let mut platform = start("rollout-backup-restart").await;
    let _leftovers = leftovers(&platform.server);
    let ids = create_stores(&platform.server, 1).await;
    let store = ids[0].clone();
    let before = platform.server.helm_history(&store).len();

    // What a control plane killed with -9 right after writing the id leaves: the rollout's status
    // names the backup, and no StoreBackup of that id exists.
    platform.server.kill9();
    let client = platform.server.cluster.client.clone();
    let rollouts = Api::<StoreRollout>::all(client.clone());
    let name = format!("r-{}", platform.server.instance);
    let rollout: StoreRollout = serde_json::from_value(json!({
        "apiVersion": "storefleet.dev/v1alpha1",
        "kind": "StoreRollout",
        "metadata": {
            "name": name,
            "labels": { LABEL_INSTANCE: platform.server.instance },
        },
        "spec": { "target": { "name": "wp-next", "values": {} } },
    }))
    .unwrap();
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .unwrap();
    let recorded = BackupId::new(chrono::Utc::now());
    rollouts
        .patch_status(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {
                "phase": "Progressing",
                "stores": [{ "storeId": store, "step": "BackingUp", "backup": recorded }],
            }})),
        )
        .await
        .unwrap();
    let backups = Api::<StoreBackup>::all(client.clone());
    assert!(backups.get_opt(recorded.as_str()).await.unwrap().is_none());

    platform.server.restart().await;
    // The restarted controller makes the backup under the recorded id; the test plays the agent
    // for it (the stand-in runs none), as in the test above.
    testkit::wait_for("the recorded backup made", ROLLOUT_TIMEOUT, || async {
        backups
            .get_opt(recorded.as_str())
            .await
            .unwrap()
            .map(|_| ())
    })
    .await;
    write_backup(&platform.target, &platform.key, &store, &recorded).await;

    let done = wait_rollout(&platform.server, &name, "Completed").await;
    assert_eq!(done["stores"][0]["step"], "Upgraded", "{done:#}");
    assert_eq!(done["stores"][0]["backup"], recorded.as_str(), "{done:#}");
    assert_eq!(
        backup_phase(&platform.server, recorded.as_str()).await.0,
        Some(BackupPhase::Succeeded)
    );
    // One backup of the store, not a second one after the restart; one upgrade.
    let of_store: Vec<String> = backups
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|b| b.spec.store_id == store)
        .map(kube::ResourceExt::name_any)
        .collect();
    assert_eq!(of_store, [recorded.to_string()]);
    assert_eq!(platform.server.helm_history(&store).len(), before + 1);

    delete_backups(&platform.server, &of_store).await;
}

//! Clones (`POST /stores` with `from_backup`, `backups/clones`) on the real API server: a bad
//! `from_backup` is a clear 4xx and makes no store; a good one makes a store that is a clone from
//! birth, shows `Restoring` (not Ready) until its restore ended, and gets exactly one restore,
//! derived from the store, that reads the source store's backup.
//!
//! The kubelet stand-in ends Job pods Succeeded without running them, so no agent runs here (it
//! runs for real against MariaDB in `tests/backups_agent.rs`, a clone included). A restore Job
//! that "succeeds" without the agent's word is not a restore: the clone then ends `Failed` with
//! that reason, not Ready with a blank shop, and that is what this test sees. The source backup's
//! data is written on the target by the test with the archive's writer, standing in for the
//! backup agent, at an id whose `StoreBackup` copies the one the API made (its annotations are
//! what the product recorded about the store).
mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storefleet::backups::restores::{RestorePhase, StoreRestore};
use storefleet::backups::{BackupId, BackupPhase, StoreBackup, StoreBackupSpec};
use storefleet::crd::{LABEL_INSTANCE, Store};
use support::backups::write_backup;
use support::{Options, READY_TIMEOUT, Server, problem_kind};

const STEP: Duration = Duration::from_secs(120);

async fn judged(server: &Server, id: &str) -> StoreBackup {
    let backups = Api::<StoreBackup>::all(server.cluster.client.clone());
    testkit::wait_for(&format!("backup {id} judged"), STEP, || async {
        let b = backups.get(id).await.ok()?;
        b.phase().filter(|p| p.is_finished()).map(|_| b)
    })
    .await
}

/// A copy of `made` (a backup the API made, so with the annotations it records) at `id`.
async fn copy_backup(server: &Server, made: &StoreBackup, id: &BackupId) -> StoreBackup {
    let mut b = StoreBackup::new(
        id.as_str(),
        StoreBackupSpec {
            store_id: made.spec.store_id.clone(),
        },
    );
    b.metadata.labels = made.metadata.labels.clone();
    b.metadata.annotations = made.metadata.annotations.clone();
    Api::<StoreBackup>::all(server.cluster.client.clone())
        .create(&PostParams::default(), &b)
        .await
        .unwrap();
    judged(server, id.as_str()).await
}

async fn store_ids(server: &Server) -> Vec<String> {
    let (status, listed) = server.get_json("/stores").await;
    assert_eq!(status, StatusCode::OK);
    let items = listed.get("items").unwrap_or(&listed);
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["store_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_clone_is_refused_cleanly_or_made_from_birth_and_never_shown_ready_with_another_shops_half()
 {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backups");
    let key_text = "5e".repeat(32);
    let key = storefleet::backups::PlatformKey::parse(&key_text).unwrap();
    std::fs::write(dir.path().join("key"), &key_text).unwrap();
    let mut server = Server::start(
        "clone",
        Options {
            extra_args: [
                "--backup-dir",
                target.to_str().unwrap(),
                "--backup-key-file",
                dir.path().join("key").to_str().unwrap(),
                "--backup-agent-image",
                "registry.example/storefleet:clone-test",
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    )
    .await;
    let client = server.cluster.client.clone();
    let r = server.create(json!({ "name": "Original" })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let source = r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ready = server.wait_phase(&source, "Ready", READY_TIMEOUT).await;
    support::backups::create_job_claim(&client, &source).await;

    // A backup through the API: it records the store's owner, engine and address. The stand-in
    // runs no agent, so it fails; a copy at an id whose data the test wrote succeeds.
    let (status, asked) = server
        .call(
            None,
            Method::POST,
            &format!("/stores/{source}/backups"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    let failed = judged(&server, asked["backup_id"].as_str().unwrap()).await;
    assert_eq!(failed.phase(), Some(BackupPhase::Failed));
    let notes = failed.annotations();
    assert_eq!(notes["storefleet.dev/owner"], "admin");
    assert_eq!(notes["storefleet.dev/engine"], "woocommerce");
    assert_eq!(
        notes["storefleet.dev/site-url"],
        ready["url"].as_str().unwrap()
    );
    let good = BackupId::new(chrono::Utc::now());
    write_backup(&target, &key, &source, &good).await;
    assert_eq!(
        copy_backup(&server, &failed, &good).await.phase(),
        Some(BackupPhase::Succeeded)
    );
    // The same, recorded as of another engine, and one recording no address.
    let mut other_engine = failed.clone();
    other_engine
        .annotations_mut()
        .insert("storefleet.dev/engine".into(), "medusa".into());
    let medusa = BackupId::new(chrono::Utc::now());
    write_backup(&target, &key, &source, &medusa).await;
    copy_backup(&server, &other_engine, &medusa).await;
    let mut no_address = failed.clone();
    no_address
        .annotations_mut()
        .remove("storefleet.dev/site-url");
    let unaddressed = BackupId::new(chrono::Utc::now());
    write_backup(&target, &key, &source, &unaddressed).await;
    copy_backup(&server, &no_address, &unaddressed).await;

    // Bad requests: a clear 4xx each, and no store made.
    let eve = server.create_user("eve", "member", 3).await;
    let eve = eve["token"].as_str().unwrap();
    let before = store_ids(&server).await;
    type Case<'a> = (Option<&'a str>, Value, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            None,
            json!({"from_backup": "store-abc123"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            None,
            json!({"from_backup": "backup-20200101-000000-000000"}),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            None,
            json!({"from_backup": failed.name_any()}),
            StatusCode::CONFLICT,
            "backup-not-usable",
        ),
        // Another user's backup is not found, as a missing one.
        (
            Some(eve),
            json!({"from_backup": good.as_str()}),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            None,
            json!({"from_backup": medusa.as_str()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "backup-of-another-engine",
        ),
        (
            None,
            json!({"from_backup": unaddressed.as_str()}),
            StatusCode::CONFLICT,
            "backup-without-address",
        ),
    ];
    for (token, body, want, want_kind) in cases {
        let (status, answer) = server
            .call(token, Method::POST, "/stores", Some(body.clone()))
            .await;
        assert_eq!(status, want, "{body}: {answer}");
        assert_eq!(problem_kind(&answer), want_kind, "{body}: {answer}");
    }
    assert_eq!(
        store_ids(&server).await,
        before,
        "refused clones made no store"
    );
    let restores = Api::<StoreRestore>::all(client.clone());
    let ours = ListParams::default().labels(&format!("{LABEL_INSTANCE}={}", server.instance));
    assert!(restores.list(&ours).await.unwrap().items.is_empty());
    // Each refusal audited as denied.
    let denied = server
        .audit("?limit=500")
        .await
        .into_iter()
        .filter(|e| e["action"] == "denied")
        .count();
    assert!(denied >= 6, "{denied} denials audited");

    // A good clone: a new store, a clone from birth, with one restore of the source's backup.
    let (status, clone) = server
        .call(
            None,
            Method::POST,
            "/stores",
            Some(json!({"name": "Copy", "from_backup": good.as_str()})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{clone}");
    let id = clone["store_id"].as_str().unwrap().to_owned();
    assert_ne!(id, source);
    let cr = Api::<Store>::all(client.clone()).get(&id).await.unwrap();
    let from: Value = serde_json::from_str(&cr.annotations()["storefleet.dev/clone-from"]).unwrap();
    assert_eq!(
        from,
        json!({"backupId": good.as_str(), "storeId": source, "siteUrl": ready["url"]})
    );
    let restore_id = storefleet::backups::clones::restore_id(&cr)
        .unwrap()
        .to_string();
    let r = testkit::wait_for("the clone's restore", STEP, || async {
        restores.get_opt(&restore_id).await.unwrap()
    })
    .await;
    assert_eq!(r.spec.store_id, id);
    assert_eq!(r.spec.backup_id, good.as_str());
    assert_eq!(r.spec.source_store_id.as_deref(), Some(source.as_str()));

    // The filesystem target's claim in the new namespace, as for any store (see create_job_claim).
    testkit::wait_for("the clone's namespace", STEP, || async {
        Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .get_opt(&id)
            .await
            .unwrap()
    })
    .await;
    support::backups::create_job_claim(&client, &id).await;

    // Never Ready while the clone is unfinished: Provisioning, then Restoring.
    let jobs = Api::<Job>::namespaced(client.clone(), &id);
    let job = testkit::wait_for("the clone's restore Job", READY_TIMEOUT, || async {
        let (_, view) = server.get_json(&format!("/stores/{id}")).await;
        assert_ne!(view["status"], "Ready", "{view}");
        jobs.get_opt(&restore_id).await.unwrap()
    })
    .await;
    let pod = job.spec.unwrap().template.spec.unwrap();
    let env: Vec<(String, Option<String>)> = pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    assert!(
        env.contains(&("STOREFLEET_SOURCE_STORE_ID".into(), Some(source.clone()))),
        "{env:?}"
    );
    assert!(env.contains(&("STOREFLEET_STORE_ID".into(), Some(id.clone()))));
    assert!(env.contains(&("STOREFLEET_BACKUP_ID".into(), Some(good.to_string()))));

    // Killed with -9 mid-clone: the restarted control plane makes no second restore or Job.
    server.kill9();
    server.restart().await;
    let failed_clone = server.wait_phase(&id, "Failed", STEP).await;
    let message = failed_clone["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("the clone from backup {good} failed")),
        "{message}"
    );
    assert!(
        message.contains("without the agent saying it restored"),
        "{message}"
    );
    let done = restores.get(&restore_id).await.unwrap();
    assert_eq!(done.phase(), RestorePhase::Failed);
    assert!(
        done.status.unwrap().safety_backup.is_none(),
        "no safety backup of a new store"
    );
    testkit::wait_for("the clone marked done", STEP, || async {
        let cr = Api::<Store>::all(client.clone()).get(&id).await.unwrap();
        (cr.annotations()
            .get("storefleet.dev/clone-done")
            .map(String::as_str)
            == Some("Failed"))
        .then_some(())
    })
    .await;
    let all = restores.list(&ours).await.unwrap().items;
    assert_eq!(
        all.len(),
        1,
        "one restore: {:?}",
        all.iter().map(|r| r.name_any()).collect::<Vec<_>>()
    );
    let made = jobs.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(
        made.iter()
            .filter(|j| j.name_any().starts_with("restore-"))
            .count(),
        1,
        "one restore Job and no search-replace Job after a failed restore"
    );
    // WordPress started again, and the source store untouched.
    assert_eq!(
        server.get_json(&format!("/stores/{source}")).await.1["status"],
        "Ready"
    );

    // A clone's restore is the store's: it shows among its restores, and deleting the failed
    // clone works as for any store.
    let (_, listed) = server.get_json(&format!("/stores/{id}/restores")).await;
    assert_eq!(listed[0]["restore_id"], restore_id.as_str(), "{listed}");
    assert_eq!(listed[0]["source_store_id"], source.as_str(), "{listed}");
    let (status, _) = server
        .call(
            None,
            Method::DELETE,
            &format!("/stores/{id}?skip_final_backup=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

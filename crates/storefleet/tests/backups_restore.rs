//! Restore in place (`POST /stores/{id}/restore`, a `StoreRestore` object) on the real API server:
//! bad requests are 4xx and leave nothing behind; a restore takes the store through its steps
//! (`Restoring`, a safety backup, WordPress stopped, the agent's Job, WordPress started) and a
//! control plane killed with -9 in the middle goes on where it stood.
//!
//! The kubelet stand-in ends Job pods Succeeded without running them, so the agent never runs here
//! (`tests/backups_agent.rs` runs its restore for real against MariaDB). What a "succeeded" restore
//! Job without the agent's word means is tested here: not a restore. The controller then puts the
//! safety backup back (a second Job, same honest end) and the restore ends `Failed`, the store
//! Ready with WordPress started again. To let the safety backup succeed, this test writes it on the
//! target itself with the archive's writer, under the id the restore recorded, standing in for the
//! backup agent (as `tests/backups_cluster.rs` does).
mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storefleet::backups::restores::{RestorePhase, StoreRestore};
use storefleet::backups::{BackupId, BackupPhase, PlatformKey, StoreBackup, StoreBackupSpec};
use storefleet::crd::LABEL_INSTANCE;
use support::backups::write_backup;
use support::{Options, READY_TIMEOUT, Server, problem_kind};

const AGENT_IMAGE: &str = "registry.example/storefleet:restore-test";
const STEP: Duration = Duration::from_secs(120);

async fn ask_backup(server: &Server, store: &str, id: &BackupId) -> StoreBackup {
    let backups = Api::<StoreBackup>::all(server.cluster.client.clone());
    let mut b = StoreBackup::new(
        id.as_str(),
        StoreBackupSpec {
            store_id: store.into(),
        },
    );
    b.metadata.labels = Some([(LABEL_INSTANCE.to_owned(), server.instance.clone())].into());
    backups.create(&PostParams::default(), &b).await.unwrap();
    testkit::wait_for(&format!("backup {id} judged"), STEP, || async {
        let b = backups.get(id.as_str()).await.ok()?;
        b.phase().filter(|p| p.is_finished()).map(|_| b)
    })
    .await
}

async fn restore(
    server: &Server,
    token: Option<&str>,
    store: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    server
        .call(
            token,
            Method::POST,
            &format!("/stores/{store}/restore"),
            body,
        )
        .await
}

async fn restore_object(server: &Server, id: &str) -> StoreRestore {
    Api::<StoreRestore>::all(server.cluster.client.clone())
        .get(id)
        .await
        .unwrap()
}

async fn wordpress(server: &Server, store: &str) -> Deployment {
    Api::<Deployment>::namespaced(server.cluster.client.clone(), store)
        .list(&ListParams::default().labels("app.kubernetes.io/component=wordpress"))
        .await
        .unwrap()
        .items
        .remove(0)
}

#[tokio::test]
async fn a_restore_is_refused_cleanly_or_runs_its_steps_and_ends_with_the_store_ready() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backups");
    let key_text = "3c".repeat(32);
    let key = PlatformKey::parse(&key_text).unwrap();
    std::fs::write(dir.path().join("key"), &key_text).unwrap();
    let mut server = Server::start(
        "restore",
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
    let client = server.cluster.client.clone();
    let r = server.create(json!({ "name": "Restored" })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let store = r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_phase(&store, "Ready", READY_TIMEOUT).await;
    support::backups::create_job_claim(&client, &store).await;
    let replicas_before = wordpress(&server, &store).await.spec.replicas;

    // A good backup of the store, a failed one, and one of another store.
    let good = BackupId::new(chrono::Utc::now());
    write_backup(&target, &key, &store, &good).await;
    assert_eq!(
        ask_backup(&server, &store, &good).await.phase(),
        Some(BackupPhase::Succeeded)
    );
    let failed = BackupId::new(chrono::Utc::now());
    assert_eq!(
        ask_backup(&server, &store, &failed).await.phase(),
        Some(BackupPhase::Failed)
    );
    let foreign = BackupId::new(chrono::Utc::now());
    write_backup(&target, &key, "store-ffffff", &foreign).await;
    ask_backup(&server, "store-ffffff", &foreign).await;

    // Bad requests: a clear 4xx each, and nothing made.
    let eve = server.create_user("eve", "member", 1).await;
    let eve = eve["token"].as_str().unwrap();
    /// Who asks, on which store, with which body; the status and problem type expected.
    type Case<'a> = (Option<&'a str>, &'a str, Option<Value>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            None,
            store.as_str(),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            None,
            store.as_str(),
            Some(json!({"backupId": "nope"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            None,
            store.as_str(),
            Some(json!({"backupId": good.as_str(), "force": true})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            None,
            store.as_str(),
            Some(json!({"backupId": "backup-20200101-000000-000000"})),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        // Another store's backup is not found under this one.
        (
            None,
            store.as_str(),
            Some(json!({"backupId": foreign.as_str()})),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            None,
            store.as_str(),
            Some(json!({"backupId": failed.as_str()})),
            StatusCode::CONFLICT,
            "backup-not-usable",
        ),
        // Another user's store is not found, as a missing one.
        (
            Some(eve),
            store.as_str(),
            Some(json!({"backupId": good.as_str()})),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            None,
            "store-ffffff",
            Some(json!({"backupId": foreign.as_str()})),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
    ];
    for (token, on, body, want, want_kind) in cases {
        let (status, answer) = restore(&server, token, on, body.clone()).await;
        assert_eq!(status, want, "{body:?}: {answer}");
        assert_eq!(problem_kind(&answer), want_kind, "{body:?}: {answer}");
    }
    let (status, listed) = server.get_json(&format!("/stores/{store}/restores")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, json!([]), "refused requests left nothing");
    let all = Api::<StoreRestore>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{LABEL_INSTANCE}={}", server.instance)))
        .await
        .unwrap();
    assert!(all.items.is_empty());
    assert_eq!(
        server.get_json(&format!("/stores/{store}")).await.1["status"],
        "Ready"
    );

    // 1. A restore whose safety backup fails: nothing is changed, the store is Ready.
    let (status, first) = restore(
        &server,
        None,
        &store,
        Some(json!({"backupId": good.as_str()})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let first_id = first["restore_id"].as_str().unwrap().to_owned();
    assert_eq!(first["backup_id"], good.as_str());
    let done = testkit::wait_for("the first restore ends", STEP, || async {
        let r = restore_object(&server, &first_id).await;
        r.phase().is_finished().then_some(r)
    })
    .await;
    let st = done.status.clone().unwrap();
    assert_eq!(done.phase(), RestorePhase::Failed, "{st:?}");
    let safety = st.safety_backup.clone().unwrap();
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .starts_with(&format!("the safety backup {safety} failed")),
        "{st:?}"
    );
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .ends_with("nothing was changed"),
        "{st:?}"
    );
    assert_eq!(
        wordpress(&server, &store).await.spec.replicas,
        replicas_before
    );
    let jobs = Api::<Job>::namespaced(client.clone(), &store);
    assert!(
        jobs.get_opt(&first_id).await.unwrap().is_none(),
        "no restore Job"
    );
    assert_eq!(
        server.get_json(&format!("/stores/{store}")).await.1["status"],
        "Ready"
    );

    // 2. A restore whose safety backup succeeds.
    let (status, second) = restore(
        &server,
        None,
        &store,
        Some(json!({"backupId": good.as_str()})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    let id = second["restore_id"].as_str().unwrap().to_owned();
    let safety = testkit::wait_for("the safety backup's id", STEP, || async {
        restore_object(&server, &id).await.status?.safety_backup
    })
    .await;
    write_backup(&target, &key, &store, &BackupId::parse(&safety).unwrap()).await;
    // The store shows Restoring, and a second restore meanwhile is refused.
    server.wait_phase(&store, "Restoring", STEP).await;
    let (status, answer) = restore(
        &server,
        None,
        &store,
        Some(json!({"backupId": good.as_str()})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    // The restore Job appears only once WordPress is stopped.
    let job = testkit::wait_for("the restore Job", STEP, || async {
        jobs.get_opt(&id).await.unwrap()
    })
    .await;
    assert_eq!(wordpress(&server, &store).await.spec.replicas, Some(0));
    let safety_backup = Api::<StoreBackup>::all(client.clone())
        .get(&safety)
        .await
        .unwrap();
    assert_eq!(safety_backup.phase(), Some(BackupPhase::Succeeded));
    assert_eq!(
        safety_backup.metadata.labels.as_ref().unwrap()["storefleet.dev/safety-for"],
        id.as_str()
    );
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("StoreRestore", id.as_str())
    );
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let agent = &pod.containers[0];
    assert_eq!(agent.args.as_ref().unwrap(), &["backup-agent", "restore"]);
    assert_eq!(
        agent.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    let env = |c: &k8s_openapi::api::core::v1::Container, name: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        env(agent, "STOREFLEET_BACKUP_ID").as_deref(),
        Some(good.as_str())
    );
    assert!(
        pod.affinity.is_none(),
        "WordPress is stopped: nothing to sit beside"
    );

    // Killed with -9 mid-restore: the restarted controller goes on; no Job made twice.
    server.kill9();
    server.restart().await;
    let done = testkit::wait_for("the second restore ends", STEP, || async {
        let r = restore_object(&server, &id).await;
        r.phase().is_finished().then_some(r)
    })
    .await;
    let st = done.status.clone().unwrap();
    assert_eq!(done.phase(), RestorePhase::Failed, "{st:?}");
    let message = st.message.clone().unwrap();
    assert!(
        message.contains("without the agent saying it restored"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "putting the safety backup {safety} back failed too"
        )),
        "{message}"
    );
    assert!(
        message.ends_with(&format!("the safety backup is {safety}")),
        "{message}"
    );
    // The safety backup went back through a second Job.
    let rollback = jobs.get(&format!("{id}-rollback")).await.unwrap();
    let agent = &rollback.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        env(agent, "STOREFLEET_BACKUP_ID").as_deref(),
        Some(safety.as_str())
    );
    let made = jobs
        .list(&ListParams::default().labels(&format!("storefleet.dev/restore={id}")))
        .await
        .unwrap();
    assert_eq!(made.items.len(), 1, "one restore Job");
    // WordPress started again, the store Ready.
    let d = wordpress(&server, &store).await;
    assert_eq!(d.spec.replicas, replicas_before);
    assert_eq!(
        server.get_json(&format!("/stores/{store}")).await.1["status"],
        "Ready"
    );
    let (_, listed) = server.get_json(&format!("/stores/{store}/restores")).await;
    let ids: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["restore_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first_id.as_str(), id.as_str()]);
    let audit: Vec<_> = server
        .audit("?limit=500")
        .await
        .into_iter()
        .filter(|e| e["action"] == "restore" && e["store_id"] == store.as_str())
        .collect();
    assert_eq!(
        audit.len(),
        2,
        "two restores asked for, each audited: {audit:?}"
    );

    // 3. A restore deleted by hand (`kubectl delete storerestore`) while it owns the store: it
    //    finishes first (its finalizer), so the store is given back Ready, then it goes.
    let (status, third) = restore(
        &server,
        None,
        &store,
        Some(json!({"backupId": good.as_str()})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{third}");
    let third = third["restore_id"].as_str().unwrap().to_owned();
    let restores = Api::<StoreRestore>::all(client.clone());
    testkit::wait_for("the third restore to own the store", STEP, || async {
        let r = restores.get(&third).await.ok()?;
        let held = r
            .finalizers()
            .iter()
            .any(|f| f == "storefleet.dev/restore-finish");
        (held && r.phase() == RestorePhase::BackingUp).then_some(())
    })
    .await;
    assert_eq!(
        server.get_json(&format!("/stores/{store}")).await.1["status"],
        "Restoring"
    );
    restores.delete(&third, &Default::default()).await.unwrap();
    let held = restores.get(&third).await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    testkit::wait_for("the deleted restore to finish and go", STEP, || async {
        restores
            .get_opt(&third)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        server.get_json(&format!("/stores/{store}")).await.1["status"],
        "Ready",
        "the store was given back"
    );
    assert_eq!(
        wordpress(&server, &store).await.spec.replicas,
        replicas_before
    );

    // A store being deleted is not restored: 409, and no restore is made. Both while it waits for
    // its final backup (backups::safety_net) and once an admin deleted it without waiting.
    let (status, body) = server.delete_store(&store).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["final_backup"].is_string(), "{body}");
    for _ in 0..2 {
        let (status, answer) = restore(
            &server,
            None,
            &store,
            Some(json!({"backupId": good.as_str()})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(problem_kind(&answer), "store-deleting", "{answer}");
        let r = server
            .req(
                Method::DELETE,
                &format!("/stores/{store}?skip_final_backup=true"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let made = Api::<StoreRestore>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{LABEL_INSTANCE}={}", server.instance)))
        .await
        .unwrap();
    assert_eq!(made.items.len(), 2, "only the two restores above");

    // Clean up: the backups' finalizers need the controller.
    let backups = Api::<StoreBackup>::all(client.clone());
    let mine = backups
        .list(&ListParams::default().labels(&format!("{LABEL_INSTANCE}={}", server.instance)))
        .await
        .unwrap();
    for b in mine.items {
        let _ = backups
            .delete(&kube::ResourceExt::name_any(&b), &Default::default())
            .await;
    }
    let restores = Api::<StoreRestore>::all(client.clone());
    for r in [&first_id, &id] {
        let _ = restores.delete(r, &Default::default()).await;
    }
    server.wait_gone(&store).await;
    server.assert_no_orphans().await;
}

//! Schedules, retention and the safety net on delete, on the real API server.
//!
//! 1. The scheduler's decisions (`backups::scheduler::pass_at`) against real `Store` and
//!    `StoreBackup` objects, at a `now` two days ahead (no test waits for a store's daily minute):
//!    which store is due (never an unclaimed pool store), that a pass repeated (a restarted controller) asks for nothing more, that a
//!    running backup holds the next slot back, and which backups retention deletes.
//! 2. Through `storefleet serve`: the schedule API (a store's own choice, what members may not
//!    choose, bad bodies: 4xx and nothing changed), and `DELETE /stores/{id}` with a final backup.
//!    The kubelet stand-in ends the backup Job without running the agent, so the first final backup
//!    honestly fails and the deletion is cancelled (the store stays, saying why). For the second,
//!    the test writes the backup on the target under the id the API answered, standing in for the
//!    agent (as `tests/backups_cluster.rs` does); the controller opens it, deletes the store, and the
//!    store is listed in `GET /deleted-stores` for its owner and admins only.
mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storefleet::backups::kind::{BackupKind, LABEL_KIND};
use storefleet::backups::retention::Retention;
use storefleet::backups::schedule::{self, Schedule};
use storefleet::backups::service::BackupService;
use storefleet::backups::settings::BackupPolicy;
use storefleet::backups::{BackupId, PlatformKey, StoreBackup, StoreBackupSpec};
use storefleet::crd::{LABEL_INSTANCE, Store, StoreSpec};
use storefleet::domain::StoreId;
use storefleet::storage::Database;
use support::backups::write_backup;
use support::{Options, READY_TIMEOUT, Server, problem_kind};

const AGENT_IMAGE: &str = "registry.example/storefleet:policy-test";

fn hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect()
}

/// A Store object of `instance`, its status written as the controller would (no controller runs).
async fn store(stores: &Api<Store>, instance: &str, phase: &str, own: Option<&str>) -> Store {
    let mut s = Store::new(
        &format!("store-{}", hex(6)),
        StoreSpec {
            name: Some("Scheduled".into()),
            engine: Default::default(),
            owner: "alice".into(),
            plan: None,
            release: None,
            domains: vec![],
            identity_generation: 0,
        },
    );
    s.labels_mut()
        .insert(LABEL_INSTANCE.into(), instance.into());
    if let Some(own) = own {
        s.annotations_mut()
            .insert(schedule::ANNOTATION_SCHEDULE.into(), own.into());
    }
    let s = stores.create(&PostParams::default(), &s).await.unwrap();
    stores
        .patch_status(
            &s.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": phase } })),
        )
        .await
        .unwrap()
}

/// A finished backup object as the backup controller leaves one.
async fn finished(
    backups: &Api<StoreBackup>,
    instance: &str,
    store: &str,
    kind: BackupKind,
    phase: &str,
    started: DateTime<Utc>,
) -> String {
    let id = BackupId::new(started);
    let mut b = StoreBackup::new(
        id.as_str(),
        StoreBackupSpec {
            store_id: store.into(),
        },
    );
    b.labels_mut()
        .insert(LABEL_INSTANCE.into(), instance.into());
    b.labels_mut()
        .insert(LABEL_KIND.into(), kind.as_str().into());
    backups.create(&PostParams::default(), &b).await.unwrap();
    let at =
        (started + chrono::Duration::minutes(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    backups
        .patch_status(
            id.as_str(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": phase, "finishedAt": at } })),
        )
        .await
        .unwrap();
    id.to_string()
}

async fn names_of(backups: &Api<StoreBackup>, instance: &str) -> Vec<String> {
    let mut names: Vec<_> = backups
        .list(&ListParams::default().labels(&format!("{LABEL_INSTANCE}={instance}")))
        .await
        .unwrap()
        .items
        .iter()
        .map(|b| b.name_any())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_scheduler_asks_once_per_slot_and_retention_keeps_what_it_promises() {
    let cluster = testkit::cluster().await;
    let client = cluster.client.clone();
    let instance = format!("t-sched-{}", hex(6));
    let _cleanup = Cleanup {
        kubeconfig: cluster.kubeconfig.clone(),
        instance: instance.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Database::connect(&format!(
        "sqlite://{}",
        dir.path().join("audit.db").display()
    ))
    .await
    .unwrap();
    let stores = Api::<Store>::all(client.clone());
    let backups = Api::<StoreBackup>::all(client.clone());
    let service = BackupService::new(client.clone(), instance.clone(), true);
    let policy = BackupPolicy {
        schedule: Schedule::Daily,
        retention: Retention {
            keep_daily: 3,
            keep_weekly: 0,
            ..Retention::default()
        },
    };
    let pass = |now: DateTime<Utc>| {
        let (client, instance, policy, service, audit) =
            (&client, &instance, &policy, &service, db.audit());
        async move {
            storefleet::backups::scheduler::pass_at(client, instance, policy, service, &audit, now)
                .await
                .unwrap()
        }
    };

    // 1. Scheduling. A Ready store on the platform's daily schedule, one that chose `off`, one
    //    that is still provisioning.
    let due = store(&stores, &instance, "Ready", None).await;
    let off = store(&stores, &instance, "Ready", Some("off")).await;
    let _provisioning = store(&stores, &instance, "Provisioning", None).await;
    // An unclaimed warm-pool store (docs/pool.md): nobody's data, so no backup. One taken would
    // also be listed to whoever claims it later, with the pool's identity in it.
    let pooled = store(&stores, &instance, "Ready", None).await;
    stores
        .patch(
            &pooled.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "labels": { "storefleet.dev/pool": "woocommerce.small" } },
                "spec": { "owner": "storefleet" },
            })),
        )
        .await
        .unwrap();
    // Now: the store's own slots are in the future; nothing is due.
    pass(Utc::now()).await;
    assert_eq!(names_of(&backups, &instance).await, Vec::<String>::new());

    let now = Utc::now() + chrono::Duration::days(2);
    let due_id = StoreId::parse(&due.name_any()).unwrap();
    let slot = schedule::last_slot(Schedule::Daily, &due_id, now).unwrap();
    let expected = schedule::slot_backup_id(&due_id, slot).to_string();
    pass(now).await;
    assert_eq!(names_of(&backups, &instance).await, vec![expected.clone()]);
    let b = backups.get(&expected).await.unwrap();
    assert_eq!(b.spec.store_id, due.name_any());
    assert_eq!(
        b.labels().get(LABEL_KIND).map(String::as_str),
        Some("scheduled")
    );
    assert_eq!(
        b.annotations()
            .get("storefleet.dev/owner")
            .map(String::as_str),
        Some("alice")
    );
    // The same pass again (a restarted controller), and the next day while it still runs: nothing.
    pass(now).await;
    pass(now + chrono::Duration::days(1)).await;
    assert_eq!(names_of(&backups, &instance).await, vec![expected.clone()]);
    // It failed (the object store was away): the next slot tries again.
    backups
        .patch_status(
            &expected,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "status": { "phase": "Failed", "message": "target unreachable",
                "finishedAt": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true) } }),
            ),
        )
        .await
        .unwrap();
    let tomorrow = now + chrono::Duration::days(1);
    let next = schedule::slot_backup_id(
        &due_id,
        schedule::last_slot(Schedule::Daily, &due_id, tomorrow).unwrap(),
    )
    .to_string();
    pass(tomorrow).await;
    let names = names_of(&backups, &instance).await;
    assert!(names.contains(&next), "{names:?}");
    // Only the due store: not the one that chose `off`, not the one provisioning.
    for name in &names {
        let b = backups.get(name).await.unwrap();
        assert_eq!(
            b.spec.store_id,
            due.name_any(),
            "only the due store: {name}"
        );
    }

    // 2. Retention, for the store that chose `off` (so no new backup joins in).
    let off_id = off.name_any();
    let mut daily = Vec::new();
    for d in 0..10 {
        let at = now - chrono::Duration::days(d) - chrono::Duration::hours(1);
        daily.push(
            finished(
                &backups,
                &instance,
                &off_id,
                BackupKind::Scheduled,
                "Succeeded",
                at,
            )
            .await,
        );
    }
    let failed_old = finished(
        &backups,
        &instance,
        &off_id,
        BackupKind::Scheduled,
        "Failed",
        now - chrono::Duration::days(3) - chrono::Duration::hours(5),
    )
    .await;
    let manual = finished(
        &backups,
        &instance,
        &off_id,
        BackupKind::Manual,
        "Succeeded",
        now - chrono::Duration::days(90),
    )
    .await;
    let upgrade_old = finished(
        &backups,
        &instance,
        &off_id,
        BackupKind::PreUpgrade,
        "Succeeded",
        now - chrono::Duration::days(8),
    )
    .await;
    let safety_new = finished(
        &backups,
        &instance,
        &off_id,
        BackupKind::Safety,
        "Succeeded",
        now - chrono::Duration::days(2),
    )
    .await;
    // Two deleted stores (no Store object): one deleted 8 days before `now`, one 2 days before.
    let gone_old = finished(
        &backups,
        &instance,
        "store-0dd0dd",
        BackupKind::Final,
        "Succeeded",
        now - chrono::Duration::days(8),
    )
    .await;
    let gone_new = finished(
        &backups,
        &instance,
        "store-00e11e",
        BackupKind::Final,
        "Succeeded",
        now - chrono::Duration::days(2),
    )
    .await;

    pass(now).await;
    let left = names_of(&backups, &instance).await;
    let kept = |id: &String| left.contains(id);
    assert_eq!(
        daily.iter().map(kept).collect::<Vec<_>>(),
        [
            true, true, true, false, false, false, false, false, false, false
        ],
        "keep_daily 3: the three newest days"
    );
    assert!(!kept(&failed_old), "a failure older than a success goes");
    assert!(
        kept(&manual),
        "a manual backup stays until someone deletes it"
    );
    assert!(
        !kept(&upgrade_old),
        "a pre-upgrade backup goes after the 7-day window"
    );
    assert!(kept(&safety_new), "a safety backup stays for the window");
    assert!(
        !kept(&gone_old),
        "a deleted store's backups go after the window"
    );
    assert!(
        kept(&gone_new),
        "a deleted store's backups stay for the window"
    );

    // Every expiry is in the audit log, by the controller.
    let rows = db.audit().list(1000, None, None).await.unwrap();
    let expired = rows.iter().filter(|r| r.outcome == "expired").count();
    assert_eq!(expired, 7 + 1 + 1 + 1, "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r.outcome == "scheduled" && r.detail.contains(&expected))
    );
}

struct Cleanup {
    kubeconfig: std::path::PathBuf,
    instance: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        testkit::force_remove_instance(&self.kubeconfig, &self.instance);
    }
}

#[tokio::test]
async fn schedules_through_the_api_and_a_final_backup_before_every_delete() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backups");
    let key_text = "5e".repeat(32);
    let key = PlatformKey::parse(&key_text).unwrap();
    std::fs::write(dir.path().join("key"), &key_text).unwrap();
    let server = Server::start(
        "policy",
        Options {
            extra_args: [
                "--backup-dir",
                target.to_str().unwrap(),
                "--backup-key-file",
                dir.path().join("key").to_str().unwrap(),
                "--backup-agent-image",
                AGENT_IMAGE,
                "--backup-schedule",
                "weekly",
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    )
    .await;
    let client = server.cluster.client.clone();
    let alice = server
        .create_user(&format!("alice-{}", hex(4)), "member", 5)
        .await;
    let alice = alice["token"].as_str().unwrap().to_owned();
    let eve = server
        .create_user(&format!("eve-{}", hex(4)), "member", 5)
        .await;
    let eve = eve["token"].as_str().unwrap().to_owned();

    let (status, created) = server
        .call(
            Some(&alice),
            Method::POST,
            "/stores",
            Some(json!({ "name": "Kept Shop" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["store_id"].as_str().unwrap().to_owned();
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    support::backups::create_job_claim(&client, &id).await;
    let stores = Api::<Store>::all(client.clone());

    // 1. The schedule API.
    let path = format!("/stores/{id}/backup-schedule");
    let (status, s) = server.call(Some(&alice), Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(
        (s["schedule"].as_str(), s["source"].as_str()),
        (Some("weekly"), Some("platform"))
    );
    assert!(s["next_at"].is_string(), "{s}");
    let (status, s) = server
        .call(
            Some(&alice),
            Method::PUT,
            &path,
            Some(json!({ "schedule": "daily" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(
        (s["schedule"].as_str(), s["source"].as_str()),
        (Some("daily"), Some("store"))
    );
    let annotation = |s: &Store| s.annotations().get(schedule::ANNOTATION_SCHEDULE).cloned();
    assert_eq!(
        annotation(&stores.get(&id).await.unwrap()).as_deref(),
        Some("daily")
    );
    // Refused: hourly by a member, not a schedule, an unknown field, no body, another's store.
    for (token, body, code, kind) in [
        (
            &alice,
            Some(json!({ "schedule": "hourly" })),
            StatusCode::FORBIDDEN,
            "admin-only",
        ),
        (
            &alice,
            Some(json!({ "schedule": "sometimes" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            &alice,
            Some(json!({ "schedule": "off", "at": "03:00" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (&alice, None, StatusCode::UNPROCESSABLE_ENTITY, ""),
        (
            &eve,
            Some(json!({ "schedule": "off" })),
            StatusCode::NOT_FOUND,
            "",
        ),
    ] {
        let (status, body) = server
            .call(Some(token), Method::PUT, &path, body.clone())
            .await;
        assert_eq!(status, code, "{body}");
        if !kind.is_empty() {
            assert_eq!(problem_kind(&body), kind, "{body}");
        }
        assert_eq!(
            annotation(&stores.get(&id).await.unwrap()).as_deref(),
            Some("daily"),
            "unchanged after {body}"
        );
    }
    // An admin may choose hourly; null goes back to the platform's.
    let (status, s) = server
        .call(
            None,
            Method::PUT,
            &path,
            Some(json!({ "schedule": "hourly" })),
        )
        .await;
    assert_eq!(
        (status, s["schedule"].as_str()),
        (StatusCode::OK, Some("hourly")),
        "{s}"
    );
    let (status, s) = server
        .call(
            Some(&alice),
            Method::PUT,
            &path,
            Some(json!({ "schedule": null })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(
        (s["schedule"].as_str(), s["source"].as_str()),
        (Some("weekly"), Some("platform"))
    );
    assert_eq!(annotation(&stores.get(&id).await.unwrap()), None);

    // 2. Delete: a member may not skip the final backup (and nothing changes).
    let store_path = format!("/stores/{id}");
    let (status, body) = server
        .call(
            Some(&alice),
            Method::DELETE,
            &format!("{store_path}?skip_final_backup=true"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem_kind(&body)),
        (StatusCode::FORBIDDEN, "admin-only"),
        "{body}"
    );
    assert!(
        stores
            .get(&id)
            .await
            .unwrap()
            .annotations()
            .get("storefleet.dev/final-backup")
            .is_none()
    );

    // The first try: the store waits for its final backup and takes no change meanwhile.
    let (status, body) = server
        .call(Some(&alice), Method::DELETE, &store_path, None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let first = body["final_backup"]
        .as_str()
        .expect("a final backup")
        .to_owned();
    let (_, view) = server
        .call(Some(&alice), Method::GET, &store_path, None)
        .await;
    assert_eq!(view["status"], "Deleting", "{view}");
    assert!(
        view["message"].as_str().unwrap_or("").contains(&first),
        "{view}"
    );
    let (status, again) = server
        .call(Some(&alice), Method::DELETE, &store_path, None)
        .await;
    assert_eq!(
        (status, again["final_backup"].as_str()),
        (StatusCode::ACCEPTED, Some(first.as_str())),
        "{again}"
    );
    let (status, body) = server
        .call(
            Some(&alice),
            Method::PATCH,
            &store_path,
            Some(json!({ "name": "Renamed" })),
        )
        .await;
    assert_eq!(
        (status, problem_kind(&body)),
        (StatusCode::CONFLICT, "store-deleting"),
        "{body}"
    );
    let (status, body) = server
        .call(
            Some(&alice),
            Method::POST,
            &format!("{store_path}/backups"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem_kind(&body)),
        (StatusCode::CONFLICT, "store-deleting"),
        "{body}"
    );
    // The stand-in never runs the agent: the final backup fails, and the store is not deleted.
    let view = testkit::wait_for(
        "the deletion to be cancelled",
        Duration::from_secs(120),
        || async {
            let (_, v) = server
                .call(Some(&alice), Method::GET, &store_path, None)
                .await;
            (v["status"] == "Ready").then_some(v)
        },
    )
    .await;
    let message = view["message"].as_str().unwrap_or("");
    assert!(
        message.contains("not deleted") && message.contains(&first),
        "{view}"
    );
    let (_, listed) = server
        .call(Some(&alice), Method::GET, "/deleted-stores", None)
        .await;
    assert_eq!(
        listed,
        json!([]),
        "a store that still exists is not a deleted one"
    );

    // The second try, with the backup written on the target as the agent would.
    let (status, body) = server
        .call(Some(&alice), Method::DELETE, &store_path, None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let second = body["final_backup"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    write_backup(&target, &key, &id, &BackupId::parse(&second).unwrap()).await;
    server.wait_gone(&id).await;
    let (status, listed) = server
        .call(Some(&alice), Method::GET, "/deleted-stores", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let mine: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["store_id"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{listed}");
    assert_eq!(mine[0]["name"], "Kept Shop");
    assert_eq!(mine[0]["final_backup"]["backup_id"], second.as_str());
    assert_eq!(mine[0]["final_backup"]["state"], "Succeeded");
    assert_eq!(mine[0]["final_backup"]["kind"], "final");
    assert!(mine[0]["kept_until"].is_string(), "{listed}");
    let (_, for_eve) = server
        .call(Some(&eve), Method::GET, "/deleted-stores", None)
        .await;
    assert!(
        !for_eve
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["store_id"] == id.as_str()),
        "{for_eve}"
    );
    let (_, for_admin) = server
        .call(None, Method::GET, "/deleted-stores", None)
        .await;
    assert!(
        for_admin
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["store_id"] == id.as_str()),
        "{for_admin}"
    );
    let outcomes: Vec<String> = server
        .audit(&format!("?store_id={id}&limit=500"))
        .await
        .iter()
        .filter(|r| r["action"] == "delete")
        .filter_map(|r| r["outcome"].as_str().map(str::to_owned))
        .collect();
    for expected in ["final-backup", "delete-cancelled", "final-backup-taken"] {
        assert!(
            outcomes.iter().any(|o| o == expected),
            "{expected} not in {outcomes:?}"
        );
    }

    // 3. An admin may skip it: gone at once, no final backup.
    let (status, other) = server
        .call(
            Some(&alice),
            Method::POST,
            "/stores",
            Some(json!({ "name": "Gone" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{other}");
    let other = other["store_id"].as_str().unwrap().to_owned();
    server.wait_phase(&other, "Ready", READY_TIMEOUT).await;
    let (status, body) = server
        .call(
            None,
            Method::DELETE,
            &format!("/stores/{other}?skip_final_backup=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["final_backup"], Value::Null, "{body}");
    server.wait_gone(&other).await;
    let finals = Api::<StoreBackup>::all(client.clone())
        .list(&ListParams::default().labels(&format!(
            "{LABEL_INSTANCE}={},{LABEL_KIND}=final",
            server.instance
        )))
        .await
        .unwrap();
    assert!(
        !finals.items.iter().any(|b| b.spec.store_id == other),
        "skipped, yet a final backup"
    );
}

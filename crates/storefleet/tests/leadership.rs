//! Two replicas of one control plane (two real `storefleet serve` processes on one database of the
//! test PostgreSQL server, the same instance and Lease) against the test cluster: exactly one runs the controllers;
//! a store created through either API becomes Ready; `kill -9` of the leader while a store
//! provisions hands over within 15 s and the store still becomes Ready, released once; a SIGTERM
//! hands over in under 3 s.
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Db, Options, READY_TIMEOUT, Server};

/// The bound for a takeover after `kill -9` of the leader.
const TAKEOVER_AFTER_KILL: Duration = Duration::from_secs(15);
/// A graceful stop hands the Lease over at once: the next replica's next try (1 s) takes it.
const HANDOVER_AFTER_SIGTERM: Duration = Duration::from_secs(3);

fn replica_options() -> Options {
    Options {
        extra_args: vec!["--leader-election".into()],
        // Replicas share one PostgreSQL database, as in production (docs/production.md).
        database: Db::Postgres,
        ..Options::default()
    }
}

/// `storefleet_leader` of a replica's `/metrics`.
async fn leader_gauge(server: &Server) -> Option<i64> {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("storefleet_leader "))
        .and_then(|v| v.trim().parse().ok())
}

/// The Lease's holder, as the API server has it.
async fn holder(server: &Server) -> Option<String> {
    let leases = Api::<Lease>::namespaced(
        server.cluster.client.clone(),
        server.cluster.client.default_namespace(),
    );
    leases
        .get_opt(&format!("storefleet-{}", server.instance))
        .await
        .unwrap()
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty())
}

/// Whether `server` holds the Lease (its identity is `<hostname>-<pid>`) and says so.
async fn leads(server: &Server) -> bool {
    let pid = format!("-{}", server.pid());
    holder(server).await.is_some_and(|h| h.ends_with(&pid)) && leader_gauge(server).await == Some(1)
}

/// Waits until exactly one of the two leads; answers its index.
async fn the_leader(servers: [&Server; 2], within: Duration) -> usize {
    testkit::wait_for("exactly one leader", within, || async {
        let (a, b) = (leads(servers[0]).await, leads(servers[1]).await);
        match (a, b) {
            (true, false) => Some(0),
            (false, true) => Some(1),
            _ => None,
        }
    })
    .await
}

async fn create(server: &Server, name: &str) -> String {
    let r = server.create(json!({ "name": name })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Released once and finished: the release is deployed, no revision was replaced by an upgrade
/// without a change (`superseded`) and no helm record is left pending.
async fn released_once(server: &Server, id: &str) {
    let history = server.helm_history(id);
    assert!(
        history
            .iter()
            .all(|(_, s)| s != "superseded" && !s.starts_with("pending")),
        "{id}: {history:?}"
    );
    assert_eq!(
        history.last().map(|(_, s)| s.as_str()),
        Some("deployed"),
        "{id}: {history:?}"
    );
    let records = Api::<Secret>::namespaced(server.cluster.client.clone(), id)
        .list(&ListParams::default().labels("owner=helm"))
        .await
        .unwrap();
    assert!(
        records.items.iter().all(|s| !s
            .labels()
            .get("status")
            .is_some_and(|v| v.starts_with("pending-"))),
        "{id}: a helm record is left pending"
    );
}

/// The `status` labels of a release's helm records (one per revision).
async fn helm_records(server: &Server, id: &str) -> Vec<String> {
    Api::<Secret>::namespaced(server.cluster.client.clone(), id)
        .list(&ListParams::default().labels("owner=helm"))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|s| s.labels().get("status").cloned())
        .collect()
}

fn controller_starts(server: &Server) -> usize {
    server.log().matches("\"starting the controller\"").count()
}

#[tokio::test]
async fn one_leader_runs_the_controllers_and_another_takes_over() {
    let first = Server::start("leader", replica_options()).await;
    let second = first.start_peer().await;
    let mut servers = [first, second];
    let l = the_leader([&servers[0], &servers[1]], Duration::from_secs(30)).await;
    let f = 1 - l;
    eprintln!("replica {l} leads ({:?})", holder(&servers[l]).await);
    // Both serve the API and are ready; only the leader ever started a controller, and it stays so.
    for s in &servers {
        let r = s.http.get(s.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "/readyz of a replica");
    }
    for _ in 0..10 {
        let gauges = (
            leader_gauge(&servers[0]).await,
            leader_gauge(&servers[1]).await,
        );
        assert!(
            gauges == (Some(1), Some(0)) || gauges == (Some(0), Some(1)),
            "{gauges:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        controller_starts(&servers[f]),
        0,
        "a follower started a controller"
    );
    assert_eq!(controller_starts(&servers[l]), 1);

    // Created through the follower's API, released by the leader's controller.
    let id = create(&servers[f], "Leader Shop").await;
    servers[f].wait_phase(&id, "Ready", READY_TIMEOUT).await;
    released_once(&servers[l], &id).await;
    assert_eq!(
        controller_starts(&servers[f]),
        0,
        "a follower started a controller"
    );

    // kill -9 of the leader while a store provisions.
    let id2 = create(&servers[l], "Takeover Shop").await;
    let client = servers[l].cluster.client.clone();
    testkit::wait_for("the store's namespace", READY_TIMEOUT, || {
        let namespaces = Api::<Namespace>::all(client.clone());
        let id = id2.clone();
        async move { namespaces.get_opt(&id).await.unwrap().map(drop) }
    })
    .await;
    // Best while helm writes the release (its record `pending-install`): poll closely for it.
    let watching = Instant::now();
    while helm_records(&servers[f], &id2).await.is_empty() && watching.elapsed() < READY_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, before) = servers[f].get_json(&format!("/stores/{id2}")).await;
    assert_ne!(
        before["status"], "Ready",
        "too late to kill the leader mid-provisioning"
    );
    servers[l].kill9();
    let killed = Instant::now();
    let records = helm_records(&servers[f], &id2).await;
    eprintln!("{id2}'s helm records at the kill: {records:?}");
    testkit::wait_for("the follower to take over", TAKEOVER_AFTER_KILL, || {
        let server = &servers[f];
        async move { leads(server).await.then_some(()) }
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!("takeover after kill -9 of the leader: {takeover:?}");
    assert!(takeover < TAKEOVER_AFTER_KILL);
    servers[f].wait_phase(&id2, "Ready", READY_TIMEOUT).await;
    eprintln!("{id2} Ready {:?} after the kill", killed.elapsed());
    released_once(&servers[f], &id2).await;
    released_once(&servers[f], &id).await;
    if records.iter().any(|s| s.starts_with("pending-")) {
        assert!(
            servers[f].log().contains("removed the stale record"),
            "the new leader did not unlock {id2}"
        );
    }

    // The killed replica comes back as a follower; a SIGTERM of the leader hands over at once.
    servers[l].restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        leader_gauge(&servers[l]).await,
        Some(0),
        "the restarted replica leads"
    );
    let stopping = Instant::now();
    let stopped_in = servers[f].terminate(Duration::from_secs(30));
    testkit::wait_for(
        "the other replica to take over",
        Duration::from_secs(15),
        || {
            let server = &servers[l];
            async move { leads(server).await.then_some(()) }
        },
    )
    .await;
    let handover = stopping.elapsed();
    eprintln!(
        "handover after SIGTERM of the leader: {handover:?} (the process exited after {stopped_in:?})"
    );
    assert!(
        handover < HANDOVER_AFTER_SIGTERM,
        "handover took {handover:?}"
    );
    assert!(
        servers[f].log().contains("Lease handed back"),
        "the stopping leader did not hand the Lease back"
    );
    // The new leader keeps the fleet: both stores are still Ready and were not released again.
    for id in [&id, &id2] {
        servers[l].wait_phase(id, "Ready", READY_TIMEOUT).await;
        released_once(&servers[l], id).await;
    }
    let _ = &mut servers;
}

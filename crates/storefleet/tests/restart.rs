//! `kill -9` of the control plane while three stores provision, then a restart: all three become
//! Ready, with exactly one release each and no orphan namespace. Where the kill caught helm in the
//! middle of an install, the stale pending release must be recovered.
mod support;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use support::{Options, READY_TIMEOUT, Server};

#[tokio::test]
async fn kill_9_while_provisioning_then_restart_reaches_ready_without_duplicates() {
    let mut server = Server::start("restart", Options::default()).await;
    let client = server.cluster.client.clone();

    // Watch for helm release records in the pending-install state, from before anything is created
    // (a watch reports the record's creation even if helm finishes right after).
    let pending = watcher(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default().labels("owner=helm,status=pending-install"),
    );
    let mut pending = std::pin::pin!(pending);
    loop {
        match pending
            .next()
            .await
            .expect("watch stream")
            .expect("watching secrets")
        {
            watcher::Event::InitDone => break,
            _ => continue,
        }
    }
    let mut pending = pending
        .applied_objects()
        .map_ok(|s| s.namespace().unwrap_or_default());

    let mut ids = Vec::new();
    for i in 0..3 {
        let created: Value = server
            .create(json!({"name": format!("Restart Shop {i}")}))
            .await
            .json()
            .await
            .unwrap();
        ids.push(created["store_id"].as_str().unwrap().to_owned());
    }
    let ours: HashSet<String> = ids.iter().cloned().collect();

    // Kill the moment helm is writing one of our releases, so the kill leaves it pending.
    let caught = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(ns) = pending.next().await {
            if ours.contains(&ns.expect("watching secrets")) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    server.kill9();
    assert!(caught, "never saw a release being installed");
    let pending_after_kill = pending_records(&client, &ids).await;
    eprintln!("pending release records after kill -9: {pending_after_kill:?}");

    server.restart().await;
    for id in &ids {
        server.wait_phase(id, "Ready", READY_TIMEOUT).await;
    }

    // No duplicates, no orphans: three Stores, three namespaces, one deployed release each.
    let stores: BTreeSet<String> = server
        .cluster_stores()
        .await
        .iter()
        .map(|s| s.name_any())
        .collect();
    let expected: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(stores, expected);
    let namespaces: BTreeSet<String> = server.cluster_namespaces().await.into_iter().collect();
    assert_eq!(namespaces, expected, "orphan or missing namespaces");
    for id in &ids {
        assert_eq!(
            server.helm_releases(id),
            vec![id.clone()],
            "releases in {id}"
        );
        let status = testkit::run_ok(
            server
                .cluster
                .helm()
                .args(["status", id, "-n", id, "-o", "json"]),
        );
        let status: Value = serde_json::from_str(&status).unwrap();
        assert_eq!(status["info"]["status"], "deployed", "{id}");
    }
    assert!(
        pending_records(&client, &ids).await.is_empty(),
        "pending release records remain"
    );
    // A stale pending release was recovered visibly.
    if !pending_after_kill.is_empty() {
        let (_, store) = server
            .get_json(&format!("/stores/{}", pending_after_kill[0]))
            .await;
        let log = server.log();
        assert!(
            log.contains("removed the stale record"),
            "no unlock for {}: {store:#}",
            pending_after_kill[0]
        );
    }
    let creates = server
        .audit("?limit=1000")
        .await
        .into_iter()
        .filter(|e| e["action"] == "create")
        .count();
    assert_eq!(creates, 3);
}

/// Namespaces (of `ids`) holding a release record in a pending state.
async fn pending_records(client: &kube::Client, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let secrets = Api::<Secret>::namespaced(client.clone(), id)
            .list(&ListParams::default().labels("owner=helm"))
            .await;
        if let Ok(list) = secrets
            && list.items.iter().any(|s| {
                s.labels()
                    .get("status")
                    .is_some_and(|v| v.starts_with("pending-"))
            })
        {
            out.push(id.clone());
        }
    }
    out
}

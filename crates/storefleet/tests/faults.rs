//! The fault suite, on the shared test cluster: the control plane killed with -9 while stores
//! provision and while one is deleted, helm failing, a crashing image, an image that never pulls, a
//! namespace deleted by hand under a Ready store, and 50 concurrent creates with room for 5. Each ends
//! in a clear state, and with the orphan check (`Server::assert_no_orphans`). The API-server outage
//! needs a cluster of its own: `faults_outage.rs`.
mod support;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{Options, READY_TIMEOUT, Server, stores_api};

const BROKEN_IMAGE: &str = "example.invalid/broken-wordpress";
const CRASH_IMAGE: &str = "example.invalid/crash-wordpress";

/// A watch on helm release records (Secrets) with `labels`, started before whatever it should catch;
/// answers the namespaces of records created or changed from then on.
async fn watch_release_records(
    api: Api<Secret>,
    labels: &str,
) -> impl futures::Stream<Item = String> + Unpin {
    let mut stream = watcher(api, watcher::Config::default().labels(labels)).boxed();
    loop {
        match stream
            .next()
            .await
            .expect("watch stream")
            .expect("watching secrets")
        {
            watcher::Event::InitDone => break,
            _ => continue,
        }
    }
    stream
        .applied_objects()
        .map_ok(|s| s.namespace().unwrap_or_default())
        .map(|r| r.expect("watching secrets"))
        .boxed()
}

async fn create_id(server: &Server, name: &str) -> String {
    let r = server.create(json!({ "name": name })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED, "create {name}");
    let body: Value = r.json().await.unwrap();
    body["store_id"].as_str().unwrap().to_owned()
}

fn condition(store: &Value, type_: &str) -> Value {
    store["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition: {store:#}"))
}

#[tokio::test]
async fn kill_9_while_provisioning_then_restart_reaches_ready_without_duplicates() {
    let mut server = Server::start("kill-prov", Options::default()).await;
    let client = server.cluster.client.clone();
    // From before anything is created: a watch reports the record's creation even if helm finishes
    // right after.
    let mut pending = watch_release_records(
        Api::all(client.clone()),
        "owner=helm,status=pending-install",
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(create_id(&server, &format!("Restart Shop {i}")).await);
    }
    let ours: HashSet<String> = ids.iter().cloned().collect();

    // Kill the moment helm is writing one of our releases, so the kill leaves it pending.
    let caught = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(ns) = pending.next().await {
            if ours.contains(&ns) {
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
    let stores: BTreeSet<String> = server
        .cluster_stores()
        .await
        .iter()
        .map(|s| s.name_any())
        .collect();
    assert_eq!(stores, ids.iter().cloned().collect());
    for id in &ids {
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
    if let Some(id) = pending_after_kill.first() {
        let (_, store) = server.get_json(&format!("/stores/{id}")).await;
        assert!(
            server.log().contains("removed the stale record"),
            "no unlock for {id}: {store:#}"
        );
    }
    let creates = server
        .audit("?limit=1000")
        .await
        .into_iter()
        .filter(|e| e["action"] == "create")
        .count();
    assert_eq!(creates, 3);
    server.assert_no_orphans().await;
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

#[tokio::test]
async fn kill_9_while_deleting_then_restart_finishes_the_deletion() {
    let mut server = Server::start("kill-del", Options::default()).await;
    let client = server.cluster.client.clone();
    let id = create_id(&server, "Doomed Shop").await;
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;

    let (status, body) = server.delete_store(&id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Kill once the controller is cleaning up (the garbage collector is deleting the namespace, or
    // helm uninstalls the release): the Store is held by its finalizer with a deletionTimestamp.
    let stores = stores_api(&client);
    testkit::wait_for(
        "the controller to start deleting",
        READY_TIMEOUT,
        || async {
            let store = stores.get_opt(&id).await.unwrap();
            let phase = store.as_ref().and_then(|s| s.status.as_ref()?.phase);
            assert!(store.is_some(), "{id} was gone before the kill");
            (phase.map(|p| p.as_str()) == Some("Deleting")).then_some(())
        },
    )
    .await;
    server.kill9();
    let store = stores
        .get_opt(&id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} was gone before the kill: too late to test"));
    assert!(store.metadata.deletion_timestamp.is_some());
    assert!(
        store
            .finalizers()
            .iter()
            .any(|f| f == "storefleet.dev/cleanup"),
        "the finalizer holds the Store while the control plane is down"
    );

    server.restart().await;
    server.wait_gone(&id).await;
    server.assert_no_orphans().await;
    assert!(server.cluster_stores().await.is_empty());
}

#[tokio::test]
async fn helm_failing_ends_failed_with_helms_error_and_delete_cleans_up() {
    // The store chart refuses any engine but its own, at template time.
    let server = Server::start(
        "helm-fail",
        Options {
            provision_timeout: "20s",
            extra_values: vec!["engine: magento\n".into()],
            ..Options::default()
        },
    )
    .await;
    let id = create_id(&server, "Unrenderable Shop").await;
    let store = server.wait_phase(&id, "Failed", READY_TIMEOUT).await;
    let message = store["message"].as_str().unwrap();
    assert!(
        message.contains("helm") && message.contains(r#"engine "magento" needs its own chart"#),
        "the message names helm's error: {store:#}"
    );
    assert_eq!(condition(&store, "Ready")["reason"], "HelmFailed");
    let released = condition(&store, "Released");
    assert_eq!(released["status"], "False");
    assert!(
        released["message"]
            .as_str()
            .unwrap()
            .contains("needs its own chart")
    );
    assert!(server.helm_releases(&id).is_empty(), "no release was made");
    let failed = server
        .audit(&format!("?store_id={id}"))
        .await
        .into_iter()
        .filter(|e| e["action"] == "failed" && e["outcome"] == "HelmFailed")
        .count();
    assert_eq!(failed, 1);
    server.assert_no_orphans().await;

    server.delete_leaving_nothing(&id).await;
}

#[tokio::test]
async fn crash_loop_ends_failed_naming_the_container_and_delete_cleans_up() {
    let server = Server::start(
        "crash",
        Options {
            provision_timeout: "25s",
            extra_values: vec![format!(
                "wordpress:\n  image:\n    repository: {CRASH_IMAGE}\n"
            )],
            ..Options::default()
        },
    )
    .await;
    let id = create_id(&server, "Crashing Shop").await;
    let store = server.wait_phase(&id, "Failed", READY_TIMEOUT).await;
    assert_eq!(condition(&store, "Ready")["reason"], "CrashLoopBackOff");
    let message = store["message"].as_str().unwrap();
    assert!(
        message.contains(CRASH_IMAGE)
            && message.contains("keeps crashing")
            && message.starts_with("not ready after 25s"),
        "{store:#}"
    );
    // The release itself is fine: it is the workload that fails.
    assert_eq!(server.helm_releases(&id), vec![id.clone()]);
    server.assert_no_orphans().await;

    server.delete_leaving_nothing(&id).await;
}

#[tokio::test]
async fn broken_image_fails_naming_the_image_and_delete_cleans_up() {
    let server = Server::start(
        "broken",
        Options {
            provision_timeout: "30s",
            wait_limit: "240s",
            extra_values: vec![format!(
                "wordpress:\n  image:\n    repository: {BROKEN_IMAGE}\n"
            )],
            ..Options::default()
        },
    )
    .await;

    // ?wait=true answers 500 with the store id and the reason once the deadline passes.
    let r = server
        .req(Method::POST, "/stores?wait=true")
        .json(&json!({"name": "Broken Shop"}))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: Value = r.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://storefleet.dev/problems/store-failed"
    );
    let id = problem["store_id"]
        .as_str()
        .expect("the problem names the store")
        .to_owned();
    assert!(
        problem["detail"].as_str().unwrap().contains(BROKEN_IMAGE),
        "{problem:#}"
    );

    let (status, store) = server.get_json(&format!("/stores/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store["status"], "Failed");
    assert!(
        store["message"].as_str().unwrap().contains(BROKEN_IMAGE),
        "{store:#}"
    );
    let ready = condition(&store, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ImagePullBackOff");
    let failed: Vec<Value> = server
        .audit(&format!("?store_id={id}"))
        .await
        .into_iter()
        .filter(|e| e["action"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "one failed entry");
    assert!(failed[0]["detail"].as_str().unwrap().contains(BROKEN_IMAGE));
    server.assert_no_orphans().await;

    // Failed is terminal: it stays Failed (no retry loop) and can be deleted.
    let (_, again) = server.get_json(&format!("/stores/{id}")).await;
    assert_eq!(again["status"], "Failed");
    server.delete_leaving_nothing(&id).await;
}

#[tokio::test]
async fn namespace_deleted_under_a_ready_store_is_recreated() {
    let server = Server::start("ns-lost", Options::default()).await;
    let client = server.cluster.client.clone();
    let namespaces = Api::<Namespace>::all(client.clone());
    let id = create_id(&server, "Fragile Shop").await;
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    let old_uid = namespaces.get(&id).await.unwrap().uid().unwrap();

    // What `kubectl delete namespace <id>` does.
    namespaces
        .delete(&id, &DeleteParams::default())
        .await
        .unwrap();

    // The controller notices, recreates the namespace and reinstalls the release: Ready again, in a
    // new namespace, and the conditions say what happened.
    let store = testkit::wait_for(
        "the store to be Ready again in a recreated namespace",
        READY_TIMEOUT,
        || async {
            let (_, store) = server.get_json(&format!("/stores/{id}")).await;
            let recreated = condition(&store, "NamespaceReady")["reason"] == "Recreated";
            let ns = namespaces.get_opt(&id).await.unwrap()?;
            let new = ns.uid() != Some(old_uid.clone()) && ns.metadata.deletion_timestamp.is_none();
            (store["status"] == "Ready" && recreated && new).then_some(store)
        },
    )
    .await;
    assert!(
        condition(&store, "NamespaceReady")["message"]
            .as_str()
            .unwrap()
            .contains("deleted outside Storefleet"),
        "{store:#}"
    );
    let events = Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default().fields(&format!("involvedObject.name={id}")))
        .await
        .unwrap();
    let lost = events
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("NamespaceLost"))
        .expect("a NamespaceLost event on the store");
    assert_eq!(lost.type_.as_deref(), Some("Warning"));
    assert!(lost.message.as_deref().unwrap().contains("recreating"));
    server.assert_no_orphans().await;

    server.delete_leaving_nothing(&id).await;
}

#[tokio::test]
async fn fifty_concurrent_creates_with_room_for_five() {
    let server = Server::start(
        "fifty",
        Options {
            max_stores: 5,
            // The write rate limit is not under test here: the quota is.
            extra_args: vec!["--rate-limit-writes-burst=100".into()],
            ..Options::default()
        },
    )
    .await;
    let requests = (0..50).map(|i| server.create(json!({ "name": format!("Rush Shop {i}") })));
    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    for r in futures::future::join_all(requests).await {
        match r.status() {
            StatusCode::ACCEPTED => {
                let body: Value = r.json().await.unwrap();
                accepted.insert(body["store_id"].as_str().unwrap().to_owned());
            }
            StatusCode::FORBIDDEN => {
                assert_eq!(
                    r.headers()[header::CONTENT_TYPE],
                    "application/problem+json"
                );
                let body: Value = r.json().await.unwrap();
                assert!(
                    body["type"].as_str().unwrap().ends_with("/quota-exceeded"),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.text().await.unwrap()),
        }
    }
    assert_eq!((accepted.len(), refused), (5, 45));
    for id in &accepted {
        server.wait_phase(id, "Ready", READY_TIMEOUT).await;
    }
    let stores: BTreeSet<String> = server
        .cluster_stores()
        .await
        .iter()
        .map(|s| s.name_any())
        .collect();
    assert_eq!(stores, accepted);
    let namespaces: BTreeSet<String> = server.cluster_namespaces().await.into_iter().collect();
    assert_eq!(namespaces, accepted);
    for id in &accepted {
        assert_eq!(server.helm_releases(id), vec![id.clone()]);
    }
    server.assert_no_orphans().await;

    for id in &accepted {
        let (status, _) = server.delete_store(id).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    for id in &accepted {
        server.wait_gone(id).await;
    }
    server.assert_no_orphans().await;
    assert!(server.cluster_stores().await.is_empty());
}

/// The orphan check can fail: a namespace of the instance without a Store, and a release in it.
#[tokio::test]
async fn orphan_check_reports_a_stray_namespace_and_release() {
    let server = Server::start("orphans", Options::default()).await;
    let name = format!("store-{:06x}", rand::random_range(0..=0xff_ffffu32));
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "storefleet.dev/instance": server.instance, "storefleet.dev/store-id": name}}
    }))
    .unwrap();
    Api::<Namespace>::all(server.cluster.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/store");
    testkit::run_ok(server.cluster.helm().args([
        "install".as_ref(),
        name.as_ref(),
        chart.as_os_str(),
        "-n".as_ref(),
        name.as_ref(),
    ]));
    let report = server.orphan_report().await;
    let said = |what: &str| report.violations.iter().any(|v| v.contains(what));
    assert!(
        said(&format!("namespace {name} has no live Store")),
        "{report:#?}"
    );
    assert!(
        said(&format!("release {name} (deployed) in namespace {name}")),
        "{report:#?}"
    );
    // The Server's cleanup removes the namespace (by the instance label), and the release with it.
}

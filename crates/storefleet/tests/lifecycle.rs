//! Stores from creation to Ready to gone, against the test cluster and the real store chart.
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use kube::api::{Api, ListParams};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{EventStream, Options, READY_TIMEOUT, Server};

fn is_store_id(s: &str) -> bool {
    s.strip_prefix("store-").is_some_and(|h| {
        h.len() == 6
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

#[tokio::test]
async fn full_lifecycle_create_ready_list_get_audit_delete_gone() {
    let server = Server::start("life", Options::default()).await;
    let name = "Café \"Zürich\" 🛒: #1";

    let r = server
        .create(json!({"engine": "woocommerce", "name": name}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let created: Value = r.json().await.unwrap();
    let id = created["store_id"].as_str().unwrap().to_owned();
    assert!(is_store_id(&id), "{id}");
    assert_eq!(location, format!("/stores/{id}"));
    assert_eq!(created["name"], name);
    assert_eq!(created["engine"], "woocommerce");
    assert_eq!(created["status"], "Provisioning");
    assert_eq!(created["url"], format!("http://{id}.localhost"));
    assert_eq!(created["namespace"], id.as_str());
    assert_eq!(created["owner"], "admin");
    assert!(created["created_at"].is_string());

    let ready = server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    assert!(ready["ready_at"].is_string(), "{ready:#}");
    assert_eq!(
        ready["admin_url"],
        format!("http://{id}.localhost/wp-admin/")
    );
    let conditions = ready["conditions"].as_array().unwrap();
    for type_ in [
        "NamespaceReady",
        "Released",
        "WorkloadsReady",
        "SetupComplete",
        "Ready",
    ] {
        let c = conditions
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap_or_else(|| panic!("no {type_}: {ready:#}"));
        assert_eq!(c["status"], "True", "{type_}: {c}");
    }

    // The list shows it, Ready.
    let (status, list) = server.get_json("/stores").await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["store_id"] == id.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{list:#}");
    assert_eq!(listed[0]["status"], "Ready");

    // The cluster agrees: a labelled namespace, one deployed release with our values, a Ready Store.
    let client = server.cluster.client.clone();
    let ns = Api::<Namespace>::all(client.clone())
        .get(&id)
        .await
        .unwrap();
    let labels = ns.metadata.labels.unwrap();
    assert_eq!(labels["storefleet.dev/store-id"], id);
    assert_eq!(labels["storefleet.dev/instance"], server.instance);
    assert_eq!(labels["storefleet.dev/owner"], "admin");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "storefleet");
    assert_eq!(server.helm_releases(&id), vec![id.clone()]);
    let values = testkit::run_ok(
        server
            .cluster
            .helm()
            .args(["get", "values", &id, "-n", &id, "-o", "json"]),
    );
    let values: Value = serde_json::from_str(&values).unwrap();
    assert_eq!(values["storeId"], id.as_str());
    assert_eq!(values["host"], format!("{id}.localhost"));
    assert_eq!(
        values["siteTitle"], name,
        "the display name reaches the chart intact"
    );
    assert_eq!(values["siteUrl"], format!("http://{id}.localhost"));
    Api::<Secret>::namespaced(client.clone(), &id)
        .get(&format!("{id}-credentials"))
        .await
        .expect("credentials Secret");
    let kubectl = testkit::run_ok(server.cluster.kubectl().args(["get", "stores", &id]));
    assert!(
        kubectl.contains("STATUS")
            && kubectl.contains("Ready")
            && kubectl.contains(&format!("http://{id}.localhost")),
        "{kubectl}"
    );
    testkit::run_ok(server.cluster.kubectl().args(["get", "store", &id]));

    // Kubernetes Events tell the story on the Store.
    let events = Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    let reasons: Vec<String> = events
        .items
        .iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(id.as_str())
                && e.involved_object.kind.as_deref() == Some("Store")
        })
        .filter_map(|e| e.reason.clone())
        .collect();
    for reason in ["Provisioning", "NamespaceCreated", "Released", "Ready"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason} event in {reasons:?}"
        );
    }

    // The audit log, newest first.
    let audit = server.audit(&format!("?store_id={id}")).await;
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["ready", "create"], "{audit:#?}");
    assert_eq!(audit[1]["actor"], "admin");
    assert!(
        audit[1]["remote_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(audit[0]["id"].as_i64() > audit[1]["id"].as_i64());

    // Delete, again while deleting, then gone everywhere.
    let (status, body) = server.delete_store(&id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({"store_id": id, "status": "Deleting"}));
    let (status, body) = server.delete_store(&id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    server.wait_gone(&id).await;
    let audit = server.audit(&format!("?store_id={id}&limit=2")).await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0]["action"], "delete");
    assert_eq!(audit[0]["outcome"], "completed");
}

#[tokio::test]
async fn wait_true_answers_201_once_ready() {
    let server = Server::start(
        "wait",
        Options {
            wait_limit: "200s",
            ..Options::default()
        },
    )
    .await;
    let r = server
        .req(Method::POST, "/stores?wait=true")
        .json(&json!({"name": "Waited For"}))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id_from_location = r.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .trim_start_matches("/stores/")
        .to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "Ready");
    assert_eq!(body["store_id"], id_from_location.as_str());
    assert!(body["ready_at"].is_string());
    let (status, _) = server.delete_store(&id_from_location).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.wait_gone(&id_from_location).await;
}

#[tokio::test]
async fn events_stream_sends_the_current_state_then_every_change() {
    let server = Server::start("sse", Options::default()).await;
    let r = server
        .req(Method::GET, "/stores/store-abcdef/events")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let created: Value = server
        .create(json!({"name": "Streamed"}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["store_id"].as_str().unwrap().to_owned();
    let r = server
        .req(Method::GET, &format!("/stores/{id}/events"))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = EventStream::new(r);

    let (name, first) = events.next().await.expect("a first event");
    assert_eq!(name, "store");
    assert_eq!(first["store_id"], id.as_str());
    let mut seen = vec![first["status"].as_str().unwrap().to_owned()];
    let mut previous = first;
    // Every later event is a change, until Ready.
    tokio::time::timeout(READY_TIMEOUT, async {
        while seen.last().unwrap() != "Ready" {
            let (name, store) = events.next().await.expect("the stream goes on");
            assert_eq!(name, "store");
            assert_eq!(store["store_id"], id.as_str());
            assert_ne!(store, previous, "an event without a change");
            seen.push(store["status"].as_str().unwrap().to_owned());
            previous = store;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no Ready event; saw {seen:?}"));
    assert!(seen.len() >= 2, "{seen:?}");

    let (status, _) = server.delete_store(&id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut after_delete = Vec::new();
    tokio::time::timeout(support::GONE_TIMEOUT, async {
        loop {
            let (name, data) = events
                .next()
                .await
                .expect("the stream goes on until deleted");
            if name == "deleted" {
                assert_eq!(data["store_id"], id.as_str());
                break;
            }
            after_delete.push(data["status"].as_str().unwrap().to_owned());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no deleted event; saw {after_delete:?}"));
    assert!(
        after_delete.iter().any(|s| s == "Deleting"),
        "{after_delete:?}"
    );
    assert!(
        events.next().await.is_none(),
        "the stream ends after `deleted`"
    );
    server.wait_gone(&id).await;
}

#[tokio::test]
async fn deleting_a_store_while_it_provisions_leaves_nothing_behind() {
    let server = Server::start("delprov", Options::default()).await;
    let created: Value = server
        .create(json!({"name": "Short Lived"}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["store_id"].as_str().unwrap().to_owned();
    // Wait until provisioning has visibly started in the cluster (the namespace exists).
    let client = server.cluster.client.clone();
    testkit::wait_for("the store's namespace", Duration::from_secs(120), || {
        let client = client.clone();
        let id = id.clone();
        async move {
            Api::<Namespace>::all(client)
                .get_opt(&id)
                .await
                .unwrap()
                .map(drop)
        }
    })
    .await;
    let (_, now) = server.get_json(&format!("/stores/{id}")).await;
    assert_ne!(
        now["status"], "Ready",
        "too late to test deleting while provisioning"
    );
    let (status, body) = server.delete_store(&id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    server.wait_gone(&id).await;
    assert!(
        server.cluster_namespaces().await.is_empty(),
        "an orphan namespace is left"
    );
    assert!(server.cluster_stores().await.is_empty());
}

#[tokio::test]
async fn kubectl_apply_of_a_store_is_provisioned_like_the_api() {
    let server = Server::start("kubectl", Options::default()).await;
    let id = format!("store-{:06x}", rand::random_range(0..=0xff_ffffu32));
    let manifest = format!(
        "apiVersion: storefleet.dev/v1alpha1\nkind: Store\nmetadata:\n  name: {id}\n  labels:\n    storefleet.dev/instance: {}\n\
         spec:\n  name: Applied By Hand\n  owner: admin\n",
        server.instance
    );
    let path = std::env::temp_dir().join(format!("{id}.yaml"));
    std::fs::write(&path, &manifest).unwrap();
    testkit::run_ok(server.cluster.kubectl().args(["apply", "-f"]).arg(&path));

    let ready = server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    assert_eq!(ready["name"], "Applied By Hand");
    assert_eq!(ready["engine"], "woocommerce", "the engine defaults");
    let (_, list) = server.get_json("/stores").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["store_id"] == id.as_str())
    );
    assert_eq!(server.helm_releases(&id), vec![id.clone()]);

    // A Store whose name is not a store id is refused visibly, and nothing is made for it.
    let bad = format!(
        "apiVersion: storefleet.dev/v1alpha1\nkind: Store\nmetadata:\n  name: my-shop-{}\n  labels:\n    storefleet.dev/instance: {}\nspec:\n  owner: admin\n",
        &id[6..],
        server.instance
    );
    std::fs::write(&path, &bad).unwrap();
    testkit::run_ok(server.cluster.kubectl().args(["apply", "-f"]).arg(&path));
    let bad_name = format!("my-shop-{}", &id[6..]);
    let stores = support::stores_api(&server.cluster.client);
    let status = testkit::wait_for(
        "the bad Store to be refused",
        Duration::from_secs(60),
        || async {
            stores
                .get(&bad_name)
                .await
                .unwrap()
                .status
                .filter(|s| s.phase.is_some())
        },
    )
    .await;
    assert!(status.message.unwrap().contains("not a store id"));
    assert!(
        Api::<Namespace>::all(server.cluster.client.clone())
            .get_opt(&bad_name)
            .await
            .unwrap()
            .is_none()
    );
    testkit::run_ok(server.cluster.kubectl().args([
        "delete",
        "store",
        &bad_name,
        "--wait=true",
        "--timeout=60s",
    ]));

    // `kubectl delete` goes through the same cleanup.
    testkit::run_ok(
        server
            .cluster
            .kubectl()
            .args(["delete", "store", &id, "--wait=false"]),
    );
    server.wait_gone(&id).await;
    let _ = std::fs::remove_file(&path);
}

//! The warm pool (issue 16, docs/pool.md) against the test cluster: `POST /stores` claims a Ready
//! pool store or takes the cold path; a claimed store is its owner's and nothing of the pool's;
//! concurrent creates never share a pool store; `kill -9` during the refill and during a claim
//! loses, doubles and double-claims nothing; members never see pool stores; a pool store that
//! fails, or breaks after it was Ready, is never handed out and is replaced.
//! What WordPress itself makes of a claim (the old admin password refused by `wp-login.php`) is in
//! tests/realpods.rs: the stand-in kubelet runs no WordPress.
mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storefleet::crd::Store;
use support::{Options, READY_TIMEOUT, Server, problem_kind};

const POOL_LABEL: &str = "storefleet.dev/pool";
const BROKEN_SINCE: &str = "storefleet.dev/pool-broken-since";

fn options(pool: &str, max_stores: u32) -> Options {
    Options {
        max_stores,
        // 50 creates at once from one address: above the write limits a client normally has.
        extra_args: vec![
            "--pool".into(),
            pool.into(),
            "--rate-limit-writes-burst".into(),
            "100".into(),
        ],
        ..Options::default()
    }
}

/// Unclaimed pool stores as the API server has them (not being deleted).
async fn pool_stores(server: &Server) -> Vec<Store> {
    server
        .cluster_stores()
        .await
        .into_iter()
        .filter(|s| s.labels().contains_key(POOL_LABEL) && s.metadata.deletion_timestamp.is_none())
        .collect()
}

fn is_ready(s: &Store) -> bool {
    s.status
        .as_ref()
        .and_then(|st| st.phase)
        .is_some_and(|p| p == storefleet::crd::Phase::Ready)
}

/// Waits until the pool holds `n` Ready stores, and answers their ids.
async fn wait_pool_ready(server: &Server, n: usize) -> Vec<String> {
    testkit::wait_for(
        &format!("{n} ready pool store(s)"),
        READY_TIMEOUT,
        || async {
            let pool = pool_stores(server).await;
            let ready: Vec<String> = pool
                .iter()
                .filter(|s| is_ready(s))
                .map(|s| s.name_any())
                .collect();
            (ready.len() >= n).then_some(ready)
        },
    )
    .await
}

async fn secret_data(client: &Client, id: &str) -> (BTreeMap<String, String>, Option<String>) {
    let secret = Api::<Secret>::namespaced(client.clone(), id)
        .get(&format!("{id}-credentials"))
        .await
        .expect("credentials Secret");
    let data = secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect();
    let generation = secret
        .annotations()
        .get("storefleet.dev/identity-generation")
        .cloned();
    (data, generation)
}

/// The environment of the store's current setup Job (the newest), by variable name.
async fn setup_env(client: &Client, id: &str) -> BTreeMap<String, String> {
    let jobs = Api::<Job>::namespaced(client.clone(), id)
        .list(&ListParams::default().labels("app.kubernetes.io/component=setup"))
        .await
        .unwrap()
        .items;
    let newest = jobs
        .iter()
        .max_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .expect("a setup Job");
    let spec = newest
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    spec.containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.value.map(|v| (e.name, v)))
        .collect()
}

/// The hosts the store's HTTPRoutes and Ingresses route (whichever the chart's routing made).
fn routed_hosts(server: &Server, id: &str) -> Vec<String> {
    let out = server
        .cluster
        .kubectl()
        .args(["get", "httproutes,ingresses", "-n", id, "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut hosts = Vec::new();
    for item in list["items"].as_array().unwrap() {
        for h in item["spec"]["hostnames"].as_array().into_iter().flatten() {
            hosts.push(h.as_str().unwrap().to_owned());
        }
        for r in item["spec"]["rules"].as_array().into_iter().flatten() {
            if let Some(h) = r["host"].as_str() {
                hosts.push(h.to_owned());
            }
        }
    }
    hosts
}

async fn metric(server: &Server, prefix: &str) -> f64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {prefix} in:\n{text}"))
}

#[tokio::test]
async fn a_create_claims_a_ready_pool_store_which_becomes_the_callers_alone() {
    let server = Server::start("pool-claim", options("woocommerce/small=1", 5)).await;
    let client = server.cluster.client.clone();
    let pooled = wait_pool_ready(&server, 1).await.remove(0);
    let (before, _) = secret_data(&client, &pooled).await;
    let alice = server.create_user("alice", "member", 2).await;
    let alice_token = alice["token"].as_str().unwrap();

    // Members never see the pool (list, get, events); admins see it, marked.
    let (status, listed) = server
        .call(Some(alice_token), Method::GET, "/stores", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = listed.get("items").unwrap_or(&listed);
    assert_eq!(items, &json!([]), "a member sees the pool: {listed}");
    for path in [
        format!("/stores/{pooled}"),
        format!("/stores/{pooled}/events"),
        format!("/stores/{pooled}/credentials"),
    ] {
        let (status, _) = server
            .call(Some(alice_token), Method::GET, &path, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "a member reached {path}");
    }
    let (_, admin_view) = server.get_json(&format!("/stores/{pooled}")).await;
    assert_eq!(admin_view["pool"], true, "{admin_view}");
    let (status, pool) = server.get_json("/pool").await;
    assert_eq!(status, StatusCode::OK, "{pool}");
    assert_eq!(
        pool,
        json!([{"engine": "woocommerce", "plan": "small", "target": 1, "stores": 1, "ready": 1}])
    );
    let (status, _) = server
        .call(Some(alice_token), Method::GET, "/pool", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a member reads the pool");

    let asked = chrono::Utc::now();
    let (status, view) = server
        .call(
            Some(alice_token),
            Method::POST,
            "/stores",
            Some(json!({"name": "Alice's Shop"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    assert_eq!(view["store_id"], pooled.as_str(), "not claimed: {view}");
    // Same answer shape as a cold create, and nothing of the pool in it.
    assert_eq!(view["name"], "Alice's Shop");
    assert_eq!(view["owner"], "alice");
    assert_eq!(
        view["status"], "Provisioning",
        "Ready before it is alice's: {view}"
    );
    assert!(view.get("pool").is_none(), "{view}");
    assert!(view["ready_at"].is_null(), "the pool's ready_at: {view}");
    let created: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(view["created_at"].clone()).unwrap();
    assert!(
        created >= asked - chrono::Duration::seconds(1),
        "created_at is the pool's, not the claim's: {view}"
    );

    let ready = server.wait_phase(&pooled, "Ready", READY_TIMEOUT).await;
    assert_eq!(ready["name"], "Alice's Shop");
    let store = support::stores_api(&client).get(&pooled).await.unwrap();
    assert_eq!(store.spec.owner, "alice");
    assert!(!store.labels().contains_key(POOL_LABEL));
    assert_eq!(store.labels()["storefleet.dev/owner"], "alice");

    // What the store's own objects say: the title the setup Job gives WordPress, its URL, the
    // Ingress host, and a new admin password (the only key of the Secret that changes).
    let env = setup_env(&client, &pooled).await;
    assert_eq!(env["SITE_TITLE"], "Alice's Shop", "{env:?}");
    assert_eq!(env["SITE_URL"], ready["url"].as_str().unwrap());
    assert_eq!(env["IDENTITY_GENERATION"], "1");
    let host = ready["url"].as_str().unwrap().split("://").nth(1).unwrap();
    let host = host.split(['/', ':']).next().unwrap().to_owned();
    let hosts = routed_hosts(&server, &pooled);
    assert_eq!(hosts, [host]);
    let (after, generation) = secret_data(&client, &pooled).await;
    assert_eq!(generation.as_deref(), Some("1"));
    assert_ne!(
        before["wordpress-admin-password"], after["wordpress-admin-password"],
        "the pool's admin password is still the store's"
    );
    for (key, value) in &before {
        if key != "wordpress-admin-password" {
            assert_eq!(&after[key], value, "{key} changed");
        }
    }
    let (status, creds) = server
        .call(
            Some(alice_token),
            Method::GET,
            &format!("/stores/{pooled}/credentials"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    assert_eq!(
        creds["password"],
        after["wordpress-admin-password"].as_str()
    );

    // The same audit entry as a cold create; admins read where it came from.
    let audit = server.audit("").await;
    let entry = audit
        .iter()
        .find(|e| {
            e["store_id"] == pooled.as_str() && e["actor"] == "alice" && e["action"] == "create"
        })
        .unwrap_or_else(|| panic!("no create entry for the claim: {audit:?}"));
    assert!(
        entry["detail"].as_str().unwrap().contains("from the pool"),
        "{entry}"
    );

    // The pool refills with another store, and the metrics tell the story.
    let refilled = wait_pool_ready(&server, 1).await;
    assert!(!refilled.contains(&pooled), "{refilled:?}");
    assert_eq!(
        metric(
            &server,
            "storefleet_pool_claims_total{kind=\"woocommerce/small\"}"
        )
        .await,
        1.0
    );
    // `?wait=true` answers when the store is Ready as alice's, never with the pool's Ready view
    // from before the claim (scripts/bench saw that in 1 of 9 claims before `changes` kept to the
    // service's own last write).
    let (status, waited) = server
        .call(
            Some(alice_token),
            Method::POST,
            "/stores?wait=true",
            Some(json!({"name": "Second"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{waited}");
    assert_eq!(waited["store_id"], refilled[0].as_str(), "{waited}");
    assert_eq!(waited["name"], "Second", "{waited}");
    assert_eq!(waited["owner"], "alice", "{waited}");
    assert!(waited.get("pool").is_none(), "{waited}");
    let store = support::stores_api(&client)
        .get(&refilled[0])
        .await
        .unwrap();
    assert_eq!(
        store.status.unwrap().observed_generation,
        store.metadata.generation,
        "Ready before the store controller took the claim"
    );
    testkit::wait_for("the claim's time to Ready", READY_TIMEOUT, || async {
        (metric(
            &server,
            "storefleet_pool_claim_ready_duration_seconds_count",
        )
        .await
            >= 1.0)
            .then_some(())
    })
    .await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn with_no_ready_pool_store_a_create_takes_the_cold_path() {
    // One store may exist: the pool never takes the last slot, so it stays empty.
    let server = Server::start("pool-empty", options("woocommerce/small=2", 1)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        pool_stores(&server).await.is_empty(),
        "the pool took the last slot"
    );
    let r = server.create(json!({"name": "Cold"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let view: Value = r.json().await.unwrap();
    let id = view["store_id"].as_str().unwrap();
    let ready = server.wait_phase(id, "Ready", READY_TIMEOUT).await;
    assert_eq!(ready["name"], "Cold");
    assert_eq!(
        metric(
            &server,
            "storefleet_pool_fallbacks_total{kind=\"woocommerce/small\",reason=\"empty\"}"
        )
        .await,
        1.0
    );
    // Another plan than the pool's is no fallback: it was never the pool's to serve. (Refused
    // here by the limit, which is the limit's answer, not the pool's.)
    let r = server.create(json!({"name": "Big", "plan": "large"})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        metric(
            &server,
            "storefleet_pool_fallbacks_total{kind=\"woocommerce/small\",reason=\"empty\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn fifty_concurrent_creates_against_a_pool_of_five_claim_each_pool_store_once() {
    const MAX: u32 = 8;
    let server = Server::start("pool-race", options("woocommerce/small=5", MAX)).await;
    let pool: HashSet<String> = wait_pool_ready(&server, 5).await.into_iter().collect();
    assert_eq!(pool.len(), 5);
    let mut tokens = Vec::new();
    for i in 0..5 {
        let user = server.create_user(&format!("racer{i}"), "member", 10).await;
        tokens.push(user["token"].as_str().unwrap().to_owned());
    }
    let requests = (0..50).map(|i| {
        let token = tokens[i % 5].clone();
        let server = &server;
        async move {
            let r = server
                .as_user(&token, Method::POST, "/stores")
                .json(&json!({"name": format!("Shop {i}")}))
                .send()
                .await
                .expect("POST /stores");
            let status = r.status();
            (i, status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    let mut claimed = Vec::new();
    let mut cold = Vec::new();
    let mut refused = 0;
    for (i, status, body) in futures::future::join_all(requests).await {
        match status {
            StatusCode::ACCEPTED => {
                let id = body["store_id"].as_str().unwrap().to_owned();
                assert_eq!(body["name"], format!("Shop {i}"));
                if pool.contains(&id) {
                    claimed.push(id);
                } else {
                    cold.push(id);
                }
            }
            StatusCode::FORBIDDEN
                if matches!(
                    problem_kind(&body),
                    "quota-exceeded" | "user-quota-exceeded"
                ) =>
            {
                refused += 1
            }
            other => panic!("request {i}: unexpected {other}: {body}"),
        }
    }
    claimed.sort();
    let distinct: HashSet<&String> = claimed.iter().collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "a pool store given twice: {claimed:?}"
    );
    assert_eq!(
        claimed.len(),
        5,
        "every pool store claimed once: {claimed:?}"
    );
    assert_eq!(claimed.len() + cold.len() + refused, 50);
    // The limit: 5 claimed (already counted) + cold ones + whatever the refill made meanwhile.
    let stores = server.cluster_stores().await;
    assert!(
        stores.len() <= MAX as usize,
        "{} stores, limit {MAX}",
        stores.len()
    );
    assert!(cold.len() <= (MAX - 5) as usize, "{cold:?}");
    // Each claimed store has exactly the owner of the one request that got it.
    for s in &stores {
        if distinct.contains(&s.name_any()) {
            assert!(s.spec.owner.starts_with("racer"), "{:?}", s.spec);
            assert!(!s.labels().contains_key(POOL_LABEL));
        }
    }
    server.assert_healthy().await;
}

#[tokio::test]
async fn kill_9_during_refill_and_during_a_claim_loses_doubles_and_double_claims_nothing() {
    let mut server = Server::start("pool-kill", options("woocommerce/small=2", 6)).await;
    // During the refill: killed as soon as the first pool store exists.
    testkit::wait_for("a pool store", READY_TIMEOUT, || async {
        (!pool_stores(&server).await.is_empty()).then_some(())
    })
    .await;
    server.kill9();
    server.restart().await;
    let pool = wait_pool_ready(&server, 2).await;
    assert_eq!(pool.len(), 2);
    // Settled: never more than the target, whatever the kill interrupted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pool_stores(&server).await.len(), 2, "the pool was doubled");

    // During a claim: the request is under way when the process dies.
    let alice = server.create_user("alice", "member", 3).await;
    let token = alice["token"].as_str().unwrap().to_owned();
    for delay_ms in [5u64, 40, 120] {
        let name = format!("Shop {delay_ms}");
        let request = server
            .as_user(&token, Method::POST, "/stores")
            .json(&json!({"name": name}))
            .send();
        let request = tokio::spawn(request);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        server.kill9();
        let _ = request.await;
        server.restart().await;
        // Every store is either the pool's or alice's, whole: never half-claimed.
        for s in server.cluster_stores().await {
            let pooled = s.labels().contains_key(POOL_LABEL);
            let pool_owner = s.spec.owner == "storefleet";
            assert_eq!(pooled, pool_owner, "half-claimed: {:?}", s.metadata);
            if !pool_owner {
                assert_eq!(s.spec.owner, "alice");
            }
        }
        // The owner asks again (as a client whose request died does): one store of that name.
        let (status, view) = server
            .call(
                Some(&token),
                Method::POST,
                "/stores",
                Some(json!({"name": name})),
            )
            .await;
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "{status}: {view}"
        );
        let named: Vec<Store> = server
            .cluster_stores()
            .await
            .into_iter()
            .filter(|s| s.spec.name.as_deref() == Some(name.as_str()))
            .collect();
        assert_eq!(named.len(), 1, "{name} doubled");
        assert_eq!(named[0].name_any(), view["store_id"].as_str().unwrap());
        server
            .wait_phase(&named[0].name_any(), "Ready", READY_TIMEOUT)
            .await;
    }
    let (_, mine) = server
        .call(Some(&token), Method::GET, "/stores", None)
        .await;
    let mine = mine.get("items").unwrap_or(&mine);
    assert_eq!(mine.as_array().unwrap().len(), 3, "{mine}");
    // And the pool refills after it all.
    wait_pool_ready(&server, 2).await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn bad_pool_settings_are_refused_at_start() {
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/store");
    for (flag, expected) in [
        ("woocommerce/small", "expected <engine>/<plan>=<count>"),
        ("woocommerce/huge=1", "no plan `huge`"),
        ("woocommerce/small=500", "whole number from 0 to 50"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_storefleet"))
            .args([
                "serve",
                "--pool",
                flag,
                "--listen",
                "127.0.0.1:0",
                "--chart",
            ])
            .arg(&chart)
            .env("STOREFLEET_DATABASE_URL", "sqlite::memory:")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag}: started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{flag}: {stderr}");
    }
}

#[tokio::test]
async fn a_pool_store_that_fails_while_waiting_is_deleted_and_replaced() {
    // The stand-in kubelet never pulls an image whose tag says `broken`: every pool store of this
    // control plane fails at the provision timeout.
    let server = Server::start(
        "pool-fail",
        Options {
            provision_timeout: "10s",
            extra_values: vec!["wordpress:\n  image:\n    tag: 6.8.3-broken\n".into()],
            ..options("woocommerce/small=1", 4)
        },
    )
    .await;
    let first = testkit::wait_for("a pool store", READY_TIMEOUT, || async {
        pool_stores(&server)
            .await
            .first()
            .map(ResourceExt::name_any)
    })
    .await;
    testkit::wait_for("its replacement", READY_TIMEOUT, || async {
        let pool = pool_stores(&server).await;
        assert!(
            pool.len() <= 1,
            "the pool grew past its target: {}",
            pool.len()
        );
        pool.iter().any(|s| s.name_any() != first).then_some(())
    })
    .await;
    let audit = server.audit("").await;
    assert!(
        audit.iter().any(|e| e["store_id"] == first.as_str()
            && e["action"] == "delete"
            && e["detail"] == "pool store: it failed while waiting in the pool"),
        "{audit:?}"
    );
    // A failed pool store is never handed out: a create takes the cold path.
    let r = server.create(json!({"name": "Cold"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let view: Value = r.json().await.unwrap();
    assert!(
        !pool_stores(&server)
            .await
            .iter()
            .any(|s| s.name_any() == view["store_id"].as_str().unwrap()),
        "{view}"
    );
}

/// Sets the image of the store's WordPress Deployment (Recreate: the old pod goes first). On the
/// stand-in node an image named `*crash*` never becomes ready (CrashLoopBackOff).
async fn set_wordpress_image(client: &Client, id: &str, image: &str) -> String {
    let deployments = Api::<Deployment>::namespaced(client.clone(), id);
    let mut list = deployments
        .list(&ListParams::default().labels("app.kubernetes.io/component=wordpress"))
        .await
        .unwrap()
        .items;
    assert_eq!(list.len(), 1, "one WordPress Deployment in {id}");
    let deployment = list.remove(0);
    let spec = deployment.spec.template.spec.as_ref().unwrap();
    let before = spec.containers[0].image.clone().unwrap();
    deployments
        .patch(
            &deployment.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([{
                    "op": "replace",
                    "path": "/spec/template/spec/containers/0/image",
                    "value": image,
                }]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    before
}

async fn broken_mark(server: &Server, id: &str) -> Option<String> {
    server
        .cluster_stores()
        .await
        .into_iter()
        .find(|s| s.name_any() == id)
        .and_then(|s| s.annotations().get(BROKEN_SINCE).cloned())
}

#[tokio::test]
async fn a_ready_pool_store_that_breaks_is_not_handed_out_and_is_replaced() {
    // The grace a broken pool store gets is the provision timeout here (at most 2 minutes).
    let server = Server::start(
        "pool-broken",
        Options {
            provision_timeout: "20s",
            ..options("woocommerce/small=1", 4)
        },
    )
    .await;
    let client = server.cluster.client.clone();
    let id = wait_pool_ready(&server, 1).await.remove(0);

    // Its WordPress breaks while it waits: the store's own status still says Ready, but the pool
    // marks it, and a create takes the cold path rather than a store that is down.
    let image = set_wordpress_image(&client, &id, "example.invalid/crash-wordpress").await;
    testkit::wait_for("the pool to mark it broken", READY_TIMEOUT, || async {
        broken_mark(&server, &id).await
    })
    .await;
    // `GET /pool` counts from the API's cache: it may take a moment to see the mark.
    testkit::wait_for(
        "GET /pool to say none is claimable",
        READY_TIMEOUT,
        || async {
            let (_, pool) = server.get_json("/pool").await;
            assert_eq!(pool[0]["stores"], 1, "{pool}");
            (pool[0]["ready"] == 0).then_some(())
        },
    )
    .await;
    let r = server.create(json!({"name": "Cold"})).await;
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "the cold path answers 202"
    );
    let cold: Value = r.json().await.unwrap();
    assert_ne!(
        cold["store_id"],
        id.as_str(),
        "the broken pool store was handed out"
    );

    // It recovers within the grace: unmarked, and claimable again.
    set_wordpress_image(&client, &id, &image).await;
    testkit::wait_for("the mark to go", READY_TIMEOUT, || async {
        broken_mark(&server, &id).await.is_none().then_some(())
    })
    .await;
    testkit::wait_for("GET /pool to count it again", READY_TIMEOUT, || async {
        let (_, pool) = server.get_json("/pool").await;
        (pool[0]["ready"] == 1).then_some(())
    })
    .await;

    // It breaks again and stays broken past the grace: deleted, and replaced by a new one.
    set_wordpress_image(&client, &id, "example.invalid/crash-wordpress").await;
    let replacement = testkit::wait_for("a replacement", READY_TIMEOUT, || async {
        let pool = pool_stores(&server).await;
        assert!(
            pool.len() <= 1,
            "the pool grew past its target: {}",
            pool.len()
        );
        pool.iter()
            .find(|s| s.name_any() != id)
            .map(ResourceExt::name_any)
    })
    .await;
    let audit = server.audit("").await;
    let deleted = audit
        .iter()
        .find(|e| e["store_id"] == id.as_str() && e["action"] == "delete")
        .unwrap_or_else(|| panic!("no audit entry for deleting {id}: {audit:?}"));
    let detail = deleted["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("pool store: it broke while waiting in the pool: Deployment")
            && detail.contains("0/1 ready"),
        "{detail}"
    );
    server.wait_gone(&id).await;
    assert!(
        broken_mark(&server, &replacement).await.is_none(),
        "the replacement carries the old store's mark"
    );
}

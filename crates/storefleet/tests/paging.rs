//! `GET /stores` pages and filters, `GET /audit` pages, against the test cluster.
//!
//! The server runs as `--component api`: no controller reconciles the Store objects these tests
//! write straight into the cluster (with the status a controller would write), so a fleet costs
//! only API objects. Expected orders come from how the tests make the stores: their ids grow in
//! the order they are created, so "creation time, then store id" is creation order whatever
//! second each one lands in.
mod support;

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use storefleet::crd::{LABEL_INSTANCE, Store, StoreSpec};
use support::{Options, Server, problem_kind, stores_api};

async fn api_only(test: &str) -> Server {
    Server::start(
        test,
        Options {
            extra_args: vec!["--component".into(), "api".into()],
            ..Options::default()
        },
    )
    .await
}

/// Ids `store-<prefix><n>`: random per test (Store objects are cluster-wide), growing with `n`.
struct Ids(String);

impl Ids {
    fn new() -> Self {
        Self(format!("{:03x}", rand::random::<u16>() % 0x1000))
    }

    fn id(&self, n: u16) -> String {
        format!("store-{}{n:03x}", self.0)
    }
}

/// A Store of the server's instance, with the status a controller would have written.
async fn store(server: &Server, id: &str, name: &str, owner: &str, phase: Option<&str>) {
    let stores: Api<Store> = stores_api(&server.cluster.client);
    let mut s = Store::new(
        id,
        StoreSpec {
            name: Some(name.into()),
            engine: Default::default(),
            owner: owner.into(),
            plan: None,
            release: None,
            domains: vec![],
            identity_generation: 0,
        },
    );
    s.metadata.labels = Some([(LABEL_INSTANCE.to_owned(), server.instance.clone())].into());
    stores
        .create(&PostParams::default(), &s)
        .await
        .unwrap_or_else(|e| panic!("creating {id}: {e}"));
    if let Some(phase) = phase {
        stores
            .patch_status(
                id,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": { "phase": phase } })),
            )
            .await
            .unwrap();
    }
}

fn ids_of(views: &Value) -> Vec<String> {
    views
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {views}"))
        .iter()
        .map(|v| v["store_id"].as_str().unwrap().to_owned())
        .collect()
}

/// `GET /stores` as the admin (or `token`), expecting 200.
async fn list(server: &Server, token: Option<&str>, query: &str) -> Value {
    let (status, body) = server
        .call(token, Method::GET, &format!("/stores{query}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "GET /stores{query}: {body}");
    body
}

/// Waits until the server's list (its watch cache) shows exactly `ids`, in any order.
async fn wait_listed(server: &Server, ids: &[String]) {
    let want: HashSet<&String> = ids.iter().collect();
    testkit::wait_for(
        "GET /stores to show the cluster's stores",
        Duration::from_secs(60),
        || async {
            let listed = ids_of(&list(server, None, "").await);
            (listed.iter().collect::<HashSet<_>>() == want).then_some(())
        },
    )
    .await;
}

/// Every page from `query` on (which carries `limit`), following `next_cursor` to the end.
async fn all_pages(server: &Server, token: Option<&str>, query: &str) -> Vec<Value> {
    pages_from(server, token, query, None).await
}

/// Every page from `query` on, starting at `cursor`.
async fn pages_from(
    server: &Server,
    token: Option<&str>,
    query: &str,
    mut cursor: Option<String>,
) -> Vec<Value> {
    let mut pages = Vec::new();
    loop {
        let q = match &cursor {
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_owned(),
        };
        let page = list(server, token, &q).await;
        assert_eq!(
            page.as_object().map(|o| o.len()),
            Some(2),
            "a page is items and next_cursor only: {page}"
        );
        pages.push(page.clone());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(page["next_cursor"].is_null(), "{page}");
                return pages;
            }
        }
        assert!(pages.len() < 100, "pages do not end");
    }
}

#[tokio::test]
async fn pages_hold_every_store_once_in_order_while_stores_come_and_go() {
    let server = api_only("pages").await;
    let ids = Ids::new();
    let made: Vec<String> = (0..13).map(|n| ids.id(n)).collect();
    for (n, id) in made.iter().enumerate() {
        store(&server, id, &format!("Shop {n}"), "admin", Some("Ready")).await;
    }
    wait_listed(&server, &made).await;

    // No parameters: the array, as it always was, oldest first.
    let array = list(&server, None, "").await;
    assert_eq!(ids_of(&array), made, "creation order");

    // One page of 4, then the fleet changes: the page's last store (the cursor's) and a store not
    // yet listed are deleted, a new one is created.
    let first = list(&server, None, "?limit=4").await;
    assert_eq!(ids_of(&first["items"]), made[..4]);
    assert_eq!(
        first["items"].as_array().unwrap(),
        &array.as_array().unwrap()[..4]
    );
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_owned();
    assert!(
        cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe: {cursor}"
    );
    let stores: Api<Store> = stores_api(&server.cluster.client);
    for gone in [&made[3], &made[8]] {
        stores.delete(gone, &DeleteParams::default()).await.unwrap();
    }
    let newest = ids.id(13);
    store(&server, &newest, "Newest", "admin", None).await;
    let mut now: Vec<String> = made
        .iter()
        .filter(|id| *id != &made[3] && *id != &made[8])
        .cloned()
        .collect();
    now.push(newest.clone());
    wait_listed(&server, &now).await;

    let rest = pages_from(&server, None, "?limit=4", Some(cursor)).await;
    let sizes: Vec<usize> = rest
        .iter()
        .map(|p| p["items"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [4, 4, 1], "{rest:#?}");
    let mut seen = ids_of(&first["items"]);
    for page in &rest {
        seen.extend(ids_of(&page["items"]));
    }
    let mut expected: Vec<String> = made.iter().filter(|id| *id != &made[8]).cloned().collect();
    expected.push(newest.clone());
    assert_eq!(seen, expected, "each store once, in order");
    let newest_view = &rest[2]["items"][0];
    assert_eq!(newest_view["status"], "Provisioning");
    assert_eq!(newest_view["name"], "Newest");

    // Paged from the start now, the pages put together are the array.
    let pages = all_pages(&server, None, "?limit=3").await;
    let joined: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().clone())
        .collect();
    assert_eq!(Value::Array(joined), list(&server, None, "").await);
    assert_eq!(pages.len(), 4, "12 stores, 3 a page, no empty last page");
    let whole = list(&server, None, "?limit=500").await;
    assert_eq!(ids_of(&whole["items"]), now);
    assert_eq!(whole["next_cursor"], Value::Null);
}

#[tokio::test]
async fn filters_by_status_owner_and_text_with_and_without_pages() {
    let server = api_only("filters").await;
    let alice = server.create_user("alice", "member", 5).await;
    let alice = alice["token"].as_str().unwrap().to_owned();
    let ids = Ids::new();
    let fleet = [
        ("Blue Shop", "alice", Some("Ready")),
        ("Red Shop", "admin", Some("Ready")),
        ("blue-mart", "admin", Some("Failed")),
        ("Green", "alice", None),
        ("Café BLEU", "alice", Some("Ready")),
        ("Yellow", "admin", Some("Ready")),
    ];
    let made: Vec<String> = (0..fleet.len()).map(|n| ids.id(n as u16)).collect();
    for (id, (name, owner, phase)) in made.iter().zip(fleet) {
        store(&server, id, name, owner, phase).await;
    }
    wait_listed(&server, &made).await;
    let pick =
        |which: &[usize]| -> Vec<String> { which.iter().map(|&i| made[i].clone()).collect() };

    for (query, expected) in [
        ("?status=Ready", pick(&[0, 1, 4, 5])),
        ("?status=Failed", pick(&[2])),
        ("?status=Provisioning", pick(&[3])),
        ("?status=Deleting", pick(&[])),
        ("?owner=alice", pick(&[0, 3, 4])),
        ("?owner=nobody", pick(&[])),
        ("?q=BLUE", pick(&[0, 2])),
        ("?q=caf%C3%89", pick(&[4])),
        ("?q=", made.clone()),
        ("?status=Ready&owner=admin", pick(&[1, 5])),
        ("?status=Ready&q=shop", pick(&[0, 1])),
    ] {
        assert_eq!(
            ids_of(&list(&server, None, query).await),
            expected,
            "{query}"
        );
        let paged: Vec<String> = all_pages(&server, None, &format!("{query}&limit=1"))
            .await
            .iter()
            .flat_map(|p| ids_of(&p["items"]))
            .collect();
        assert_eq!(paged, expected, "{query} in pages of 1");
    }
    // The store id matches too: the part after the test's random prefix is the creation number.
    let by_id = &made[5]["store-".len()..];
    assert_eq!(
        ids_of(&list(&server, None, &format!("?q={}", by_id.to_uppercase())).await),
        pick(&[5])
    );

    // A member: their own stores, with or without naming themselves; filtering by another owner is
    // refused, not answered empty.
    assert_eq!(
        ids_of(&list(&server, Some(&alice), "").await),
        pick(&[0, 3, 4])
    );
    assert_eq!(
        ids_of(&list(&server, Some(&alice), "?owner=alice&status=Ready").await),
        pick(&[0, 4])
    );
    let page = list(&server, Some(&alice), "?limit=2&q=shop").await;
    assert_eq!(page, json!({"items": page["items"], "next_cursor": null}));
    assert_eq!(ids_of(&page["items"]), pick(&[0]));
    let (status, body) = server
        .call(Some(&alice), Method::GET, "/stores?owner=admin", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(problem_kind(&body), "admin-only");
}

#[tokio::test]
async fn bad_paging_and_filter_input_is_a_400_and_changes_nothing() {
    let server = api_only("badpages").await;
    let ids = Ids::new();
    let made: Vec<String> = (0..3).map(|n| ids.id(n)).collect();
    for id in &made {
        store(&server, id, "Shop", "admin", Some("Ready")).await;
    }
    wait_listed(&server, &made).await;
    for name in ["carol", "dave"] {
        server.create_user(name, "member", 1).await;
    }
    let b64 = |text: &str| URL_SAFE_NO_PAD.encode(text);
    let good = list(&server, None, "?limit=1").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let audit_page = server.get_json("/audit?page=true&limit=1").await.1;
    let audit_cursor = audit_page["next_cursor"].as_str().unwrap().to_owned();
    let before_stores = list(&server, None, "").await;
    let before_audit = server.audit("?limit=1000").await;

    let stores_cases = [
        "limit=0".to_owned(),
        "limit=501".into(),
        "limit=-1".into(),
        "limit=ten".into(),
        "limit=1&limit=2".into(),
        format!("cursor={good}"),
        "limit=2&cursor=".into(),
        "limit=2&cursor=not-a-cursor!".into(),
        format!("limit=2&cursor={good}="),
        format!("limit=2&cursor={good}A"),
        format!(
            "limit=2&cursor={}",
            b64(&format!("s1:1:0:{}", made[0].to_uppercase()))
        ),
        format!("limit=2&cursor={}", b64(&format!("s1:+1:0:{}", made[0]))),
        format!("limit=2&cursor={}", b64(&format!("s9:1:0:{}", made[0]))),
        format!("limit=2&cursor={audit_cursor}"),
        format!("limit=2&cursor={}", "A".repeat(5000)),
        "status=Running".into(),
        "status=ready".into(),
        "status=".into(),
        format!("q={}", "x".repeat(101)),
        format!("q={}", "%C3%A9".repeat(101)),
        "owner=".into(),
        "owner=a%20b".into(),
        "sort=name".into(),
        "page=true".into(),
        "Limit=5".into(),
    ];
    let audit_cases = [
        "cursor=nope".to_owned(),
        format!("cursor={good}"),
        format!("cursor={audit_cursor}&page=false"),
        format!("cursor={}", b64("a1:0")),
        "page=maybe".into(),
        "page=true&limit=0".into(),
        "page=true&limit=1001".into(),
    ];
    let cases = stores_cases
        .iter()
        .map(|q| format!("/stores?{q}"))
        .chain(audit_cases.iter().map(|q| format!("/audit?{q}")));
    for path in cases {
        let r = server.req(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json",
            "{path}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(problem_kind(&body), "bad-request", "{path}: {body}");
        assert_eq!(body["status"], 400, "{path}");
        assert!(
            !body["detail"].as_str().unwrap_or_default().is_empty(),
            "{path}: {body}"
        );
    }
    // The answers name what was wrong.
    for (path, says) in [
        ("/stores?limit=0", "between 1 and 500"),
        ("/stores?status=Running", "Ready"),
        ("/stores?sort=name", "sort"),
        ("/stores?cursor=x", "limit"),
    ] {
        let (_, body) = server.get_json(path).await;
        assert!(
            body["detail"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }

    // Nothing changed: the same stores, the same audit log (refused reads are not audited).
    assert_eq!(list(&server, None, "").await, before_stores);
    assert_eq!(server.audit("?limit=1000").await, before_audit);
    let in_cluster: HashSet<String> = server
        .cluster_stores()
        .await
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(in_cluster, made.iter().cloned().collect());
}

#[tokio::test]
async fn audit_pages_newest_first_by_cursor_and_the_array_stays() {
    let server = api_only("auditpages").await;
    let mut names = Vec::new();
    for n in 0..5 {
        let name = format!("user-{n}");
        server.create_user(&name, "member", 1).await;
        names.push(name);
    }
    // The plain array is unchanged: no parameters, limit, store_id.
    let (status, array) = server.get_json("/audit").await;
    assert_eq!(status, StatusCode::OK);
    let array = array.as_array().expect("an array").clone();
    let created: Vec<String> = array
        .iter()
        .filter(|e| e["action"] == "user_created")
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(created.len(), 5, "{array:#?}");
    for (detail, name) in created.iter().zip(names.iter().rev()) {
        assert!(
            detail.starts_with(&format!("user {name} (")),
            "newest first: {detail} / {name}"
        );
    }

    // Pages of 2; after the first, a new entry is written: it is newer, so later pages do not
    // hold it, and nothing repeats or goes missing.
    let (_, first) = server.get_json("/audit?page=true&limit=2").await;
    assert_eq!(first["items"].as_array().unwrap(), &array[..2]);
    server.create_user("late", "member", 1).await;
    let mut items: Vec<Value> = first["items"].as_array().unwrap().clone();
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(c) = cursor {
        let (status, page) = server.get_json(&format!("/audit?limit=2&cursor={c}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        pages += 1;
        assert!(pages < 100);
    }
    assert_eq!(items, array, "the pages are the array as it was");
    assert_eq!(pages, array.len().div_ceil(2));
    // Page mode without more: null.
    let (_, all) = server.get_json("/audit?page=true&limit=1000").await;
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(all["items"].as_array().unwrap().len(), array.len() + 1);
}

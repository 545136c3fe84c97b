//! The API's edges against the test cluster: authentication, bad input, idempotency, the quota.
//! None of these needs a store to become Ready.
mod support;

use std::collections::HashSet;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{Options, Server};

fn is_problem(r: &reqwest::Response) -> bool {
    r.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/problem+json")
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_and_are_audited() {
    let server = Server::start("auth", Options::default()).await;
    let anonymous = reqwest::Client::new();
    let routes = [
        (Method::GET, "/stores"),
        (Method::POST, "/stores"),
        (Method::GET, "/stores/store-000000"),
        (Method::DELETE, "/stores/store-000000"),
        (Method::GET, "/stores/store-000000/events"),
        (Method::GET, "/audit"),
    ];
    let mut refused = 0;
    for (method, path) in &routes {
        let attempts = [
            anonymous.request(method.clone(), server.url(path)),
            anonymous
                .request(method.clone(), server.url(path))
                .bearer_auth("not-the-token"),
            anonymous
                .request(method.clone(), server.url(path))
                .basic_auth("admin", Some(&server.token)),
            anonymous
                .request(method.clone(), server.url(path))
                .bearer_auth(format!("{}x", server.token)),
        ];
        for attempt in attempts {
            let r = attempt
                .json(&json!({"name": "sneaky"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(is_problem(&r), "{method} {path}: problem+json");
            let challenge = r
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .expect("WWW-Authenticate")
                .to_str()
                .unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["status"], 401);
            assert_eq!(body["type"], "https://storefleet.dev/problems/unauthorized");
            refused += 1;
        }
    }
    assert!(
        server.cluster_stores().await.is_empty(),
        "a refused request created a Store"
    );

    // The probes and the API description are public.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
        let r = anonymous.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let metrics = anonymous
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("storefleet_stores{phase=\"Ready\"} 0"),
        "{metrics}"
    );
    let openapi: Value = anonymous
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(openapi["paths"]["/stores"]["post"].is_object(), "{openapi}");

    // With the token, the audit log shows every refusal (repeats counted in one entry), with the
    // caller's address.
    let denied: Vec<Value> = server
        .audit("?limit=1000")
        .await
        .into_iter()
        .filter(|e| e["action"] == "denied" && e["outcome"] == "unauthorized")
        .collect();
    assert_eq!(occurrences(&denied), refused);
    assert!(denied.iter().all(|e| e["actor"] == "anonymous"
        && e["remote_addr"].as_str().unwrap().starts_with("127.0.0.1:")));
}

#[tokio::test]
async fn bad_input_is_rejected_and_creates_nothing() {
    let server = Server::start("badinput", Options::default()).await;
    let post = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut req = server.req(Method::POST, "/stores").body(body);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        req
    };
    let json_ct = Some("application/json");
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "invalid JSON",
            post(br#"{"name": "#.to_vec(), json_ct),
            StatusCode::BAD_REQUEST,
            "invalid-json",
        ),
        (
            "not JSON at all",
            post(b"name=shop".to_vec(), json_ct),
            StatusCode::BAD_REQUEST,
            "invalid-json",
        ),
        (
            "unknown field",
            post(br#"{"name": "x", "color": "red"}"#.to_vec(), json_ct),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            "unknown engine",
            post(br#"{"engine": "magento"}"#.to_vec(), json_ct),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            "name too long",
            post(
                json!({"name": "n".repeat(65)}).to_string().into_bytes(),
                json_ct,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            "name too long in characters",
            post(
                json!({"name": "é".repeat(65)}).to_string().into_bytes(),
                json_ct,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            "control character",
            post(
                json!({"name": "bad\u{7}name"}).to_string().into_bytes(),
                json_ct,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            "newline",
            post(
                json!({"name": "two\nlines"}).to_string().into_bytes(),
                json_ct,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            "blank name",
            post(br#"{"name": "   "}"#.to_vec(), json_ct),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            "name of the wrong type",
            post(br#"{"name": 42}"#.to_vec(), json_ct),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            "array body",
            post(b"[]".to_vec(), json_ct),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            "body over 64 KiB",
            post(
                json!({"name": "x".repeat(70_000)}).to_string().into_bytes(),
                json_ct,
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
        (
            "wrong content type",
            post(br#"{"name": "x"}"#.to_vec(), Some("text/plain")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "no content type",
            post(br#"{"name": "x"}"#.to_vec(), None),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "bad idempotency key",
            post(br#"{"name": "x"}"#.to_vec(), json_ct)
                .header("Idempotency-Key", "has spaces in it"),
            StatusCode::BAD_REQUEST,
            "bad-request",
        ),
    ];
    // A body declared over the limit is refused before authentication, unread: no actor to audit.
    let audited = cases
        .iter()
        .filter(|(_, _, status, _)| *status != StatusCode::PAYLOAD_TOO_LARGE)
        .count();
    for (what, request, status, slug) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), status, "{what}");
        assert!(is_problem(&r), "{what}: problem+json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["type"],
            format!("https://storefleet.dev/problems/{slug}"),
            "{what}: {body}"
        );
        assert_eq!(body["status"], status.as_u16(), "{what}");
        assert!(
            !body["title"].as_str().unwrap().is_empty()
                && !body["detail"].as_str().unwrap().is_empty(),
            "{what}: {body}"
        );
    }

    // Unknown or malformed store ids.
    for path in [
        "/stores/store-abcdef",
        "/stores/not-a-store",
        "/stores/store-ABCDEF",
    ] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}: {body}");
        let (status, _) = server
            .delete_store(path.trim_start_matches("/stores/"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "DELETE {path}");
    }
    let (status, _) = server.get_json("/audit?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server.get_json("/audit?limit=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Nothing reached the cluster.
    assert!(
        server.cluster_stores().await.is_empty(),
        "a Store was created"
    );
    assert!(
        server.cluster_namespaces().await.is_empty(),
        "a namespace was created"
    );
    let (_, list) = server.get_json("/stores").await;
    assert_eq!(list, json!([]));
    // Every refusal is in the audit log (repeats counted in one entry).
    let denied: Vec<Value> = server
        .audit("?limit=1000")
        .await
        .into_iter()
        .filter(|e| e["action"] == "denied")
        .collect();
    assert_eq!(occurrences(&denied), audited);
}

#[tokio::test]
async fn idempotency_by_key_and_by_name() {
    let server = Server::start("idem", Options::default()).await;
    let key = format!("key-{}", std::process::id());
    let send = |body: Value| {
        server
            .req(Method::POST, "/stores")
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
    };

    let first = send(json!({"name": "Key Shop"})).await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let location = first.headers()[header::LOCATION].clone();
    let first: Value = first.json().await.unwrap();
    let id = first["store_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/stores/{id}").as_str());

    // Same key, same request (formatted differently): the first answer, nothing new.
    for body in [
        json!({"name": "Key Shop"}),
        json!({"name": "  Key Shop ", "engine": "woocommerce"}),
    ] {
        let again = send(body).await.unwrap();
        assert_eq!(again.status(), StatusCode::ACCEPTED);
        assert_eq!(again.headers()[header::LOCATION], location);
        assert_eq!(again.json::<Value>().await.unwrap(), first);
    }
    // Same key, another request: 422.
    let other = send(json!({"name": "Another Shop"})).await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = other.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://storefleet.dev/problems/idempotency-key-reused"
    );
    assert_eq!(server.cluster_stores().await.len(), 1);

    // No key, a name this owner already uses: 200 with that store.
    for name in ["Key Shop", " Key Shop  "] {
        let same = server.create(json!({"name": name})).await;
        assert_eq!(same.status(), StatusCode::OK, "{name:?}");
        let same: Value = same.json().await.unwrap();
        assert_eq!(same["store_id"], id.as_str());
    }
    assert_eq!(server.cluster_stores().await.len(), 1);

    // Another name is another store.
    let second = server.create(json!({"name": "Second Shop"})).await;
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    let second: Value = second.json().await.unwrap();
    assert_ne!(second["store_id"], id.as_str());
    let names: HashSet<String> = server
        .cluster_stores()
        .await
        .iter()
        .map(|s| s.spec.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        HashSet::from(["Key Shop".to_owned(), "Second Shop".to_owned()])
    );

    let creates = server
        .audit("?limit=1000")
        .await
        .into_iter()
        .filter(|e| e["action"] == "create")
        .count();
    assert_eq!(creates, 2, "exactly two stores were created");
}

#[tokio::test]
async fn quota_holds_under_concurrent_requests() {
    let server = Server::start(
        "quota",
        Options {
            max_stores: 5,
            ..Options::default()
        },
    )
    .await;
    let requests = (0..10).map(|i| server.create(json!({"name": format!("Quota Shop {i}")})));
    let responses = futures::future::join_all(requests).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for r in responses {
        match r.status() {
            StatusCode::ACCEPTED => accepted.push(
                r.json::<Value>().await.unwrap()["store_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            StatusCode::FORBIDDEN => {
                assert!(is_problem(&r));
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
    assert_eq!(accepted.len(), 5, "exactly 5 stores made");
    assert_eq!(refused, 5);
    let in_cluster: HashSet<String> = server
        .cluster_stores()
        .await
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(in_cluster, accepted.iter().cloned().collect::<HashSet<_>>());
    let denied: Vec<Value> = server
        .audit("?limit=1000")
        .await
        .into_iter()
        .filter(|e| e["action"] == "denied" && e["outcome"] == "quota-exceeded")
        .collect();
    assert_eq!(occurrences(&denied), 5);

    // A store being deleted still counts until it is gone; then its slot is free again.
    let (status, _) = server.delete_store(&accepted[0]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let r = server.create(json!({"name": "One Too Many"})).await;
    match r.status() {
        StatusCode::FORBIDDEN => {
            server.wait_gone(&accepted[0]).await;
            let r = server.create(json!({"name": "Room Again"})).await;
            assert_eq!(
                r.status(),
                StatusCode::ACCEPTED,
                "a slot is free once a store is gone"
            );
        }
        // Only possible when the deleted store was already gone when counted (it had nothing to clean up).
        StatusCode::ACCEPTED => {
            let gone = server
                .cluster_stores()
                .await
                .iter()
                .all(|s| s.metadata.name.as_deref() != Some(accepted[0].as_str()));
            assert!(
                gone,
                "created a 6th store while the 5th was still being deleted"
            );
        }
        other => panic!("unexpected {other}"),
    }
}

/// How many times the audit entries say something happened: a refusal one caller repeats within a
/// minute is one entry with a `count`.
fn occurrences(entries: &[Value]) -> usize {
    entries
        .iter()
        .map(|e| e["count"].as_u64().expect("every entry has a count") as usize)
        .sum()
}

//! Users, tokens and roles against the test cluster: isolation between members (every cross-user
//! attempt answers as if the store did not exist and changes nothing), token revocation, expiry and
//! disabled users, and both quotas (per user and global) under concurrent creates.
mod support;

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{EventStream, Options, READY_TIMEOUT, Server, stores_api};

/// Status and body of a request, the body with its request id removed and `id` replaced by `<id>`
/// (so answers about two different store ids can be compared).
async fn answer(r: reqwest::RequestBuilder, id: &str) -> (StatusCode, Value) {
    let r = r.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    let text = if id.is_empty() {
        text
    } else {
        text.replace(id, "<id>")
    };
    let mut body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if let Some(object) = body.as_object_mut() {
        object.remove("request_id");
    }
    (status, body)
}

fn ids(stores: &Value) -> Vec<String> {
    stores
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["store_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn members_are_isolated_and_tokens_can_be_revoked_expire_and_be_disabled() {
    let server = Server::start("users", Options::default()).await;
    let alice = server.create_user("alice", "member", 2).await;
    let bob = server.create_user("bob", "member", 2).await;
    let alice_token = alice["token"].as_str().unwrap().to_owned();
    let bob_token = bob["token"].as_str().unwrap().to_owned();
    assert!(alice_token.starts_with("sf_") && alice_token.len() >= 3 + 32);
    assert_ne!(alice_token, bob_token);
    let as_alice = |m: Method, p: &str| server.as_user(&alice_token, m, p);
    let as_bob = |m: Method, p: &str| server.as_user(&bob_token, m, p);

    let (status, me) = server.get_json("/me").await;
    assert_eq!((status, &me["role"]), (StatusCode::OK, &json!("admin")));
    let me: Value = as_alice(Method::GET, "/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&me["user"], &me["role"], &me["max_stores"], &me["user_id"]),
        (
            &json!("alice"),
            &json!("member"),
            &json!(2),
            &alice["user_id"]
        )
    );

    // Alice's store, and one of bob's.
    let r = as_alice(Method::POST, "/stores")
        .json(&json!({"name": "Alice's shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let created: Value = r.json().await.unwrap();
    let id = created["store_id"].as_str().unwrap().to_owned();
    assert_eq!(created["owner"], "alice");
    let r = as_bob(Method::POST, "/stores").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let bobs: Value = r.json().await.unwrap();
    let bob_store = bobs["store_id"].as_str().unwrap().to_owned();
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    let before = stores_api(&server.cluster.client).get(&id).await.unwrap();

    // Every cross-user attempt answers exactly as for a store that does not exist.
    let made_up = if id == "store-abc123" {
        "store-abc124"
    } else {
        "store-abc123"
    };
    for (method, path) in [
        (Method::GET, "/stores/{}"),
        (Method::DELETE, "/stores/{}"),
        (Method::GET, "/stores/{}/events"),
        (Method::GET, "/stores/{}/credentials"),
        (Method::GET, "/stores/{}/health"),
    ] {
        let theirs = answer(as_bob(method.clone(), &path.replace("{}", &id)), &id).await;
        let nobodys = answer(
            as_bob(method.clone(), &path.replace("{}", made_up)),
            made_up,
        )
        .await;
        assert_eq!(
            theirs.0,
            StatusCode::NOT_FOUND,
            "{method} {path}: {theirs:?}"
        );
        assert_eq!(theirs, nobodys, "{method} {path}");
    }
    let (status, listed) = answer(as_bob(Method::GET, "/stores"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ids(&listed),
        vec![bob_store.clone()],
        "bob lists only his own"
    );
    // The live list is filtered too.
    let r = as_bob(Method::GET, "/events").send().await.unwrap();
    let (event, snapshot) = EventStream::new(r).next().await.unwrap();
    assert_eq!(event, "snapshot");
    assert!(!ids(&snapshot).contains(&id), "{snapshot}");
    // The admin API is admins only.
    let alice_path = format!("/users/{}", alice["user_id"].as_str().unwrap());
    let alice_tokens = format!("{alice_path}/tokens");
    for (method, path) in [
        (Method::POST, "/users"),
        (Method::GET, "/users"),
        (Method::GET, alice_path.as_str()),
        (Method::PATCH, alice_path.as_str()),
        (Method::POST, alice_tokens.as_str()),
    ] {
        let r = as_bob(method.clone(), path)
            .json(&json!({"name": "mallory", "role": "admin", "disabled": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    // Bob's audit log says nothing about alice's store, although his attempts were recorded.
    let (_, audit) = answer(as_bob(Method::GET, "/audit?limit=1000"), "").await;
    assert!(!audit.to_string().contains(&id), "{audit:#}");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "bob" || e["store_id"] == bob_store.as_str()),
        "{audit:#}"
    );
    let (_, about) = answer(as_bob(Method::GET, &format!("/audit?store_id={id}")), "").await;
    assert_eq!(about, json!([]));
    let attempts = testkit::wait_for(
        "bob's attempts in the audit log",
        Duration::from_secs(30),
        || async {
            let seen: Vec<Value> = server
                .audit(&format!("?store_id={id}"))
                .await
                .into_iter()
                .filter(|e| e["actor"] == "bob" && e["outcome"] == "not-owner")
                .collect();
            // Repeats within a minute are one entry with a count.
            let times: u64 = seen.iter().map(|e| e["count"].as_u64().unwrap()).sum();
            (times >= 4).then_some(seen)
        },
    )
    .await;
    assert!(attempts.iter().all(|e| e["store_owner"] == "alice"));
    // Alice, the owner, reads her own entries about it, but not bob's refusals: those are for admins
    // (docs/security.md, "The audit log, bounded").
    let (_, alices) = answer(as_alice(Method::GET, &format!("/audit?store_id={id}")), "").await;
    assert!(
        alices
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] != "bob"),
        "{alices:#}"
    );
    let actions: Vec<&str> = alices
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"create") && actions.contains(&"ready"),
        "{actions:?}"
    );

    // Alice's store is untouched.
    let after = stores_api(&server.cluster.client).get(&id).await.unwrap();
    assert_eq!(after.spec, before.spec);
    assert_eq!(after.metadata.deletion_timestamp, None);
    assert_eq!(
        after.status.as_ref().and_then(|s| s.phase),
        before.status.as_ref().and_then(|s| s.phase)
    );
    assert!(
        Api::<Namespace>::all(server.cluster.client.clone())
            .get_opt(&id)
            .await
            .unwrap()
            .is_some()
    );
    let (status, mine) = answer(as_alice(Method::GET, &format!("/stores/{id}")), "").await;
    assert_eq!(
        (status, &mine["status"], &mine["owner"]),
        (StatusCode::OK, &json!("Ready"), &json!("alice"))
    );
    // The admin sees and manages both users' stores.
    let (_, all) = server.get_json("/stores").await;
    let all = ids(&all);
    assert!(all.contains(&id) && all.contains(&bob_store), "{all:?}");
    assert_eq!(
        server.get_json(&format!("/stores/{bob_store}")).await.0,
        StatusCode::OK
    );

    // A second token for alice works, also for a dashboard session; revoked, both stop.
    let r = server
        .req(Method::POST, &alice_tokens)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let second: Value = r.json().await.unwrap();
    let second_token = second["token"].as_str().unwrap();
    let r = server
        .http
        .post(server.url("/session"))
        .json(&json!({"token": second_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me_with = |token: Option<&str>| {
        let r = server.http.get(server.url("/me"));
        let r = match token {
            Some(t) => r.bearer_auth(t),
            None => r.header(header::COOKIE, &cookie),
        };
        async move { r.send().await.unwrap().status() }
    };
    assert_eq!(me_with(Some(second_token)).await, StatusCode::OK);
    assert_eq!(me_with(None).await, StatusCode::OK);
    let revoke = format!("{alice_tokens}/{}", second["token_id"].as_str().unwrap());
    assert_eq!(
        server
            .req(Method::DELETE, &revoke)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(me_with(Some(second_token)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me_with(None).await,
        StatusCode::UNAUTHORIZED,
        "the session ends with its token"
    );
    assert_eq!(
        me_with(Some(&alice_token)).await,
        StatusCode::OK,
        "other tokens keep working"
    );
    let other = format!("{alice_tokens}/{}", bob["token_id"].as_str().unwrap());
    assert_eq!(
        server
            .req(Method::DELETE, &other)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // A token that expires.
    let r = server
        .req(Method::POST, &alice_tokens)
        .json(&json!({"expires_in_seconds": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let short: Value = r.json().await.unwrap();
    let short_token = short["token"].as_str().unwrap();
    assert!(short["expires_at"].is_string());
    testkit::wait_for("the token to expire", Duration::from_secs(30), || async {
        (me_with(Some(short_token)).await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;

    // A disabled user's token is refused; their store stays.
    let bob_path = format!("/users/{}", bob["user_id"].as_str().unwrap());
    let r = server
        .req(Method::PATCH, &bob_path)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], true);
    assert_eq!(me_with(Some(&bob_token)).await, StatusCode::UNAUTHORIZED);
    assert!(
        stores_api(&server.cluster.client)
            .get_opt(&bob_store)
            .await
            .unwrap()
            .is_some()
    );
    let r = server
        .req(Method::PATCH, &bob_path)
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    let r = server
        .req(Method::POST, "/users")
        .json(&json!({"name": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = server
        .req(Method::POST, "/users")
        .json(&json!({"name": "no spaces"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Users are listed without tokens; the audit log names the actor of every admin action, and no
    // token appears in it or in the log.
    let (_, users) = server.get_json("/users").await;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "alice", "bob"]);
    let audit = server.audit("?limit=1000").await;
    for action in [
        "user_created",
        "token_created",
        "token_revoked",
        "user_updated",
    ] {
        assert!(
            audit
                .iter()
                .any(|e| e["action"] == action && e["actor"] == "admin"),
            "{action} by admin missing"
        );
    }
    let everything = format!("{users}{}{}", Value::Array(audit), server.log());
    for token in [
        alice_token.as_str(),
        bob_token.as_str(),
        second_token,
        short_token,
        server.token.as_str(),
    ] {
        assert!(!everything.contains(token), "a token leaked");
    }
}

/// Fires `n` concurrent `POST /stores`, the i-th as `tokens[i % len]`; answers (status, body) in order.
async fn concurrent_creates(
    server: &Server,
    tokens: &[&str],
    n: usize,
) -> Vec<(StatusCode, Value)> {
    join_all((0..n).map(|i| async move {
        let r = server
            .as_user(tokens[i % tokens.len()], Method::POST, "/stores")
            .json(&json!({"name": format!("Shop {i}")}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    }))
    .await
}

async fn delete_accepted(server: &Server, answers: &[(StatusCode, Value)]) {
    for (_, body) in answers.iter().filter(|(s, _)| *s == StatusCode::ACCEPTED) {
        let (status, _) = server
            .delete_store(body["store_id"].as_str().unwrap())
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
}

#[tokio::test]
async fn per_user_quota_holds_under_20_concurrent_creates() {
    let server = Server::start("userquota", Options::default()).await;
    let alice = server.create_user("alice", "member", 3).await;
    let token = alice["token"].as_str().unwrap();
    let answers = concurrent_creates(&server, &[token], 20).await;
    let accepted = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::FORBIDDEN)
        .map(|(_, b)| b)
        .collect();
    assert_eq!((accepted, refused.len()), (3, 17), "{answers:?}");
    assert!(refused.iter().all(|b| {
        b["type"] == "https://storefleet.dev/problems/quota-exceeded"
            && b["detail"]
                .as_str()
                .unwrap()
                .starts_with("your limit of 3 store(s)")
    }));
    let in_cluster = server.cluster_stores().await;
    assert_eq!(in_cluster.len(), 3);
    assert!(in_cluster.iter().all(|s| s.spec.owner == "alice"));
    delete_accepted(&server, &answers).await;
}

#[tokio::test]
async fn global_quota_holds_under_20_concurrent_creates_of_two_users() {
    let server = Server::start(
        "globalquota",
        Options {
            max_stores: 4,
            ..Options::default()
        },
    )
    .await;
    let carol = server.create_user("carol", "member", 10).await;
    let dave = server.create_user("dave", "member", 10).await;
    let tokens = [
        carol["token"].as_str().unwrap(),
        dave["token"].as_str().unwrap(),
    ];
    let answers = concurrent_creates(&server, &tokens, 20).await;
    let accepted = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::FORBIDDEN)
        .map(|(_, b)| b)
        .collect();
    assert_eq!((accepted, refused.len()), (4, 16), "{answers:?}");
    assert!(refused.iter().all(|b| {
        b["detail"]
            .as_str()
            .unwrap()
            .contains("limit of 4 store(s) is reached for this platform")
    }));
    let in_cluster = server.cluster_stores().await;
    assert_eq!(in_cluster.len(), 4);
    assert!(
        in_cluster
            .iter()
            .all(|s| s.spec.owner == "carol" || s.spec.owner == "dave")
    );
    delete_accepted(&server, &answers).await;
}

//! Changing one store (issue 15, part 2): `PATCH /stores/{id}` renames a store; the controller
//! upgrades its release, and the condition, the Event, the audit log and `kubectl get` show it. Bad
//! input is a clear 4xx and changes nothing; another user's store is a 404.
mod support;

use std::process::Command;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{Options, READY_TIMEOUT, Server, stores_api};

async fn create(server: &Server, name: &str) -> String {
    let created = server.create(json!({ "name": name })).await;
    assert_eq!(created.status(), StatusCode::ACCEPTED);
    created.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn patch(server: &Server, token: &str, id: &str, body: &str) -> (StatusCode, Value) {
    let r = server
        .as_user(token, Method::PATCH, &format!("/stores/{id}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The release's values, as helm keeps them.
fn site_title(server: &Server, id: &str) -> String {
    let out = Command::new(&server.cluster.helm)
        .env("KUBECONFIG", &server.cluster.kubeconfig)
        .args(["get", "values", id, "-n", id, "-o", "json"])
        .output()
        .unwrap();
    let values: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    values["siteTitle"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_rename_upgrades_the_release_and_bad_changes_change_nothing() {
    let server = Server::start("changes", Options::default()).await;
    let id = create(&server, "Before").await;
    let other = create(&server, "Taken").await;
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    assert_eq!(site_title(&server, &id), "Before");
    let stores = stores_api(&server.cluster.client);
    let generation = |s: &storefleet::crd::Store| s.metadata.generation.unwrap();
    let before = stores.get(&id).await.unwrap();

    // Refused, each with its own status, and the Store untouched.
    let mallory = server.create_user("mallory", "member", 1).await;
    let mallory = mallory["token"].as_str().unwrap().to_owned();
    let token = server.token.clone();
    for (who, body, expected) in [
        (&mallory, r#"{"name": "Mine now"}"#, StatusCode::NOT_FOUND),
        (&token, r#"{"name": ""}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (
            &token,
            r#"{"name": "x\u0000y"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &token,
            r#"{"name": "A", "owner": "mallory"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &token,
            r#"{"title": "A"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (&token, r#"["A"]"#, StatusCode::UNPROCESSABLE_ENTITY),
        (&token, r#"{"name": "#, StatusCode::BAD_REQUEST),
        (&token, r#"{"name": "Taken"}"#, StatusCode::CONFLICT),
    ] {
        let (status, problem) = patch(&server, who, &id, body).await;
        assert_eq!(status, expected, "{body}: {problem}");
        assert!(
            problem["type"]
                .as_str()
                .unwrap_or_default()
                .starts_with("https://storefleet.dev/problems/"),
            "{problem}"
        );
    }
    let untouched = stores.get(&id).await.unwrap();
    assert_eq!(untouched.spec, before.spec);
    assert_eq!(generation(&untouched), generation(&before));

    // The rename: 200 with the new name at once; the controller upgrades the release.
    let (status, view) = patch(&server, &token, &id, r#"{"name": "After"}"#).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["name"], "After");
    let renamed = stores.get(&id).await.unwrap();
    assert_eq!(renamed.spec.name.as_deref(), Some("After"));
    assert_eq!(generation(&renamed), generation(&before) + 1);
    let upgraded = testkit::wait_for("the release to carry the new title", READY_TIMEOUT, || {
        let (stores, id) = (stores.clone(), id.clone());
        async move {
            let s = stores.get(&id).await.ok()?;
            let status = s.status.clone()?;
            (status.released_generation == s.metadata.generation).then_some(status)
        }
    })
    .await;
    let released = upgraded
        .conditions
        .iter()
        .find(|c| c.type_ == "Released")
        .expect("a Released condition");
    assert_eq!(released.reason, "Upgraded", "{released:?}");
    assert_eq!(site_title(&server, &id), "After");
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    // kubectl tells the same story: the Event, and the name in the object.
    let events = testkit::run_ok(server.cluster.kubectl().args([
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &format!("involvedObject.name={id}"),
        "-o",
        "json",
    ]));
    assert!(
        events.contains(&format!("helm release {id} upgraded")),
        "no upgrade Event: {events}"
    );

    // Idempotent: the same name again changes nothing.
    let (status, again) = patch(&server, &token, &id, r#"{"name": "After"}"#).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        generation(&stores.get(&id).await.unwrap()),
        generation(&renamed)
    );

    // Audited once, with what changed.
    let updates: Vec<Value> = server
        .audit(&format!("?store_id={id}"))
        .await
        .into_iter()
        .filter(|e| e["action"] == "update")
        .collect();
    assert_eq!(updates.len(), 1, "{updates:#?}");
    assert!(
        updates[0]["detail"]
            .as_str()
            .unwrap()
            .contains("\"Before\" → \"After\""),
        "{updates:#?}"
    );

    server.delete_leaving_nothing(&other).await;
    let (status, _) = server.delete_store(&id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, problem) = patch(&server, &token, &id, r#"{"name": "Too late"}"#).await;
    assert!(
        status == StatusCode::CONFLICT || status == StatusCode::NOT_FOUND,
        "{status}: {problem}"
    );
    server.wait_gone(&id).await;
    server.assert_no_orphans().await;
}

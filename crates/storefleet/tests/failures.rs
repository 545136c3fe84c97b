//! A store that cannot become ready ends Failed with a reason a human can act on, and can still be
//! deleted cleanly.
mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{Options, Server};

const BROKEN_IMAGE: &str = "example.invalid/broken-wordpress";

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
    let ready = store["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
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

    // Failed is terminal: it stays Failed (no retry loop) and can be deleted.
    let (_, again) = server.get_json(&format!("/stores/{id}")).await;
    assert_eq!(again["status"], "Failed");
    let (status, _) = server.delete_store(&id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.wait_gone(&id).await;
    assert!(server.cluster_namespaces().await.is_empty());
}

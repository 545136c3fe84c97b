//! The move from Helm 3 to Helm 4 (issue 15, part 1): a store a Helm 3.10.1 control plane installed is
//! read, upgraded and uninstalled by the same control plane on Helm 4.1.4, on the 1.20 test cluster.
//! `scripts/testcluster` fetches both pinned binaries; its env file names them (`STOREFLEET_HELM`: 4,
//! `STOREFLEET_HELM3`: 3).
mod support;

use std::process::Command;

use kube::api::{Patch, PatchParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Options, READY_TIMEOUT, Server, stores_api};

/// `helm list` as the controller asks it, for one release: (revision, status).
fn release(helm: &str, kubeconfig: &std::path::Path, id: &str) -> (String, String) {
    let out = Command::new(helm)
        .env("KUBECONFIG", kubeconfig)
        .args([
            "list",
            "-n",
            id,
            "--deployed",
            "--failed",
            "--pending",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let one = &list[0];
    (
        one["revision"].as_str().unwrap_or_default().to_owned(),
        one["status"].as_str().unwrap_or_default().to_owned(),
    )
}

fn helm_version(helm: &str) -> String {
    let out = Command::new(helm)
        .args(["version", "--template", "{{.Version}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_store_installed_with_helm_3_upgrades_and_uninstalls_with_helm_4() {
    let helm3 = std::env::var("STOREFLEET_HELM3").expect(
        "STOREFLEET_HELM3 is not set: `source target/testcluster/env` (scripts/testcluster up)",
    );
    let mut server = Server::start(
        "helm4",
        Options {
            helm: Some(helm3.clone().into()),
            ..Options::default()
        },
    )
    .await;
    let helm4 = server.cluster.helm.display().to_string();
    assert!(helm_version(&helm3).starts_with("v3."), "{helm3}");
    assert!(helm_version(&helm4).starts_with("v4."), "{helm4}");

    let created = server.create(json!({"name": "Made by Helm 3"})).await;
    assert_eq!(created.status(), StatusCode::ACCEPTED);
    let id = created.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    let kubeconfig = server.cluster.kubeconfig.clone();
    assert_eq!(
        release(&helm3, &kubeconfig, &id),
        ("1".into(), "deployed".into())
    );

    // The platform moves to Helm 4: same instance, same database, the new binary.
    server.kill9();
    server.restart_with("--helm", &helm4).await;
    // A change of the store's spec makes the controller upgrade its release, now with Helm 4.
    stores_api(&server.cluster.client)
        .patch(
            &id,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"name": "Upgraded by Helm 4"}})),
        )
        .await
        .unwrap();
    testkit::wait_for("the Helm 4 upgrade", READY_TIMEOUT, || {
        let (helm4, kubeconfig, id) = (helm4.clone(), kubeconfig.clone(), id.clone());
        async move {
            let (revision, status) = release(&helm4, &kubeconfig, &id);
            (revision == "2" && status == "deployed").then_some(())
        }
    })
    .await;
    let values = Command::new(&helm4)
        .env("KUBECONFIG", &kubeconfig)
        .args(["get", "values", &id, "-n", &id, "-o", "json"])
        .output()
        .unwrap();
    let values: Value = serde_json::from_slice(&values.stdout).unwrap();
    assert_eq!(values["siteTitle"], "Upgraded by Helm 4", "{values}");
    let store = server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    assert_eq!(store["name"], "Upgraded by Helm 4");
    // Helm 3 reads what Helm 4 wrote, too (a rollback of the platform stays possible).
    assert_eq!(
        release(&helm3, &kubeconfig, &id),
        ("2".into(), "deployed".into())
    );

    server.delete_leaving_nothing(&id).await;
    server.assert_healthy().await;
}

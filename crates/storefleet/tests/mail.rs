//! Store mail (issue 13, part 2) against the test cluster and the real store chart: without a relay a
//! store says `MailConfigured=False/NoRelay` and still becomes Ready; with `--smtp-*` flags it says
//! `True`, its release gets the relay but not its password, and the password sits only in the Secret
//! the controller wrote.
mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Options, READY_TIMEOUT, Server};

fn condition<'a>(store: &'a Value, type_: &str) -> &'a Value {
    store["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition: {store:#}"))
}

async fn create_ready(server: &Server) -> (String, Value) {
    let r = server.create(json!({"name": "Mail test"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ready = server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    (id, ready)
}

#[tokio::test]
async fn without_a_relay_the_store_says_so_and_is_ready() {
    let server = Server::start("nomail", Options::default()).await;
    let (id, ready) = create_ready(&server).await;
    let mail = condition(&ready, "MailConfigured");
    assert_eq!(mail["status"], "False", "{mail}");
    assert_eq!(mail["reason"], "NoRelay", "{mail}");
    assert!(
        mail["message"].as_str().unwrap().contains("--smtp-host"),
        "{mail}"
    );
    assert_eq!(condition(&ready, "Ready")["status"], "True");
    // Nothing of mail in the release.
    let deployments = Api::<Deployment>::namespaced(server.cluster.client.clone(), &id);
    let wordpress = deployments.get(&format!("{id}-wordpress")).await.unwrap();
    let text = serde_json::to_string(&wordpress).unwrap();
    assert!(!text.contains("STOREFLEET_SMTP"), "{text}");
    server.delete_leaving_nothing(&id).await;
}

#[tokio::test]
async fn with_a_relay_the_release_gets_it_and_the_password_stays_in_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let password = format!("relay-pw-{}", std::process::id());
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let server = Server::start(
        "mail",
        Options {
            extra_args: [
                "--smtp-host",
                "smtp.relay.example.net",
                "--smtp-relay-cidr",
                "10.99.0.0/24",
                "--smtp-port",
                "587",
                "--smtp-tls",
                "starttls",
                "--smtp-username",
                "postmaster@stores.example.com",
                "--smtp-password-file",
                password_file.to_str().unwrap(),
                "--mail-from",
                "no-reply@stores.example.com",
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    )
    .await;
    let (id, ready) = create_ready(&server).await;
    let mail = condition(&ready, "MailConfigured");
    assert_eq!(mail["status"], "True", "{mail}");
    assert_eq!(mail["reason"], "RelayConfigured", "{mail}");
    assert!(
        mail["message"]
            .as_str()
            .unwrap()
            .contains("smtp.relay.example.net:587 (STARTTLS, with a login)"),
        "{mail}"
    );

    let client = server.cluster.client.clone();
    // The login: in the Secret the controller wrote, and nowhere else.
    let secret = Api::<Secret>::namespaced(client.clone(), &id)
        .get(&format!("{id}-mail-relay"))
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["password"].0, password.as_bytes());
    assert_eq!(data["username"].0, b"postmaster@stores.example.com");
    for cm in Api::<ConfigMap>::namespaced(client.clone(), &id)
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        let text = serde_json::to_string(&cm).unwrap();
        assert!(!text.contains(&password), "password in ConfigMap {cm:?}");
    }
    let values = testkit::run_ok(
        server
            .cluster
            .helm()
            .args(["get", "values", "--all", "-o", "json", &id, "-n", &id]),
    );
    assert!(
        !values.contains(&password),
        "password in the release values"
    );
    let values: Value = serde_json::from_str(&values).unwrap();
    assert_eq!(values["mail"]["relay"]["host"], "smtp.relay.example.net");
    assert_eq!(values["mail"]["relay"]["cidr"], "10.99.0.0/24");
    assert_eq!(
        values["mail"]["relay"]["credentialsSecret"],
        format!("{id}-mail-relay")
    );
    assert_eq!(
        values["mail"]["from"]["address"],
        "no-reply@stores.example.com"
    );

    // WordPress reads it from the environment, the login through secretKeyRef only.
    let wordpress = Api::<Deployment>::namespaced(client.clone(), &id)
        .get(&format!("{id}-wordpress"))
        .await
        .unwrap();
    let pod = wordpress.spec.template.spec.unwrap();
    let env = pod.containers[0].env.clone().unwrap();
    let var = |name: &str| env.iter().find(|e| e.name == name).cloned();
    assert_eq!(
        var("STOREFLEET_SMTP_HOST").unwrap().value.as_deref(),
        Some("smtp.relay.example.net")
    );
    let pw = var("STOREFLEET_SMTP_PASSWORD").unwrap();
    assert!(pw.value.is_none());
    let from_secret = pw.value_from.unwrap().secret_key_ref.unwrap();
    assert_eq!(from_secret.name, format!("{id}-mail-relay"));
    assert_eq!(from_secret.key, "password");
    assert_eq!(pod.init_containers.unwrap()[0].name, "mail-plugin");
    assert!(!server.log().contains(&password), "password in the log");
    server.delete_leaving_nothing(&id).await;
}

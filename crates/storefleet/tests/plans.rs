//! Size plans (issue 15, part 2), on the real API server: `PATCH /stores/{id}` with a bigger plan
//! reaches the release's values, grows both PVCs and raises the quota, and the Store, its Released
//! condition, its Events and the audit log say so. Shrinking, growing on a StorageClass without
//! volume expansion (the API server's own PersistentVolumeClaimResize admission would refuse it
//! too), an unknown plan and another user's store are refused and change nothing.
mod support;

use std::process::Command;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, ResourceQuota};
use kube::Api;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{Options, READY_TIMEOUT, Server, stores_api};

async fn patch(server: &Server, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
    let r = server
        .as_user(token, Method::PATCH, &format!("/stores/{id}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create(server: &Server, body: Value) -> Value {
    let created = server.create(body).await;
    assert_eq!(created.status(), StatusCode::ACCEPTED);
    created.json().await.unwrap()
}

/// The release's values, as helm keeps them (`helm get values`).
fn release_values(server: &Server, id: &str) -> Value {
    let out = Command::new(&server.cluster.helm)
        .env("KUBECONFIG", &server.cluster.kubeconfig)
        .args(["get", "values", id, "-n", id, "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A PVC's `spec.resources.requests.storage`, from the API server.
async fn claim(server: &Server, id: &str, name: &str) -> (String, Option<String>) {
    let pvc = Api::<PersistentVolumeClaim>::namespaced(server.cluster.client.clone(), id)
        .get(name)
        .await
        .unwrap();
    let spec = pvc.spec.unwrap();
    let size = spec.resources.unwrap().requests.unwrap()["storage"]
        .0
        .clone();
    (size, spec.storage_class_name)
}

async fn quota_storage(server: &Server, id: &str) -> String {
    let quota = Api::<ResourceQuota>::namespaced(server.cluster.client.clone(), id)
        .get(id)
        .await
        .unwrap();
    quota.spec.unwrap().hard.unwrap()["requests.storage"]
        .0
        .clone()
}

fn problem_type(problem: &Value) -> &str {
    problem["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("https://storefleet.dev/problems/")
}

/// A StorageClass of the stand-in's provisioner that allows volume expansion, for this test only
/// (the shared cluster's default `standard` does not, and stays as it is). Deleted on drop.
struct ExpandableClass {
    name: String,
    kubeconfig: std::path::PathBuf,
}

impl ExpandableClass {
    fn create(cluster: &testkit::Cluster) -> Self {
        let name = format!("t-plans-{}-expandable", rand::random::<u32>());
        let manifest = json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": { "name": name },
            "provisioner": "storefleet.dev/kubelet-standin",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": true,
        });
        let path = std::env::temp_dir().join(format!("{name}.json"));
        std::fs::write(&path, manifest.to_string()).unwrap();
        testkit::run_ok(cluster.kubectl().args(["apply", "-f"]).arg(&path));
        let _ = std::fs::remove_file(&path);
        Self {
            name,
            kubeconfig: cluster.kubeconfig.clone(),
        }
    }
}

impl Drop for ExpandableClass {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["delete", "storageclass", &self.name, "--ignore-not-found"])
            .output();
    }
}

#[tokio::test]
async fn a_bigger_plan_grows_the_volumes_and_the_quota_and_a_smaller_one_is_refused() {
    let cluster = testkit::cluster().await;
    // The store chart's values name the class: it exists before the server.
    let class = ExpandableClass::create(&cluster);
    let server = Server::start_on(
        cluster,
        "plans",
        Options {
            extra_values: vec![format!(
                "wordpress:\n  persistence:\n    storageClassName: {0}\n\
                 mariadb:\n  persistence:\n    storageClassName: {0}\n",
                class.name
            )],
            ..Options::default()
        },
    )
    .await;
    let created = create(&server, json!({ "name": "Growing" })).await;
    // No plan asked for: the platform's default.
    assert_eq!(created["plan"], "small", "{created}");
    let id = created["store_id"].as_str().unwrap().to_owned();
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    let wordpress = format!("{id}-wordpress");
    let database = format!("data-{id}-mariadb-0");
    assert_eq!(
        claim(&server, &id, &wordpress).await,
        ("2Gi".to_owned(), Some(class.name.clone()))
    );
    assert_eq!(claim(&server, &id, &database).await.0, "2Gi");
    assert_eq!(quota_storage(&server, &id).await, "10Gi");

    let stores = stores_api(&server.cluster.client);
    let before = stores.get(&id).await.unwrap();
    assert_eq!(before.spec.plan.as_deref(), Some("small"));
    let generation = before.metadata.generation.unwrap();

    // small → medium: 200 at once; the controller upgrades the release.
    let token = server.token.clone();
    let (status, view) = patch(&server, &token, &id, json!({ "plan": "medium" })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["plan"], "medium");
    let changed = stores.get(&id).await.unwrap();
    assert_eq!(changed.spec.plan.as_deref(), Some("medium"));
    assert_eq!(changed.metadata.generation, Some(generation + 1));
    let upgraded = testkit::wait_for("the release to have the new plan", READY_TIMEOUT, || {
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
    assert!(released.message.contains("plan medium"), "{released:?}");

    // The release has medium's values; the volumeClaimTemplate stays as installed.
    let values = release_values(&server, &id);
    assert_eq!(
        values["wordpress"]["persistence"]["size"], "5Gi",
        "{values:#}"
    );
    assert_eq!(values["wordpress"]["resources"]["requests"]["cpu"], "250m");
    assert_eq!(values["mariadb"]["resources"]["limits"]["memory"], "1536Mi");
    assert_eq!(
        values["mariadb"]["persistence"]["size"], "2Gi",
        "{values:#}"
    );
    assert_eq!(values["quota"]["hard"]["requests.storage"], "20Gi");
    let statefulset = Api::<StatefulSet>::namespaced(server.cluster.client.clone(), &id)
        .get(&format!("{id}-mariadb"))
        .await
        .unwrap();
    let template = &statefulset.spec.volume_claim_templates.unwrap()[0];
    assert_eq!(
        template
            .spec
            .as_ref()
            .unwrap()
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "2Gi"
    );
    // Both PVCs grew (helm the WordPress one, the controller MariaDB's), the quota with them.
    assert_eq!(claim(&server, &id, &wordpress).await.0, "5Gi");
    assert_eq!(claim(&server, &id, &database).await.0, "5Gi");
    assert_eq!(quota_storage(&server, &id).await, "20Gi");
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;

    // kubectl tells the same story: the plan column, the Events.
    let table = testkit::run_ok(server.cluster.kubectl().args(["get", "store", &id]));
    let (header, row) = table.split_once('\n').unwrap();
    assert!(header.contains("PLAN") && row.contains("medium"), "{table}");
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
        events.contains(&format!("helm release {id} upgraded (plan medium)")),
        "no upgrade Event: {events}"
    );
    assert!(
        events.contains(&format!(
            "grew PVC {database} from 2Gi to 5Gi (plan medium)"
        )),
        "no resize Event: {events}"
    );

    // The same plan again changes nothing.
    let (status, again) = patch(&server, &token, &id, json!({ "plan": "medium" })).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let generation = generation + 1;
    assert_eq!(
        stores.get(&id).await.unwrap().metadata.generation,
        Some(generation)
    );

    // Back to small would shrink both volumes: 422, naming the first and both sizes; nothing changes.
    let (status, problem) = patch(&server, &token, &id, json!({ "plan": "small" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_type(&problem), "volume-shrink", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&wordpress) && detail.contains("from 5Gi to 2Gi"),
        "{problem}"
    );
    let after = stores.get(&id).await.unwrap();
    assert_eq!(after.metadata.generation, Some(generation));
    assert_eq!(after.spec.plan.as_deref(), Some("medium"));
    assert_eq!(claim(&server, &id, &wordpress).await.0, "5Gi");

    // Audited: the change once, with what changed; the refusal as denied.
    let entries = server.audit(&format!("?store_id={id}")).await;
    let updates: Vec<&Value> = entries.iter().filter(|e| e["action"] == "update").collect();
    assert_eq!(updates.len(), 1, "{entries:#?}");
    assert!(
        updates[0]["detail"]
            .as_str()
            .unwrap()
            .contains("plan small → medium"),
        "{updates:#?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "denied" && e["outcome"] == "volume-shrink"),
        "{entries:#?}"
    );

    server.delete_leaving_nothing(&id).await;
    server.assert_no_orphans().await;
}

#[tokio::test]
async fn refused_plans_change_nothing() {
    let server = Server::start("plansno", Options::default()).await;
    let token = server.token.clone();

    // An unknown plan at creation: 422 listing the plans, and no store.
    let r = server
        .create(json!({ "name": "Huge", "plan": "huge" }))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem_type(&problem), "unknown-plan", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("large, medium, small"),
        "{problem}"
    );
    assert!(server.cluster_stores().await.is_empty());

    // A store made medium on the cluster's default class, which does not allow expansion.
    let created = create(&server, json!({ "name": "Middle", "plan": "medium" })).await;
    assert_eq!(created["plan"], "medium");
    let id = created["store_id"].as_str().unwrap().to_owned();
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    assert_eq!(
        release_values(&server, &id)["wordpress"]["persistence"]["size"],
        "5Gi"
    );
    let (size, class) = claim(&server, &id, &format!("{id}-wordpress")).await;
    assert_eq!(size, "5Gi");
    // The class the PVC really uses (the chart names none: the cluster default filled it in).
    let class = class.expect("the default class was filled in");
    let stores = stores_api(&server.cluster.client);
    let before = stores.get(&id).await.unwrap();

    let mallory = server.create_user("mallory", "member", 1).await;
    let mallory = mallory["token"].as_str().unwrap().to_owned();
    for (who, body, status, kind, says) in [
        // Growth where the class cannot expand: named.
        (
            &token,
            json!({ "plan": "large" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "volume-not-expandable",
            format!("StorageClass `{class}` does not allow volume expansion"),
        ),
        (
            &token,
            json!({ "plan": "small" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "volume-shrink",
            "from 5Gi to 2Gi".to_owned(),
        ),
        (
            &token,
            json!({ "plan": "huge" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-plan",
            "the plans are large, medium, small".to_owned(),
        ),
        (
            &token,
            json!({ "plan": "" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-plan",
            "the plans are large, medium, small".to_owned(),
        ),
        (
            &token,
            json!({ "plan": 2 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            String::new(),
        ),
        (
            &token,
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            "`name` and/or `plan`".to_owned(),
        ),
        // Another user's store does not exist for them, whatever the plan.
        (
            &mallory,
            json!({ "plan": "medium" }),
            StatusCode::NOT_FOUND,
            "not-found",
            String::new(),
        ),
        (
            &mallory,
            json!({ "plan": "small" }),
            StatusCode::NOT_FOUND,
            "not-found",
            String::new(),
        ),
    ] {
        let (got, problem) = patch(&server, who, &id, body.clone()).await;
        assert_eq!(got, status, "{body}: {problem}");
        assert_eq!(problem_type(&problem), kind, "{body}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(&says),
            "{body}: {problem}"
        );
    }
    let after = stores.get(&id).await.unwrap();
    assert_eq!(after.spec, before.spec);
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(
        claim(&server, &id, &format!("data-{id}-mariadb-0")).await.0,
        "5Gi"
    );

    server.delete_leaving_nothing(&id).await;
}

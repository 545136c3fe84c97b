//! Tests of the test cluster itself (kubelet stand-in, storage, admission, helm): what the rest of the
//! suite takes for granted. Each test works in a fresh namespace against the real API server.
//!
//! Run: `scripts/testcluster up && cargo test -p integration --test cluster`

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerStatus, Event, Namespace, PersistentVolume, PersistentVolumeClaim, Pod,
    ResourceQuota,
};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use testkit::{run_ok, wait_for};

/// Generous: CI machines have 2 busy cores.
const TIMEOUT: Duration = Duration::from_secs(180);

fn obj<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("test object")
}

async fn create<K>(client: &Client, ns: &str, v: Value) -> K
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    let o: K = obj(v);
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &o)
        .await
        .unwrap_or_else(|e| panic!("creating {} {}: {e}", K::kind(&()), o.name_any()))
}

fn deployment(name: &str, replicas: i32, image: &str) -> Value {
    json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{
                    "name": "web", "image": image,
                    "readinessProbe": { "httpGet": { "path": "/", "port": 80 } },
                }]},
            },
        },
    })
}

fn job(name: &str) -> Value {
    json!({
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": { "spec": {
                "restartPolicy": "Never",
                "initContainers": [{ "name": "prepare", "image": "busybox" }],
                "containers": [{ "name": "work", "image": "busybox", "command": ["true"] }],
            }},
        },
    })
}

fn statefulset(name: &str) -> Value {
    json!({
        "metadata": { "name": name },
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{
                    "name": "db", "image": "mariadb",
                    "volumeMounts": [{ "name": "data", "mountPath": "/var/lib/mysql" }],
                }]},
            },
            // no storageClassName: the default class `standard` applies (DefaultStorageClass admission)
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "2Gi" } } },
            }],
        },
    })
}

async fn deployment_available(client: &Client, ns: &str, name: &str, replicas: i32) -> Deployment {
    let api = Api::<Deployment>::namespaced(client.clone(), ns);
    wait_for(
        &format!("deployment {ns}/{name} Available with {replicas} replicas"),
        TIMEOUT,
        || async {
            let d = api.get(name).await.ok()?;
            let s = d.status.as_ref()?;
            let available = s.conditions.iter().flatten().any(|c| {
                c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
            });
            let current = s.observed_generation == d.metadata.generation;
            (available
                && current
                && s.available_replicas == Some(replicas)
                && s.ready_replicas == Some(replicas))
            .then_some(d)
        },
    )
    .await
}

async fn job_succeeded(client: &Client, ns: &str, name: &str) -> Job {
    let api = Api::<Job>::namespaced(client.clone(), ns);
    wait_for(&format!("job {ns}/{name} succeeded"), TIMEOUT, || async {
        let j = api.get(name).await.ok()?;
        (j.status.as_ref()?.succeeded == Some(1)).then_some(j)
    })
    .await
}

async fn statefulset_ready(client: &Client, ns: &str, name: &str) -> StatefulSet {
    let api = Api::<StatefulSet>::namespaced(client.clone(), ns);
    wait_for(
        &format!("statefulset {ns}/{name} ready"),
        TIMEOUT,
        || async {
            let s = api.get(name).await.ok()?;
            let st = s.status.as_ref()?;
            (st.observed_generation == s.metadata.generation && st.ready_replicas == Some(1))
                .then_some(s)
        },
    )
    .await
}

async fn claim_bound(client: &Client, ns: &str, name: &str) -> PersistentVolumeClaim {
    let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
    wait_for(&format!("claim {ns}/{name} Bound"), TIMEOUT, || async {
        let c = api.get(name).await.ok()?;
        (c.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(c)
    })
    .await
}

async fn pods(client: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .expect("listing pods")
        .items
}

fn condition(pod: &Pod, type_: &str) -> Option<String> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)?;
    Some(c.status.clone())
}

#[tokio::test]
async fn a_deployment_becomes_available_through_the_standin_node() {
    let cluster = testkit::cluster().await;
    let ns = cluster.namespace("cluster-deploy").await;
    let started = Instant::now();
    create::<Deployment>(
        &cluster.client,
        &ns.name,
        deployment("web", 3, "nginx:1.25"),
    )
    .await;
    deployment_available(&cluster.client, &ns.name, "web", 3).await;
    eprintln!("deployment of 3 available after {:?}", started.elapsed());

    let pods = pods(&cluster.client, &ns.name, "app=web").await;
    assert_eq!(pods.len(), 3);
    let mut ips = Vec::new();
    for p in &pods {
        let spec = p.spec.as_ref().unwrap();
        let status = p.status.as_ref().unwrap();
        assert_eq!(
            spec.node_name.as_deref(),
            Some("standin-node"),
            "scheduled by the real scheduler"
        );
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(condition(p, "Ready").as_deref(), Some("True"));
        assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
        let c: &ContainerStatus = &status.container_statuses.as_ref().unwrap()[0];
        assert!(
            c.ready && c.state.as_ref().unwrap().running.is_some(),
            "{c:?}"
        );
        assert_eq!(c.image, "nginx:1.25");
        ips.push(status.pod_ip.clone().expect("pod IP"));
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "pod IPs are unique: {ips:?}");
}

#[tokio::test]
async fn a_job_completes() {
    let cluster = testkit::cluster().await;
    let ns = cluster.namespace("cluster-job").await;
    create::<Job>(&cluster.client, &ns.name, job("once")).await;
    let j = job_succeeded(&cluster.client, &ns.name, "once").await;
    assert!(
        j.status
            .unwrap()
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Complete" && c.status == "True")
    );

    let pods = pods(&cluster.client, &ns.name, "job-name=once").await;
    assert_eq!(pods.len(), 1);
    let status = pods[0].status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let init = &status.init_container_statuses.unwrap()[0];
    assert_eq!(
        init.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        0
    );
    let main = &status.container_statuses.unwrap()[0];
    let t = main
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
}

#[tokio::test]
async fn a_statefulset_gets_its_volume_bound_and_becomes_ready() {
    let cluster = testkit::cluster().await;
    let ns = cluster.namespace("cluster-sts").await;
    create::<StatefulSet>(&cluster.client, &ns.name, statefulset("db")).await;
    let claim = claim_bound(&cluster.client, &ns.name, "data-db-0").await;
    statefulset_ready(&cluster.client, &ns.name, "db").await;

    let claim_spec = claim.spec.unwrap();
    assert_eq!(claim_spec.storage_class_name.as_deref(), Some("standard"));
    let pv_name = claim_spec
        .volume_name
        .expect("bound claim names its volume");
    let pv = Api::<PersistentVolume>::all(cluster.client.clone())
        .get(&pv_name)
        .await
        .unwrap();
    let spec = pv.spec.unwrap();
    let claim_ref = spec.claim_ref.unwrap();
    assert_eq!(
        claim_ref.uid, claim.metadata.uid,
        "the volume was made for this claim"
    );
    assert_eq!(spec.capacity.unwrap()["storage"].0, "2Gi");
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    let path = spec.host_path.expect("a hostPath volume").path;
    assert!(
        std::path::Path::new(&path).is_dir(),
        "the stand-in made the folder {path}"
    );
}

#[tokio::test]
async fn deleting_a_namespace_with_workloads_and_volumes_completes() {
    let cluster = testkit::cluster().await;
    let client = &cluster.client;
    let ns = cluster.namespace("cluster-nsdel").await;
    create::<Deployment>(client, &ns.name, deployment("web", 2, "nginx")).await;
    create::<Job>(client, &ns.name, job("once")).await;
    create::<StatefulSet>(client, &ns.name, statefulset("db")).await;
    deployment_available(client, &ns.name, "web", 2).await;
    job_succeeded(client, &ns.name, "once").await;
    statefulset_ready(client, &ns.name, "db").await;
    let claim = claim_bound(client, &ns.name, "data-db-0").await;
    let pv_name = claim.spec.unwrap().volume_name.unwrap();
    let pvs = Api::<PersistentVolume>::all(client.clone());
    let pv_path = pvs
        .get(&pv_name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .host_path
        .unwrap()
        .path;

    let started = Instant::now();
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .delete(&ns.name, &DeleteParams::default())
        .await
        .expect("deleting the namespace");
    wait_for(&format!("namespace {ns} gone"), TIMEOUT, || async {
        matches!(namespaces.get_opt(&ns.name).await, Ok(None)).then_some(())
    })
    .await;
    eprintln!("namespace deleted in {:?}", started.elapsed());
    wait_for(&format!("volume {pv_name} deleted"), TIMEOUT, || async {
        matches!(pvs.get_opt(&pv_name).await, Ok(None)).then_some(())
    })
    .await;
    assert!(
        !std::path::Path::new(&pv_path).exists(),
        "the volume's folder {pv_path} is removed too"
    );
}

#[tokio::test]
async fn helm_installs_and_uninstalls_a_small_chart() {
    let cluster = testkit::cluster().await;
    let ns = cluster.namespace("cluster-helm").await;
    let chart = tempfile::tempdir().expect("temp dir");
    let dir = chart.path();
    std::fs::create_dir(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "greeting: hello\n").unwrap();
    std::fs::write(
        dir.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n\
         data:\n  greeting: {{ .Values.greeting | quote }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/deployment.yaml"),
        serde_yaml::to_string(&{
            let mut d = deployment("{{ .Release.Name }}-web", 1, "nginx");
            d["apiVersion"] = json!("apps/v1");
            d["kind"] = json!("Deployment");
            d
        })
        .unwrap(),
    )
    .unwrap();

    // --wait: helm itself watches the Deployment turn ready through the stand-in.
    run_ok(
        cluster
            .helm()
            .args(["install", "tiny", dir.to_str().unwrap(), "-n", &ns.name])
            .args(["--set", "greeting=hi there", "--wait", "--timeout", "3m"]),
    );
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &ns.name);
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &ns.name);
    let cm = config_maps
        .get("tiny-config")
        .await
        .expect("the chart's ConfigMap");
    assert_eq!(cm.data.as_ref().unwrap()["greeting"], "hi there");
    assert_eq!(
        cm.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("Helm")
    );
    deployment_available(&cluster.client, &ns.name, "tiny-web", 1).await;
    let listed: Value = serde_json::from_str(&run_ok(
        cluster.helm().args(["list", "-n", &ns.name, "-o", "json"]),
    ))
    .unwrap();
    assert_eq!(listed[0]["name"], "tiny");
    assert_eq!(listed[0]["status"], "deployed");

    run_ok(cluster.helm().args(["uninstall", "tiny", "-n", &ns.name]));
    wait_for("the chart's objects gone", TIMEOUT, || async {
        let cm = config_maps.get_opt("tiny-config").await.ok()?;
        let d = deployments.get_opt("tiny-web").await.ok()?;
        let pods = pods(&cluster.client, &ns.name, "app=tiny-web").await;
        (cm.is_none() && d.is_none() && pods.is_empty()).then_some(())
    })
    .await;
    let listed: Value = serde_json::from_str(&run_ok(
        cluster.helm().args(["list", "-n", &ns.name, "-o", "json"]),
    ))
    .unwrap();
    assert_eq!(listed, json!([]));
}

async fn warning_events(client: &Client, ns: &str, pod: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields(&format!("involvedObject.name={pod},type=Warning")))
        .await
        .expect("listing events")
        .items
}

async fn first_pod(client: &Client, ns: &str, selector: &str) -> Pod {
    wait_for(&format!("a pod {selector} in {ns}"), TIMEOUT, || async {
        pods(client, ns, selector).await.into_iter().next()
    })
    .await
}

#[tokio::test]
async fn a_broken_image_shows_image_pull_backoff_with_events() {
    let cluster = testkit::cluster().await;
    let client = &cluster.client;
    let ns = cluster.namespace("cluster-broken").await;
    let image = "example.invalid/broken-wordpress:6";
    create::<Deployment>(client, &ns.name, deployment("web", 1, image)).await;
    let pod = first_pod(client, &ns.name, "app=web").await.name_any();
    let api = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let waiting = wait_for("ImagePullBackOff in the pod status", TIMEOUT, || async {
        let p = api.get(&pod).await.ok()?;
        let w = p
            .status?
            .container_statuses?
            .first()?
            .state
            .clone()?
            .waiting?;
        (w.reason.as_deref() == Some("ImagePullBackOff")).then_some(w)
    })
    .await;
    assert!(
        waiting.message.unwrap().contains(image),
        "the message names the image"
    );
    let p = api.get(&pod).await.unwrap();
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));

    let events = wait_for("Failed and BackOff events on the pod", TIMEOUT, || async {
        let ev = warning_events(client, &ns.name, &pod).await;
        let has = |r: &str| ev.iter().any(|e| e.reason.as_deref() == Some(r));
        (has("Failed") && has("BackOff")).then_some(ev)
    })
    .await;
    assert!(
        events
            .iter()
            .all(|e| e.message.as_deref().unwrap_or_default().contains(image)),
        "{events:?}"
    );
    let d = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get("web")
        .await
        .unwrap();
    let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
    assert_eq!(available, 0, "a broken deployment is not available");
}

#[tokio::test]
async fn a_crashing_container_shows_crash_loop_backoff_and_restarts() {
    let cluster = testkit::cluster().await;
    let client = &cluster.client;
    let ns = cluster.namespace("cluster-crash").await;
    create::<Deployment>(
        client,
        &ns.name,
        deployment("db", 1, "example.invalid/crash-mariadb"),
    )
    .await;
    let pod = first_pod(client, &ns.name, "app=db").await.name_any();
    let api = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let crashed = |min_restarts: i32| {
        let api = api.clone();
        let pod = pod.clone();
        async move {
            let p = api.get(&pod).await.ok()?;
            let c = p.status?.container_statuses?.first()?.clone();
            let w = c.state.clone()?.waiting?;
            (w.reason.as_deref() == Some("CrashLoopBackOff") && c.restart_count >= min_restarts)
                .then_some(c)
        }
    };
    let c = wait_for("CrashLoopBackOff in the pod status", TIMEOUT, || crashed(1)).await;
    let last = c
        .last_state
        .unwrap()
        .terminated
        .expect("the last run terminated");
    assert_eq!(last.exit_code, 1);
    assert!(
        c.state
            .unwrap()
            .waiting
            .unwrap()
            .message
            .unwrap()
            .contains("restarting failed container=web")
    );
    assert_eq!(
        condition(&api.get(&pod).await.unwrap(), "Ready").as_deref(),
        Some("False")
    );
    wait_for("a BackOff event on the pod", TIMEOUT, || async {
        let ev = warning_events(client, &ns.name, &pod).await;
        ev.into_iter()
            .find(|e| e.reason.as_deref() == Some("BackOff"))
    })
    .await;
    // The first back-off is 10 s, like the kubelet's.
    wait_for("the restart count to grow", TIMEOUT, || {
        crashed(c.restart_count + 1)
    })
    .await;
}

#[tokio::test]
async fn a_pod_over_its_resource_quota_is_rejected_by_admission() {
    let cluster = testkit::cluster().await;
    let client = &cluster.client;
    let ns = cluster.namespace("cluster-quota").await;
    create::<ResourceQuota>(
        client,
        &ns.name,
        json!({
            "metadata": { "name": "small" },
            "spec": { "hard": { "requests.cpu": "500m", "pods": "5" } },
        }),
    )
    .await;
    // Admission only enforces a quota once the controller-manager has computed its status.
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &ns.name);
    wait_for("quota status computed", TIMEOUT, || async {
        quotas
            .get("small")
            .await
            .ok()?
            .status?
            .hard
            .is_some()
            .then_some(())
    })
    .await;

    let pod = |name: &str, cpu: &str| -> Pod {
        obj(json!({
            "metadata": { "name": name },
            "spec": { "containers": [{ "name": "c", "image": "nginx", "resources": { "requests": { "cpu": cpu } } }] },
        }))
    };
    let api = Api::<Pod>::namespaced(client.clone(), &ns.name);
    // Within the quota: admitted, so the rejection below is about the quota and nothing else.
    api.create(&PostParams::default(), &pod("fits", "200m"))
        .await
        .expect("a pod within the quota");
    match api
        .create(&PostParams::default(), &pod("too-big", "400m"))
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(s.message.contains("exceeded quota"), "{}", s.message);
        }
        other => panic!("expected 403 exceeded quota, got {other:?}"),
    }
    assert!(
        api.get_opt("too-big").await.unwrap().is_none(),
        "nothing left behind"
    );
}

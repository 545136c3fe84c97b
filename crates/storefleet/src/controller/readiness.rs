//! Is a store ready, and if not, why? Readiness comes from the workloads in its namespace; the
//! diagnosis for a deadline comes from pod state and events.
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::domain::StoreId;

const COMPONENT: &str = "app.kubernetes.io/component";

/// One readiness check: ok, or a reason (CamelCase) and a message a human can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

impl Check {
    fn ok(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ok: true,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
    fn waiting(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Every Deployment and StatefulSet fully ready.
    pub workloads: Check,
    /// The setup Job succeeded.
    pub setup: Check,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.workloads.ok && self.setup.ok
    }

    /// What is still missing, in one line.
    pub fn summary(&self) -> String {
        [&self.workloads, &self.setup]
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

pub async fn evaluate(client: &Client, id: &StoreId) -> kube::Result<Readiness> {
    let lp = ListParams::default();
    let ns = id.as_str();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let jobs = Api::<Job>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    Ok(evaluate_objects(&deployments, &statefulsets, &jobs))
}

/// The workloads alone (for the warm pool's look at its Ready stores, pool/health.rs: whether the
/// setup Job still exists does not matter once a store was Ready).
pub async fn workloads(client: &Client, id: &StoreId) -> kube::Result<Check> {
    let lp = ListParams::default();
    let ns = id.as_str();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    Ok(workloads_check(&deployments, &statefulsets))
}

pub fn evaluate_objects(
    deployments: &[Deployment],
    statefulsets: &[StatefulSet],
    jobs: &[Job],
) -> Readiness {
    Readiness {
        workloads: workloads_check(deployments, statefulsets),
        setup: setup_check(jobs),
    }
}

fn workloads_check(deployments: &[Deployment], statefulsets: &[StatefulSet]) -> Check {
    if deployments.is_empty() && statefulsets.is_empty() {
        return Check::waiting("NoWorkloads", "no Deployment or StatefulSet exists yet");
    }
    let mut waiting = Vec::new();
    for d in deployments {
        let desired = d.spec.replicas.unwrap_or(1);
        let status = d.status.clone().unwrap_or_default();
        let current = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        let ready = status.ready_replicas.unwrap_or(0);
        let updated = status.updated_replicas.unwrap_or(0);
        if !current
            || ready != desired
            || updated != desired
            || status.replicas.unwrap_or(0) != desired
        {
            let mut line = format!("Deployment {} has {ready}/{desired} ready", d.name_any());
            // A pod that cannot even be created (over quota, refused by admission) shows only
            // here; without it the message blamed whatever waited on that pod.
            if let Some(why) = replica_failure(&status) {
                line.push_str(&format!(" (its pod cannot be created: {why})"));
            }
            waiting.push(line);
        }
    }
    for s in statefulsets {
        let desired = s.spec.replicas.unwrap_or(1);
        let status = s.status.clone().unwrap_or_default();
        let current = status.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0);
        let ready = status.ready_replicas.unwrap_or(0);
        if !current || ready != desired {
            waiting.push(format!(
                "StatefulSet {} has {ready}/{desired} ready",
                s.name_any()
            ));
        }
    }
    if waiting.is_empty() {
        Check::ok(
            "WorkloadsReady",
            "every Deployment and StatefulSet is ready",
        )
    } else {
        Check::waiting("WorkloadsNotReady", waiting.join(", "))
    }
}

/// The message of a Deployment's `ReplicaFailure` condition (copied from its ReplicaSet's), if True.
fn replica_failure(status: &DeploymentStatus) -> Option<&str> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| {
            c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
        })
        .map(|c| c.message.as_deref().unwrap_or("ReplicaFailure"))
}

fn setup_check(jobs: &[Job]) -> Check {
    let labelled: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.labels().get(COMPONENT).is_some_and(|c| c == "setup"))
        .collect();
    let candidates = if labelled.is_empty() {
        jobs.iter().collect()
    } else {
        labelled
    };
    if candidates.is_empty() {
        return Check::waiting("NoSetupJob", "the setup Job does not exist yet");
    }
    let succeeded = |j: &Job| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) >= 1;
    // Every setup Job there is must have succeeded (an upgrade may briefly leave two).
    let Some(job) = candidates.iter().find(|j| !succeeded(j)) else {
        let names: Vec<String> = candidates.iter().map(|j| j.name_any()).collect();
        return Check::ok(
            "SetupSucceeded",
            format!("Job {} succeeded", names.join(", ")),
        );
    };
    let status = job.status.clone().unwrap_or_default();
    let failed = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    match failed {
        Some(c) => Check::waiting(
            "SetupFailed",
            format!(
                "setup Job {} failed: {}",
                job.name_any(),
                c.message.clone().or(c.reason.clone()).unwrap_or_default()
            ),
        ),
        None => Check::waiting(
            "SetupRunning",
            format!("setup Job {} has not succeeded yet", job.name_any()),
        ),
    }
}

/// Why a store did not become ready: a reason and a message naming what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub reason: String,
    pub message: String,
}

/// Looks at pods and events for the most telling problem. `None`: nothing specific found.
pub async fn diagnose(client: &Client, id: &StoreId) -> kube::Result<Option<Diagnosis>> {
    let lp = ListParams::default();
    let pods = Api::<Pod>::namespaced(client.clone(), id.as_str())
        .list(&lp)
        .await?
        .items;
    let events = Api::<Event>::namespaced(client.clone(), id.as_str())
        .list(&lp)
        .await?
        .items;
    Ok(diagnose_objects(&pods, &events))
}

pub fn diagnose_objects(pods: &[Pod], events: &[Event]) -> Option<Diagnosis> {
    pull_problem(pods)
        .or_else(|| crash_problem(pods))
        .or_else(|| unschedulable(pods))
        .or_else(|| quota_problem(events))
}

/// (pod, container name, image, waiting reason, waiting message, restarts) of every container.
fn containers(pods: &[Pod]) -> impl Iterator<Item = (&Pod, String, String, String, String, i32)> {
    pods.iter().flat_map(|pod| {
        let spec_images: Vec<(String, String)> = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
            })
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .collect();
        let status = pod.status.clone().unwrap_or_default();
        status
            .init_container_statuses
            .into_iter()
            .flatten()
            .chain(status.container_statuses.into_iter().flatten())
            .map(move |cs| {
                let image = spec_images
                    .iter()
                    .find(|(n, _)| *n == cs.name)
                    .map(|(_, i)| i.clone())
                    .filter(|i| !i.is_empty())
                    .unwrap_or(cs.image.clone());
                let waiting = cs.state.and_then(|s| s.waiting).unwrap_or_default();
                (
                    pod,
                    cs.name,
                    image,
                    waiting.reason.unwrap_or_default(),
                    waiting.message.unwrap_or_default(),
                    cs.restart_count,
                )
            })
            .collect::<Vec<_>>()
    })
}

fn pull_problem(pods: &[Pod]) -> Option<Diagnosis> {
    containers(pods)
        .find(|(_, _, _, reason, _, _)| {
            matches!(
                reason.as_str(),
                "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName"
            )
        })
        .map(|(pod, container, image, reason, message, _)| Diagnosis {
            reason: "ImagePullBackOff".into(),
            message: format!(
                "image {image} cannot be pulled (container {container} of pod {}: {reason}{})",
                pod.name_any(),
                if message.is_empty() {
                    String::new()
                } else {
                    format!(", {message}")
                }
            ),
        })
}

fn crash_problem(pods: &[Pod]) -> Option<Diagnosis> {
    containers(pods).find(|(_, _, _, reason, _, _)| reason == "CrashLoopBackOff").map(
        |(pod, container, image, _, _, restarts)| Diagnosis {
            reason: "CrashLoopBackOff".into(),
            message: format!(
                "container {container} (image {image}) of pod {} keeps crashing: CrashLoopBackOff after {restarts} restarts",
                pod.name_any()
            ),
        },
    )
}

fn unschedulable(pods: &[Pod]) -> Option<Diagnosis> {
    pods.iter().find_map(|pod| {
        let cond = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })?;
        Some(Diagnosis {
            reason: "Unschedulable".into(),
            message: format!(
                "pod {} cannot be scheduled: {}",
                pod.name_any(),
                cond.message.clone().unwrap_or_default()
            ),
        })
    })
}

fn quota_problem(events: &[Event]) -> Option<Diagnosis> {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .find(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.contains("exceeded quota"))
        })
        .map(|e| Diagnosis {
            reason: "QuotaExceeded".into(),
            message: format!(
                "{} {} cannot create pods: {}",
                e.involved_object.kind.clone().unwrap_or_default(),
                e.involved_object.name.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn deployment(ready: i32, observed: i64) -> Deployment {
        from(
            json!({"metadata": {"name": "wp", "generation": 2}, "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": 1, "readyReplicas": ready, "updatedReplicas": 1}}),
        )
    }

    fn statefulset(ready: i32) -> StatefulSet {
        from(
            json!({"metadata": {"name": "db", "generation": 1}, "spec": {"replicas": 1, "selector": {}, "template": {}, "serviceName": "db"},
            "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": ready}}),
        )
    }

    fn job(status: serde_json::Value) -> Job {
        from(
            json!({"metadata": {"name": "setup", "labels": {COMPONENT: "setup"}}, "spec": {"template": {}}, "status": status}),
        )
    }

    /// The Deployment's conditions as kube-controller-manager v1.20 left them in the outage test
    /// (`kubectl get deploy -o json`, stop 24): the quota refused the pod the ReplicaSet tried.
    #[test]
    fn a_pod_refused_by_the_quota_is_named_in_the_message() {
        let mut d = deployment(1, 2);
        let status = d.status.as_mut().unwrap();
        status.ready_replicas = Some(0);
        status.replicas = Some(0);
        status.conditions = Some(from(json!([
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated",
             "message": "Created new replica set \"store-91ddbf-wordpress-5d97c57d94\""},
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
             "message": "Deployment does not have minimum availability."},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
             "message": "pods \"store-91ddbf-wordpress-5d97c57d94-92wm8\" is forbidden: exceeded quota: store-91ddbf, requested: limits.cpu=1, used: limits.cpu=3500m, limited: limits.cpu=4"}
        ])));
        let r = evaluate_objects(&[d.clone()], &[statefulset(1)], &[]);
        assert!(
            r.workloads.message.contains("has 0/1 ready (its pod cannot be created: pods \"store-91ddbf-wordpress-5d97c57d94-92wm8\" is forbidden: exceeded quota"),
            "{}",
            r.workloads.message
        );
        // Once the ReplicaSet can create it again, the condition turns False and the words go.
        d.status.as_mut().unwrap().conditions.as_mut().unwrap()[2].status = Some("False".into());
        let r = evaluate_objects(&[d], &[statefulset(1)], &[]);
        assert!(
            !r.workloads.message.contains("cannot be created"),
            "{}",
            r.workloads.message
        );
    }

    #[test]
    fn ready_only_when_everything_is() {
        let done = job(json!({"succeeded": 1}));
        let r = evaluate_objects(
            &[deployment(1, 2)],
            &[statefulset(1)],
            std::slice::from_ref(&done),
        );
        assert!(r.is_ready(), "{r:?}");
        let r = evaluate_objects(
            &[deployment(1, 1)],
            &[statefulset(1)],
            std::slice::from_ref(&done),
        );
        assert!(!r.is_ready(), "an old observed generation is not ready");
        let r = evaluate_objects(
            &[deployment(1, 2)],
            &[statefulset(0)],
            std::slice::from_ref(&done),
        );
        assert_eq!(r.workloads.reason, "WorkloadsNotReady");
        assert!(
            r.summary().contains("StatefulSet db has 0/1 ready"),
            "{}",
            r.summary()
        );
        let r = evaluate_objects(
            &[deployment(1, 2)],
            &[statefulset(1)],
            &[job(json!({"active": 1}))],
        );
        assert_eq!(r.setup.reason, "SetupRunning");
        let r = evaluate_objects(&[deployment(1, 2)], &[statefulset(1)], &[]);
        assert_eq!(r.setup.reason, "NoSetupJob");
        let r = evaluate_objects(&[], &[], std::slice::from_ref(&done));
        assert_eq!(r.workloads.reason, "NoWorkloads");
    }

    #[test]
    fn failed_setup_job_is_named() {
        let failed = job(
            json!({"failed": 3, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        );
        let r = evaluate_objects(&[deployment(1, 2)], &[statefulset(1)], &[failed]);
        assert_eq!(r.setup.reason, "SetupFailed");
        assert!(r.setup.message.contains("backoff limit"));
    }

    fn pod(
        containers: serde_json::Value,
        statuses: serde_json::Value,
        conditions: serde_json::Value,
    ) -> Pod {
        from(
            json!({"metadata": {"name": "wp-1"}, "spec": {"containers": containers},
            "status": {"containerStatuses": statuses, "conditions": conditions}}),
        )
    }

    #[test]
    fn image_pull_names_the_image() {
        let p = pod(
            json!([{"name": "wordpress", "image": "example.invalid/broken-wordpress:6"}]),
            json!([{"name": "wordpress", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]),
            json!([]),
        );
        let d = diagnose_objects(&[p], &[]).unwrap();
        assert_eq!(d.reason, "ImagePullBackOff");
        assert!(
            d.message.contains("example.invalid/broken-wordpress:6"),
            "{}",
            d.message
        );
    }

    #[test]
    fn crash_loop_and_unschedulable_and_quota() {
        let crash = pod(
            json!([{"name": "db", "image": "mariadb-crash"}]),
            json!([{"name": "db", "image": "mariadb-crash", "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
            json!([]),
        );
        assert_eq!(
            diagnose_objects(&[crash], &[]).unwrap().reason,
            "CrashLoopBackOff"
        );
        let pending = pod(
            json!([{"name": "wp", "image": "x"}]),
            json!([]),
            json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]),
        );
        let d = diagnose_objects(&[pending], &[]).unwrap();
        assert_eq!(d.reason, "Unschedulable");
        assert!(d.message.contains("Insufficient cpu"));
        let event: Event = from(
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "ReplicaSet", "name": "wp-abc"},
            "reason": "FailedCreate", "message": "Error creating: pods \"wp-abc-x\" is forbidden: exceeded quota: q, requested: cpu=1"}),
        );
        let d = diagnose_objects(&[], &[event]).unwrap();
        assert_eq!(d.reason, "QuotaExceeded");
        assert!(diagnose_objects(&[], &[]).is_none());
    }
}

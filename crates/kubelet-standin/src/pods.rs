//! Pods bound to the stand-in's node: report them Running/Ready (or Succeeded, or failing, see
//! `pod_status`) after the ready delay, and remove pods being deleted, since no kubelet will.
//! A kube-runtime Controller drives this: it watches the node's pods, retries failed reconciles and
//! reconciles everything it finds after a restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::pod_book::PodBook;
use crate::pod_status::{self, summary};
use crate::{Error, HOST_IP, ignore_gone};

struct Ctx {
    client: Client,
    node: String,
    ready_delay: Duration,
    pods: Store<Pod>,
    book: Mutex<PodBook>,
}

pub async fn run(client: Client, node: String, ready_delay: Duration) {
    let api = Api::<Pod>::all(client.clone());
    let controller = Controller::new(
        api,
        watcher::Config::default().fields(&format!("spec.nodeName={node}")),
    );
    let ctx = Arc::new(Ctx {
        client,
        node,
        ready_delay,
        pods: controller.store(),
        book: Mutex::default(),
    });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                // ObjectNotFound (the pod vanished before its turn) is routine; the rest is retried.
                tracing::debug!("pod reconcile: {e}");
            }
        })
        .await;
}

fn error_policy(pod: Arc<Pod>, err: &Error, _: Arc<Ctx>) -> Action {
    warn!(pod = %pod_name(&pod), "kubelet stand-in: {err}; retrying in 3s");
    Action::requeue(Duration::from_secs(3))
}

fn pod_name(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());

    if pod.metadata.deletion_timestamp.is_some() {
        // No containers to stop: remove it for real, or its namespace never finishes deleting.
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        if ignore_gone(api.delete(&pod.name_any(), &params).await.map(|_| ()))?.is_some() {
            info!(pod = %pod_name(&pod), "kubelet stand-in: removed deleted pod");
        }
        return Ok(Action::await_change());
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Ok(Action::await_change());
    }

    let (waited, ip) = {
        let mut book = ctx.book.lock().expect("pod book lock");
        let waited = book.first_seen(&uid).elapsed();
        if waited < ctx.ready_delay {
            return Ok(Action::requeue(ctx.ready_delay - waited));
        }
        (
            waited,
            book.ip_for(&pod, &ctx.pods.state()).ok_or(Error::NoPodIp)?,
        )
    };

    let report = pod_status::report(&pod, ip, HOST_IP, Timestamp::now());
    let current = pod.status.clone().unwrap_or_default();
    if summary(&report.status) != summary(&current) {
        // The uid is a precondition: never report on a namesake created after this pod.
        let patch = json!({ "metadata": { "uid": uid }, "status": report.status });
        match ignore_gone(
            api.patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
            .map(|_| ()),
        )? {
            None => return Ok(Action::await_change()),
            Some(()) => info!(
                pod = %pod_name(&pod),
                phase = report.status.phase.as_deref().unwrap_or_default(),
                ip = %ip,
                after_ms = waited.as_millis() as u64,
                "kubelet stand-in: reported pod status (no container runs)"
            ),
        }
        for f in &report.failures {
            warn!(pod = %pod_name(&pod), container = %f.container, reason = f.reason, "kubelet stand-in: {}", f.message);
            if let Err(e) = crate::events::warn(
                &ctx.client,
                &ctx.node,
                &pod,
                &f.container,
                f.reason,
                &f.message,
            )
            .await
            {
                // An event is worth less than a retry that would repeat the status write.
                warn!(pod = %pod_name(&pod), "kubelet stand-in: could not record event: {e}");
            }
        }
    }
    Ok(report
        .recheck
        .map_or_else(Action::await_change, Action::requeue))
}

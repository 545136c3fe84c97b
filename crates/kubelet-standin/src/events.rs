//! Kubernetes Events on pods, shaped like the kubelet's (core/v1, source component `kubelet`, the
//! container in `fieldPath`), because the control plane reads them to explain failures.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

/// Records a Warning event about one container of `pod`.
pub async fn warn(
    client: &Client,
    node: &str,
    pod: &Pod,
    container: &str,
    reason: &str,
    message: &str,
) -> kube::Result<()> {
    let ns = pod.namespace().unwrap_or_default();
    let now = Timestamp::now();
    let is_init = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .any(|c| c.name == container);
    let list = if is_init {
        "initContainers"
    } else {
        "containers"
    };
    let event = Event {
        metadata: ObjectMeta {
            // the kubelet's naming: <object>.<unique hex>
            name: Some(format!("{}.{:x}", pod.name_any(), now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(ns.clone()),
            name: Some(pod.name_any()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path: Some(format!("spec.{list}{{{container}}}")),
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some("Warning".into()),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node.into()),
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &event)
        .await?;
    Ok(())
}

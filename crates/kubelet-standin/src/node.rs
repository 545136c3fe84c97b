//! The stand-in's Node: registered Ready, its Lease in `kube-node-lease` renewed every 10 s (that is
//! what keeps the node lifecycle controller from marking it NotReady), and its status re-posted every
//! minute, or at the next beat when it was marked not Ready or tainted not-ready. Any error is logged and retried a little later; this loop never ends.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::{Error, HOST_IP};

const LEASE_EVERY: Duration = Duration::from_secs(10);
const LEASE_DURATION_SECONDS: i32 = 40; // the kubelet's default
const STATUS_EVERY: Duration = Duration::from_secs(60);
/// Taints the API server and the node lifecycle controller put on a node that is not (yet) Ready.
const NOT_READY_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];
const MANAGER: &str = "kubelet-standin";

pub async fn run(client: Client, name: String) {
    let mut heart = Heart {
        nodes: Api::all(client.clone()),
        leases: Api::namespaced(client, "kube-node-lease"),
        name,
        uid: None,
        last_status: None,
        boot_id: boot_id(),
    };
    loop {
        let pause = match heart.beat().await {
            Ok(()) => LEASE_EVERY,
            Err(e) => {
                warn!(node = %heart.name, "kubelet stand-in: heartbeat failed: {e}; retrying in 2s");
                heart.uid = None; // look the node up again: it may have been deleted
                Duration::from_secs(2)
            }
        };
        tokio::time::sleep(pause).await;
    }
}

struct Heart {
    nodes: Api<Node>,
    leases: Api<Lease>,
    name: String,
    uid: Option<String>,
    last_status: Option<tokio::time::Instant>,
    boot_id: String,
}

/// A new id per start, like a machine's boot id.
fn boot_id() -> String {
    format!("{:032x}", Timestamp::now().as_nanosecond())
}

impl Heart {
    async fn beat(&mut self) -> Result<(), Error> {
        let uid = match &self.uid {
            Some(uid) => uid.clone(),
            None => {
                let node = self.register().await?;
                self.last_status = None; // a found or new node gets a full status at once
                let uid = node.uid().unwrap_or_default();
                self.uid = Some(uid.clone());
                uid
            }
        };
        // Like the kubelet, which compares its status with the Node's every 10 s: after an outage
        // the node lifecycle controller marks the node Unknown and taints it (unreachable), and
        // waiting for the next minute's post kept pods off it for up to 60 s.
        if self.last_status.is_none_or(|t| t.elapsed() >= STATUS_EVERY)
            || self.marked_not_ready().await?
        {
            self.post_status().await?;
            self.last_status = Some(tokio::time::Instant::now());
        }
        self.renew_lease(&uid).await
    }

    /// Whether someone else marked the node not Ready or put a not-ready taint on it.
    async fn marked_not_ready(&self) -> Result<bool, Error> {
        let node = self.nodes.get(&self.name).await?;
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| NOT_READY_TAINTS.contains(&t.key.as_str())));
        Ok(!ready || tainted)
    }

    async fn register(&self) -> Result<Node, Error> {
        if let Some(node) = self.nodes.get_opt(&self.name).await? {
            return Ok(node);
        }
        let node: Node = serde_json::from_value(json!({
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "storefleet.dev/kubelet-standin": "true",
                },
                "annotations": {
                    "storefleet.dev/note": "run by kubelet-standin, a stand-in for the kubelet for tests only: no container ever runs",
                },
            },
        }))?;
        match self.nodes.create(&PostParams::default(), &node).await {
            Ok(node) => {
                info!(node = %self.name, "kubelet stand-in (tests only): registered node");
                Ok(node)
            }
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                Ok(self.nodes.get(&self.name).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn post_status(&self) -> Result<(), Error> {
        let node = self.nodes.get(&self.name).await?;
        let now = Time(Timestamp::now());
        let current = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        // Keep lastTransitionTime while a condition holds its status.
        let condition = |type_: &str, status: &str, reason: &str, message: &str| {
            let since = current
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            json!({ "type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": since })
        };
        let resources =
            json!({ "cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi" });
        let patch = json!({ "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet stand-in has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet stand-in has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet stand-in has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet stand-in (tests only, no container ever runs) is posting ready status"),
            ],
            "addresses": [ { "type": "InternalIP", "address": HOST_IP }, { "type": "Hostname", "address": self.name } ],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
            "nodeInfo": {
                "machineID": "standin", "systemUUID": "standin", "bootID": self.boot_id,
                "kernelVersion": "stand-in", "osImage": "kubelet stand-in (tests only)",
                "containerRuntimeVersion": "standin://0.1.0",
                // build metadata keeps version comparisons at 1.20.2, the control plane's version
                "kubeletVersion": "v1.20.2+kubelet-standin", "kubeProxyVersion": "v1.20.2+kubelet-standin",
                "operatingSystem": "linux", "architecture": "amd64",
            },
        }});
        let node = self
            .nodes
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await?;

        // Ready now; lift the not-ready taints rather than wait for the node lifecycle controller.
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let keep: Vec<_> = taints
            .iter()
            .filter(|t| !NOT_READY_TAINTS.contains(&t.key.as_str()))
            .cloned()
            .collect();
        if keep.len() != taints.len() {
            // resourceVersion makes this a compare-and-swap: a concurrent taint change is not lost
            // (a conflict fails the heartbeat, which is retried in 2 s)
            let patch = json!({ "metadata": { "resourceVersion": node.resource_version() }, "spec": { "taints": keep } });
            match self
                .nodes
                .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => info!(node = %self.name, "kubelet stand-in: lifted not-ready taints"),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn renew_lease(&self, node_uid: &str) -> Result<(), Error> {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": "kube-node-lease",
                // like the kubelet's: the lease goes away with the node
                "ownerReferences": [{ "apiVersion": "v1", "kind": "Node", "name": self.name, "uid": node_uid }],
            },
            "spec": {
                "holderIdentity": self.name,
                "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": MicroTime(Timestamp::now()),
            },
        });
        let params = PatchParams::apply(MANAGER).force();
        self.leases
            .patch(&self.name, &params, &Patch::Apply(&lease))
            .await?;
        Ok(())
    }
}

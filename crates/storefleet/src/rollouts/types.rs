//! The `StoreRollout` custom resource: one fleet rollout of a target to the stores of an instance.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A fleet rollout: moves the stores of this instance to `spec.target`, a canary first, then in
/// batches, each store gated on being Ready again; a store that fails its gate is rolled back and
/// the rollout pauses.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "storefleet.dev",
    version = "v1alpha1",
    kind = "StoreRollout",
    singular = "storerollout",
    plural = "storerollouts",
    shortname = "rollout",
    status = "StoreRolloutStatus",
    doc = "A fleet rollout: moves stores to a new target (chart values such as images) in gated waves.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.target.name"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct StoreRolloutSpec {
    pub target: Target,
    /// Only Stores with these labels (besides the instance's); empty: every store of the instance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// The canary store's id; absent: the first store by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Stores per batch after the canary.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub batch_size: u32,
    /// At most this many stores of the selection not Ready at once (those the rollout moves and
    /// any other).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub max_unavailable: u32,
    /// How long an upgraded store has to become Ready again before it is rolled back.
    #[serde(default = "default_gate_timeout")]
    #[schemars(range(min = 1))]
    pub gate_timeout_seconds: u32,
    /// Set by an operator (`POST /rollouts/{id}/pause`), or by the rollout itself when a store
    /// failed its gate; `resume` clears it.
    #[serde(default)]
    pub paused: bool,
    /// Stop for good: no further store is touched (one already upgraded keeps its target).
    #[serde(default)]
    pub aborted: bool,
}

fn one() -> u32 {
    1
}

fn default_gate_timeout() -> u32 {
    300
}

/// A revision of what the platform installs: chart values laid over the platform's own.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Names this revision; a Store running it says so in `spec.release.target`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Chart values (e.g. `{"wordpress": {"image": {"tag": "6.9"}}}`).
    #[serde(default)]
    #[schemars(schema_with = "crate::crd::free_form_object")]
    pub values: serde_json::Value,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RolloutPhase {
    Progressing,
    Paused,
    Completed,
    Aborted,
}

impl RolloutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Progressing => "Progressing",
            Self::Paused => "Paused",
            Self::Completed => "Completed",
            Self::Aborted => "Aborted",
        }
    }
}

/// Where one store is in the rollout. Written before and after each step, so a restarted control
/// plane knows what it did (and never upgrades a store twice for the same target).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StoreStep {
    /// Not touched yet (a store whose pre-upgrade backup failed is back here: untouched).
    Pending,
    /// Its pre-upgrade backup (`backup`) runs; the store is not touched until it `Succeeded`.
    /// Only when the platform has a backup target.
    BackingUp,
    /// Its spec carries (or is about to carry) the target; waiting for its gate.
    Upgrading,
    /// Passed its gate on the target.
    Upgraded,
    /// Failed its gate; being put back on its previous revision.
    RollingBack,
    /// Back on its previous revision.
    RolledBack,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreProgress {
    pub store_id: String,
    pub step: StoreStep,
    /// The helm revision the store ran before the rollout touched it (the rollback's revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<u32>,
    /// The store's `spec.release` before (absent: the platform's values only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_release: Option<crate::crd::StoreRelease>,
    /// When its upgrade began: the gate timeout counts from here, across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// Its pre-upgrade backup's id (a `StoreBackup`), recorded before that object is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Why it is where it is (the gate's failure, the rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreRolloutStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_phase_schema")]
    pub phase: Option<RolloutPhase>,
    /// `upgraded/total`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// What a human should know now (why it is paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The stores it moves, fixed when it starts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<StoreProgress>,
}

/// schemars puts `null` into the enum of an optional enum, which a 1.20 API server refuses.
fn optional_phase_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["Progressing", "Paused", "Completed", "Aborted"],
        "nullable": true
    })
}

impl StoreRollout {
    pub fn phase(&self) -> Option<RolloutPhase> {
        self.status.as_ref().and_then(|s| s.phase)
    }

    pub fn is_finished(&self) -> bool {
        matches!(
            self.phase(),
            Some(RolloutPhase::Completed | RolloutPhase::Aborted)
        )
    }
}

/// The CRD as YAML, exactly as committed in `charts/storefleet/crds/storerollouts.storefleet.dev.yaml`.
pub fn crd_yaml() -> String {
    crate::crd::generated_crd_yaml::<StoreRollout>(
        "`storefleet crd --rollouts` from crates/storefleet/src/rollouts/types.rs",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn committed_crd_is_generated() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../charts/storefleet/crds/storerollouts.storefleet.dev.yaml"
        );
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "{path} is out of date; regenerate it with `cargo run -p storefleet -- crd --rollouts > {path}`"
        );
        assert!(!crd_yaml().contains("x-kubernetes-validations"));
    }

    #[test]
    fn columns_tell_phase_target_progress() {
        let crd = StoreRollout::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        let columns: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Phase", "Target", "Progress", "Message", "Age"]);
    }
}

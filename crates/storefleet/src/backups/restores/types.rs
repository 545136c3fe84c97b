//! The `StoreRestore` custom resource: one restore of one store from one of its backups, asked for
//! by creating the object (the API does), its progress in its status (`kubectl get storerestores`:
//! store, backup, state, safety backup, age). Cluster-scoped and named by its restore id, like
//! `StoreBackup`.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Held while a restore is unfinished: deleting it by hand lets it finish (and give its store back).
pub const FINALIZER: &str = "storefleet.dev/restore-finish";

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "storefleet.dev",
    version = "v1alpha1",
    kind = "StoreRestore",
    singular = "storerestore",
    plural = "storerestores",
    shortname = "srs",
    status = "StoreRestoreStatus",
    doc = "A restore of one store, in place, from one of its backups (a safety backup first).",
    printcolumn = r#"{"name":"Store","type":"string","jsonPath":".spec.storeId"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".spec.backupId"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Safety backup","type":"string","jsonPath":".status.safetyBackup"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct StoreRestoreSpec {
    /// The store restored (its `Store`'s name).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub store_id: String,
    /// The backup it is restored from (a `StoreBackup` of this store, Succeeded; of
    /// `sourceStoreId` for a clone).
    #[schemars(length(min = 1, max = 63))]
    pub backup_id: String,
    /// A clone (`backups/clones`): the store the backup is of. The restore fills the new store
    /// `storeId` (no safety backup: it holds nothing yet), then moves the site's URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub source_store_id: Option<String>,
    /// A clone: the source store's address when the backup was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub source_url: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RestorePhase {
    /// Asked for; nothing done yet.
    Pending,
    /// The store shows `Restoring`; its safety backup runs.
    BackingUp,
    /// WordPress is being scaled to 0.
    Stopping,
    /// The agent's restore Job runs.
    Restoring,
    /// The restore failed: the agent puts the safety backup back.
    RollingBack,
    /// A clone: WP-CLI `search-replace` moves the site's URLs to the new store's address.
    MovingUrls,
    /// WordPress is being started again.
    Starting,
    Succeeded,
    /// With `message` saying why (and naming the safety backup when there is one).
    Failed,
}

impl RestorePhase {
    pub const ALL: [RestorePhase; 9] = [
        Self::Pending,
        Self::BackingUp,
        Self::Stopping,
        Self::Restoring,
        Self::RollingBack,
        Self::MovingUrls,
        Self::Starting,
        Self::Succeeded,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::BackingUp => "BackingUp",
            Self::Stopping => "Stopping",
            Self::Restoring => "Restoring",
            Self::RollingBack => "RollingBack",
            Self::MovingUrls => "MovingUrls",
            Self::Starting => "Starting",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreRestoreStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_phase_schema")]
    pub phase: Option<RestorePhase>,
    /// What it waits for, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The backup taken before anything changed (written before it is asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_backup: Option<String>,
    /// WordPress's replicas before it was stopped: what `Starting` puts back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wordpress_replicas: Option<i32>,
    /// Why the restore Job failed: set on the way to `RollingBack`, and the final message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// schemars puts `null` into the enum of an optional enum, which a 1.20 API server refuses.
fn optional_phase_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = RestorePhase::ALL.iter().map(|p| p.as_str()).collect();
    schemars::json_schema!({ "type": "string", "enum": names, "nullable": true })
}

impl StoreRestore {
    /// A clone's restore fills a new store from another store's backup.
    pub fn is_clone(&self) -> bool {
        self.spec.source_store_id.is_some()
    }

    pub fn phase(&self) -> RestorePhase {
        self.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(RestorePhase::Pending)
    }
}

/// The CRD as YAML, exactly as committed in `charts/storefleet/crds/storerestores.storefleet.dev.yaml`.
pub fn crd_yaml() -> String {
    crate::crd::generated_crd_yaml::<StoreRestore>(
        "`storefleet crd --restores` from crates/storefleet/src/backups/restores/types.rs",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crd_is_generated() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../charts/storefleet/crds/storerestores.storefleet.dev.yaml"
        );
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "{path} is out of date; regenerate it with `cargo run -p storefleet -- crd --restores > {path}`"
        );
    }
}

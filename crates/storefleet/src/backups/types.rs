//! The `StoreBackup` custom resource: one backup of one store, asked for by creating the object
//! (the API does, or `kubectl apply`), its progress and outcome in its status (`kubectl get
//! storebackups`: store, state, size, age). Cluster-scoped, like `StoreRollout`, and named by its
//! backup id, so it outlives the store's namespace (a deleted store's backups stay listable) and a
//! name is the same in the object, the Job and the target's folder.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Removes the backup's objects from the target before the object goes.
pub const FINALIZER: &str = "storefleet.dev/backup-data";

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "storefleet.dev",
    version = "v1alpha1",
    kind = "StoreBackup",
    singular = "storebackup",
    plural = "storebackups",
    shortname = "sbk",
    status = "StoreBackupStatus",
    doc = "A backup of one store (database dump and wp-content, encrypted), named by its backup id.",
    printcolumn = r#"{"name":"Store","type":"string","jsonPath":".spec.storeId"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Size","type":"string","jsonPath":".status.size"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct StoreBackupSpec {
    /// The store backed up (its `Store`'s name).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub store_id: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupPhase {
    /// Asked for; no Job yet.
    Pending,
    /// Its Job runs the agent in the store's namespace.
    Running,
    /// The Job ended well *and* the controller opened and checked the sealed manifest.
    Succeeded,
    /// With `message` saying why.
    Failed,
}

impl BackupPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
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
pub struct StoreBackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_phase_schema")]
    pub phase: Option<BackupPhase>,
    /// Why it failed, or what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Job in the store's namespace (named like the backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Bytes as stored (compressed, encrypted), all parts: `kubectl get` shows it as `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    /// The dump's bytes before compression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_bytes: Option<u64>,
    /// The wp-content tar's bytes before compression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_bytes: Option<u64>,
    /// `stored_bytes` for people (`12.3 MiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// schemars puts `null` into the enum of an optional enum, which a 1.20 API server refuses.
fn optional_phase_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["Pending", "Running", "Succeeded", "Failed"],
        "nullable": true
    })
}

impl StoreBackup {
    pub fn phase(&self) -> Option<BackupPhase> {
        self.status.as_ref().and_then(|s| s.phase)
    }
}

/// `1.5 MiB`: binary units, one decimal.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The CRD as YAML, exactly as committed in `charts/storefleet/crds/storebackups.storefleet.dev.yaml`.
pub fn crd_yaml() -> String {
    crate::crd::generated_crd_yaml::<StoreBackup>(
        "`storefleet crd --backups` from crates/storefleet/src/backups/types.rs",
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
            "/../../charts/storefleet/crds/storebackups.storefleet.dev.yaml"
        );
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "{path} is out of date; regenerate it with `cargo run -p storefleet -- crd --backups > {path}`"
        );
    }

    #[test]
    fn columns_tell_store_state_size_age() {
        let crd = StoreBackup::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        let columns: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Store", "State", "Size", "Message", "Age"]);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(12 * 1024 * 1024 + 300 * 1024), "12.3 MiB");
    }
}

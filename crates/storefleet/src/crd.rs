//! The `Store` custom resource: the source of truth for every store. The API creates and deletes these
//! objects; the controller makes the cluster match them. The YAML committed under
//! `charts/storefleet/crds/` is generated from these types (`storefleet crd`), never edited by hand.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{Engine, StoreId};

/// Finalizer that makes the controller uninstall the release and delete the namespace first.
pub const FINALIZER: &str = "storefleet.dev/cleanup";
/// On stores and on everything a store owns: the store id.
pub const LABEL_STORE_ID: &str = "storefleet.dev/store-id";
/// On stores and namespaces: the owner, in label-safe form.
pub const LABEL_OWNER: &str = "storefleet.dev/owner";
/// On stores and namespaces: which control plane instance manages them. Absent means `default`.
pub const LABEL_INSTANCE: &str = "storefleet.dev/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "storefleet";
/// The instance a `Store` without the instance label belongs to.
pub const DEFAULT_INSTANCE: &str = "default";

/// What the store should be. `metadata.name` is the store id (`store-` + 6 hex digits), which is also
/// the store's namespace and Helm release name.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "storefleet.dev",
    version = "v1alpha1",
    kind = "Store",
    singular = "store",
    plural = "stores",
    status = "StoreStatus",
    doc = "A WooCommerce store, provisioned in its own namespace by a Helm release of the store chart.",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Owner","type":"string","jsonPath":".spec.owner"}"#,
    printcolumn = r#"{"name":"Plan","type":"string","jsonPath":".spec.plan"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct StoreSpec {
    /// Display name (any Unicode, no control characters); the store id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")
    )]
    pub name: Option<String>,
    /// The shop software.
    #[serde(default)]
    pub engine: Engine,
    /// Who owns the store (the API fills it in from the caller).
    #[schemars(length(min = 1, max = 253))]
    pub owner: String,
    /// The size plan (resources, quota, volume sizes; the platform's `--plans`). Absent: the
    /// platform's default plan (stores made before plans exist have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,31}$"))]
    pub plan: Option<String>,
    /// What the platform installs for this store beyond its own settings: the fleet rollout target
    /// it runs (`crate::rollouts`). Set by a rollout, never by the store's owner; absent: the
    /// platform's chart values only. A change is a new generation, so the controller upgrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<StoreRelease>,
    /// The store's own domains, besides `<id>.<base-domain>` (`crate::domains`): set through
    /// `PUT /stores/{id}/domains/{domain}`, already validated (IDNA, lowercase, public suffix rules)
    /// and claimed. A change is a new generation, so the controller upgrades (routes, certificates,
    /// WordPress's home URL for the primary one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub domains: Vec<StoreDomain>,
    /// Raised by each claim of a pool store (`crate::pool`, docs/pool.md): the release gets a new
    /// WordPress admin password, so the pool's stops working. 0 (absent): never claimed. A change is
    /// a new generation, so the controller upgrades.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub identity_generation: u32,
}

pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One of a store's own domains as the release sees it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreDomain {
    /// The domain in ASCII (punycode), lowercase, no trailing dot.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// WordPress's `home`/`siteurl` use this domain; the platform host stays an alias.
    #[serde(default)]
    pub primary: bool,
}

/// A rollout target as a store runs it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreRelease {
    /// The target's name (a rollout's `spec.target.name`).
    #[schemars(length(min = 1, max = 63))]
    pub target: String,
    /// Chart values laid over the platform's values files (before the generated ones, so a target
    /// can never change the store id, host or plan).
    #[serde(default)]
    #[schemars(schema_with = "crate::crd::free_form_object")]
    pub values: serde_json::Value,
}

/// A free-form object (chart values): kept as it is by the API server.
pub fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Where a store is in its life.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, utoipa::ToSchema,
)]
pub enum Phase {
    Provisioning,
    Ready,
    Failed,
    Deleting,
    /// A restore (`StoreRestore`, backups/restores) owns the store: its WordPress is stopped and
    /// started by the restore, which gives the store back `Ready`.
    Restoring,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Provisioning,
        Phase::Ready,
        Phase::Failed,
        Phase::Deleting,
        Phase::Restoring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Provisioning => "Provisioning",
            Phase::Ready => "Ready",
            Phase::Failed => "Failed",
            Phase::Deleting => "Deleting",
            Phase::Restoring => "Restoring",
        }
    }
}

/// schemars puts `null` into the enum of an optional enum, which a 1.20 API server refuses.
fn optional_phase_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
    schemars::json_schema!({ "type": "string", "enum": names, "nullable": true })
}

/// Written by the controller only.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// Provisioning, Ready, Failed, Deleting or Restoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_phase_schema")]
    pub phase: Option<Phase>,
    /// NamespaceReady, Released, WorkloadsReady, SetupComplete and Ready; MailConfigured (not part of
    /// Ready: False/NoRelay when the platform has no SMTP relay).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<StoreCondition>,
    /// Where the store answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What a human should know now (why it is not ready yet, or why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the store last became Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
    /// When the current provisioning attempt began: the deadline counts from here, across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_started_at: Option<Time>,
    /// The generation the current attempt provisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The generation whose values the Helm release was last installed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_generation: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    pub reason: String,
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Store {
    /// The store id, if `metadata.name` is one (a hand-written `Store` might not be).
    pub fn store_id(&self) -> Option<StoreId> {
        StoreId::parse(&self.name_any()).ok()
    }

    /// The control plane instance this store belongs to.
    pub fn instance(&self) -> &str {
        self.labels()
            .get(LABEL_INSTANCE)
            .map(String::as_str)
            .unwrap_or(DEFAULT_INSTANCE)
    }

    pub fn phase(&self) -> Option<Phase> {
        self.status.as_ref().and_then(|s| s.phase)
    }

    /// Kubernetes deletes it (its finalizer holds it): the controller's cleanup runs.
    pub fn is_deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    /// Someone asked for it to go: Kubernetes deletes it, or it waits for its final backup first
    /// (`backups::safety_net`). The API and the other controllers treat both alike.
    pub fn deletion_requested(&self) -> bool {
        self.is_deleting() || crate::backups::safety_net::final_backup_of(self).is_some()
    }

    /// Display name: `spec.name`, or the store id when none was given.
    pub fn display_name(&self) -> String {
        self.spec.name.clone().unwrap_or_else(|| self.name_any())
    }
}

/// The CRD as YAML, exactly as committed in `charts/storefleet/crds/stores.storefleet.dev.yaml`.
pub fn crd_yaml() -> String {
    generated_crd_yaml::<Store>("`storefleet crd` from crates/storefleet/src/crd.rs")
}

/// A CRD file as committed: a header naming its generator (`source`), then the YAML.
pub fn generated_crd_yaml<K: CustomResourceExt>(source: &str) -> String {
    format!(
        "# Generated by {source}; do not edit.\n{}",
        serde_yaml::to_string(&K::crd()).expect("the CRD serialises")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crd_is_generated() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../charts/storefleet/crds/stores.storefleet.dev.yaml"
        );
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "{path} is out of date; regenerate it with `cargo run -p storefleet -- crd > {path}`"
        );
    }

    #[test]
    fn crd_is_cluster_scoped_with_columns() {
        let crd = Store::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.plural, "stores");
        assert_eq!(crd.spec.names.singular.as_deref(), Some("store"));
        let columns: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Status", "URL", "Owner", "Plan", "Age"]);
        // API server 1.20 has no CEL: the schema must not carry validation rules.
        assert!(!crd_yaml().contains("x-kubernetes-validations"));
    }

    #[test]
    fn plan_pattern_is_the_plan_names_rule() {
        // The CRD's schema and the API's parser must agree on what a plan name looks like.
        assert!(crd_yaml().contains(crate::plans::PlanName::PATTERN));
    }

    #[test]
    fn instance_defaults_when_unlabelled() {
        let store = Store::new(
            "store-000001",
            StoreSpec {
                name: None,
                engine: Engine::Woocommerce,
                owner: "a".into(),
                plan: None,
                release: None,
                domains: Vec::new(),
                identity_generation: 0,
            },
        );
        assert_eq!(store.instance(), DEFAULT_INSTANCE);
        assert_eq!(store.display_name(), "store-000001");
    }
}

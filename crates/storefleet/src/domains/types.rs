//! The `StoreDomain` custom resource: the claim of one domain by one store. Cluster-scoped and named
//! after the domain (punycode), so the API server itself keeps a domain to one store: creating the
//! object is claiming, and a second create of the same name fails (`AlreadyExists`) whoever tries.
//! Its status is the domain's state, written by the domain controller (`kubectl get storedomains`).
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// The generated type is `StoreDomain` (the kind); the code calls it `DomainClaim` (below), since
// `crd::StoreDomain` is already the entry in a Store's `spec.domains`.
/// Which store holds the domain (the object's name).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "storefleet.dev",
    version = "v1alpha1",
    kind = "StoreDomain",
    singular = "storedomain",
    plural = "storedomains",
    status = "DomainClaimStatus",
    doc = "A store's claim of one of its own domains (the object's name); its status is the domain's state.",
    printcolumn = r#"{"name":"Domain","type":"string","jsonPath":".metadata.name"}"#,
    printcolumn = r#"{"name":"Store","type":"string","jsonPath":".spec.storeId"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DomainClaimSpec {
    /// The store that holds the domain.
    #[schemars(regex(pattern = r"^store-[0-9a-f]{6}$"))]
    pub store_id: String,
}

/// A claim of one domain by one store (kind `StoreDomain`).
pub type DomainClaim = StoreDomain;

/// Where a domain is on its way to serving the store.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, utoipa::ToSchema,
)]
pub enum DomainState {
    /// The name does not resolve to the platform's public address yet.
    WaitingForDns,
    /// DNS is right; cert-manager has not issued the domain's certificate yet.
    CertificatePending,
    /// The route has the name (and, with TLS, its certificate is issued).
    Active,
    /// Cannot become active without someone acting (the message says what).
    Failed,
}

impl DomainState {
    pub const ALL: [DomainState; 4] = [
        DomainState::WaitingForDns,
        DomainState::CertificatePending,
        DomainState::Active,
        DomainState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DomainState::WaitingForDns => "WaitingForDns",
            DomainState::CertificatePending => "CertificatePending",
            DomainState::Active => "Active",
            DomainState::Failed => "Failed",
        }
    }
}

/// schemars puts `null` into the enum of an optional enum, which a 1.20 API server refuses.
fn optional_state_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = DomainState::ALL.iter().map(|s| s.as_str()).collect();
    schemars::json_schema!({ "type": "string", "enum": names, "nullable": true })
}

/// Written by the domain controller only.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainClaimStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_state_schema")]
    pub state: Option<DomainState>,
    /// What a human should know now (what DNS answered, why the certificate is not there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the controller last looked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Time>,
}

impl DomainClaim {
    pub fn state(&self) -> Option<DomainState> {
        self.status.as_ref().and_then(|s| s.state)
    }
}

/// The CRD as YAML, exactly as committed in `charts/storefleet/crds/storedomains.storefleet.dev.yaml`.
pub fn crd_yaml() -> String {
    crate::crd::generated_crd_yaml::<DomainClaim>(
        "`storefleet crd --domains` from crates/storefleet/src/domains/types.rs",
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
            "/../../charts/storefleet/crds/storedomains.storefleet.dev.yaml"
        );
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "{path} is out of date; regenerate it with `cargo run -p storefleet -- crd --domains > {path}`"
        );
        assert!(!crd_yaml().contains("x-kubernetes-validations"));
    }

    #[test]
    fn cluster_scoped_with_domain_store_and_state() {
        let crd = DomainClaim::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.kind, "StoreDomain");
        assert_eq!(crd.spec.names.plural, "storedomains");
        let columns: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Domain", "Store", "State", "Message", "Age"]);
    }
}

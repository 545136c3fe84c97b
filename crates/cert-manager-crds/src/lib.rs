//! **For tests only.** The cert-manager `Certificate` CRD (`cert-manager.io/v1`) for the test
//! cluster (`tests/cert-manager-crds.yaml`, applied by `scripts/testcluster up` and by
//! `crates/storefleet/tests/domains.rs`), so the store chart's per-domain Certificates go through
//! the API server's validation. No cert-manager runs there.
//!
//! Source: the `Certificate` type of cert-manager's API reference (cert-manager.io/docs/reference/
//! api-docs, `cert-manager.io/v1`, as of cert-manager v1.20), written here as Rust types for the
//! fields a Certificate commonly has, the required ones required as upstream (`secretName`,
//! `issuerRef.name`). Not a copy of cert-manager's own CRD file: no crate or Debian package ships
//! it, and its schema is stricter in places (patterns, more fields); what the chart renders uses
//! only fields modelled here, and an unknown field would be refused, not silently accepted.
use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const COMMITTED_PATH: &str = "tests/cert-manager-crds.yaml";
/// The cert-manager release whose API reference the types follow.
pub const MODELLED_VERSION: &str = "v1.20";

/// A desired X.509 certificate, issued into `secretName` by the issuer `issuerRef`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Certificate",
    singular = "certificate",
    plural = "certificates",
    shortname = "cert",
    shortname = "certs",
    namespaced,
    status = "CertificateStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".spec.secretName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// The Secret (same namespace) the key pair and certificate are stored in.
    pub secret_name: String,
    /// The issuer that signs it.
    pub issuer_ref: IssuerRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_addresses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uris: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_addresses: Option<Vec<String>>,
    /// Requested lifetime (a Go duration, e.g. `2160h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_ca: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usages: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct IssuerRef {
    pub name: String,
    /// `Issuer` (default) or `ClusterIssuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `cert-manager.io` (default) or an external issuer's group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKey {
    /// `RSA`, `ECDSA` or `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// `PKCS1` or `PKCS8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i32>,
    /// `Never` or `Always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct SecretTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<CertificateCondition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_private_key_secret_name: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateCondition {
    /// `Ready` or `Issuing`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Certificate::crd()]
}

/// The CRDs as one multi-document YAML file, exactly as committed.
pub fn crds_yaml() -> String {
    let mut out = format!(
        "# cert-manager's Certificate CRD (cert-manager.io/v1, after its {MODELLED_VERSION} API reference), for the test cluster.\n\
         # Generated by `cargo run -p cert-manager-crds > {COMMITTED_PATH}` from crates/cert-manager-crds; do not edit.\n"
    );
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).expect("a CRD serialises"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_are_generated() {
        let path = format!("{}/../../{COMMITTED_PATH}", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == crds_yaml(),
            "{path} is out of date; regenerate it with `cargo run -p cert-manager-crds > {COMMITTED_PATH}`"
        );
        // API server 1.20 (the test cluster) has no CEL.
        assert!(!crds_yaml().contains("x-kubernetes-validations"));
    }

    #[test]
    fn secret_name_and_issuer_are_required() {
        let doc = serde_json::to_value(Certificate::crd()).unwrap();
        let spec = &doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["required"],
            serde_json::json!(["issuerRef", "secretName"])
        );
        assert_eq!(
            spec["properties"]["issuerRef"]["required"],
            serde_json::json!(["name"])
        );
    }
}

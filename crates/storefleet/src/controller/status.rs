//! Writing a store's status (server-side apply on the status subresource) and its conditions.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};

use crate::crd::{Store, StoreCondition, StoreStatus};

pub const FIELD_MANAGER: &str = "storefleet-controller";

pub const NAMESPACE_READY: &str = "NamespaceReady";
pub const RELEASED: &str = "Released";
pub const WORKLOADS_READY: &str = "WorkloadsReady";
pub const SETUP_COMPLETE: &str = "SetupComplete";
pub const READY: &str = "Ready";
/// Whether the store's mail has a way out (controller/mail.rs). Not part of `Ready`: a store without
/// a relay still sells; it only sends no mail.
pub const MAIL_CONFIGURED: &str = "MailConfigured";

/// Replaces the whole status: fields left out are removed, since this manager owns them all.
pub async fn write(api: &Api<Store>, name: &str, status: &StoreStatus) -> kube::Result<Store> {
    let patch = serde_json::json!({
        "apiVersion": Store::api_version(&()),
        "kind": Store::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
}

/// Sets a condition, keeping its transition time when its status did not change.
pub fn set_condition(
    conditions: &mut Vec<StoreCondition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) {
    let status = if ok { "True" } else { "False" };
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(Timestamp::now());
            }
            c.status = status.to_owned();
            c.reason = reason.to_owned();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(StoreCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time: Time(Timestamp::now()),
            observed_generation: generation,
        }),
    }
}

pub fn condition<'a>(status: &'a StoreStatus, type_: &str) -> Option<&'a StoreCondition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_change() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            READY,
            false,
            "Provisioning",
            "started",
            Some(1),
        );
        let first = conditions[0].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        set_condition(
            &mut conditions,
            READY,
            false,
            "WorkloadsNotReady",
            "waiting",
            Some(1),
        );
        assert_eq!(conditions[0].last_transition_time, first);
        assert_eq!(conditions[0].reason, "WorkloadsNotReady");
        set_condition(&mut conditions, READY, true, "Ready", "ok", Some(1));
        assert_ne!(conditions[0].last_transition_time, first);
        assert_eq!(conditions.len(), 1);
    }
}

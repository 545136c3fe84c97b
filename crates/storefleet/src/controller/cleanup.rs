//! Deleting a store, behind the finalizer: phase Deleting, helm uninstall, delete the namespace, wait
//! until it is gone; only then does the finalizer let the Store go (so its id stays taken until then).
use std::sync::Arc;

use super::EventType;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::namespace::{self, Deletion, NamespaceState};
use super::status::{self, READY};
use super::{Context, Error, Result};
use crate::crd::{Phase, Store};
use crate::helm::Uninstalled;
use crate::storage::{Action as AuditAction, AuditEntry};

pub async fn cleanup(store: Arc<Store>, ctx: &Context) -> Result<Action> {
    let id = store.store_id().expect("checked by the caller");
    if store.phase() != Some(Phase::Deleting) {
        let mut st = store.status.clone().unwrap_or_default();
        st.phase = Some(Phase::Deleting);
        st.message = Some("deleting: uninstalling the release and deleting the namespace".into());
        st.ready_at = None;
        status::set_condition(
            &mut st.conditions,
            READY,
            false,
            "Deleting",
            "the store is being deleted",
            store.metadata.generation,
        );
        status::write(&ctx.stores, id.as_str(), &st).await?;
        tracing::info!(store_id = %id, "deleting");
        ctx.event(
            &store,
            EventType::Normal,
            "Deleting",
            "Delete",
            "uninstalling the release and deleting the namespace",
        )
        .await;
    }
    match namespace::observe(&ctx.client, &id).await? {
        NamespaceState::Active => {
            match ctx.helm.uninstall(&id).await {
                Ok(Uninstalled::Done) => {
                    ctx.event(
                        &store,
                        EventType::Normal,
                        "Uninstalled",
                        "Delete",
                        format!("helm release {id} uninstalled"),
                    )
                    .await;
                }
                Ok(Uninstalled::NotFound) => {}
                // Deleting the namespace removes whatever the release made, and its records too.
                Err(e) => {
                    tracing::warn!(store_id = %id, "helm uninstall failed, deleting the namespace anyway: {e}");
                    ctx.event(
                        &store,
                        EventType::Warning,
                        "UninstallFailed",
                        "Delete",
                        e.to_string(),
                    )
                    .await;
                }
            }
            let note = match namespace::delete(&ctx.client, &id).await? {
                Deletion::Started => format!("deleting namespace {id}"),
                Deletion::LeftToGarbageCollector => {
                    format!(
                        "not allowed to delete namespace {id}; waiting for the garbage collector to delete it"
                    )
                }
            };
            ctx.event(
                &store,
                EventType::Normal,
                "NamespaceDeleting",
                "Delete",
                note,
            )
            .await;
            Err(Error::Waiting(format!("namespace {id} is being deleted")))
        }
        NamespaceState::Terminating => {
            Err(Error::Waiting(format!("namespace {id} is being deleted")))
        }
        NamespaceState::Missing => {
            tracing::info!(store_id = %id, "deleted");
            ctx.event(
                &store,
                EventType::Normal,
                "Deleted",
                "Delete",
                format!("namespace {id} is gone; releasing the store"),
            )
            .await;
            ctx.audit(AuditEntry {
                actor: "controller".into(),
                action: AuditAction::Delete,
                store_id: Some(id.to_string()),
                outcome: "completed".into(),
                detail: format!("release and namespace of {} removed", store.name_any()),
                remote_addr: None,
            })
            .await;
            Ok(Action::await_change())
        }
    }
}

//! Deleting a store, behind the finalizer: phase Deleting, helm uninstall, delete the namespace (or
//! leave that to the garbage collector), wait until it is gone; only then does the finalizer let the
//! Store go (so its id stays taken until then).
use std::sync::Arc;

use super::EventType;
use kube::ResourceExt;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;

use super::namespace::{self, Deletion, NamespaceState};
use super::rolebinding;
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
    match namespace::observe(&ctx.client, &id, &store).await? {
        NamespaceState::Active => {
            foreground(&store, ctx).await;
            if let Some(access) = &ctx.store_access {
                // Normally there already; helm needs it to uninstall.
                if let Err(e) = rolebinding::ensure(&ctx.client, &id, access).await {
                    tracing::warn!(store_id = %id, "before helm uninstall: {e}");
                }
            }
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
        // A namespace that is not this store's is left alone: nothing of the store is in it.
        state @ (NamespaceState::Missing | NamespaceState::Foreign) => {
            // Only now, with the routes gone: another store may claim the domains next.
            let freed = crate::domains::release_store(&ctx.client, id.as_str()).await?;
            if !freed.is_empty() {
                tracing::info!(store_id = %id, domains = ?freed, "domains released");
            }
            tracing::info!(store_id = %id, "deleted");
            let note = if state == NamespaceState::Foreign {
                format!(
                    "namespace {id} is not this store's and was left alone; releasing the store"
                )
            } else {
                format!("namespace {id} is gone; releasing the store")
            };
            ctx.event(&store, EventType::Normal, "Deleted", "Delete", note)
                .await;
            ctx.audit(AuditEntry {
                actor: "controller".into(),
                action: AuditAction::Delete,
                store_id: Some(id.to_string()),
                store_owner: Some(store.spec.owner.clone()),
                outcome: "completed".into(),
                detail: format!("release and namespace of {} removed", store.name_any()),
                remote_addr: None,
            })
            .await;
            Ok(Action::await_change())
        }
    }
}

/// Makes the deletion of the Store foreground, as the API does, when it was not (`kubectl delete store`
/// defaults to background): then the garbage collector deletes the namespace the Store owns, which the
/// control plane itself may not be allowed to. Deleting a Store already being deleted only adds the
/// `foregroundDeletion` finalizer. Best effort: the namespace deletion below may work anyway.
async fn foreground(store: &Store, ctx: &Context) {
    if store.finalizers().iter().any(|f| f == "foregroundDeletion") {
        return;
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        // This Store, not one created since under the same name.
        preconditions: Some(Preconditions {
            uid: store.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    if let Err(e) = ctx.stores.delete(&store.name_any(), &params).await {
        tracing::warn!(store_id = %store.name_any(), "cannot make the deletion foreground: {e}");
    }
}

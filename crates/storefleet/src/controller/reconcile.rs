//! Provisioning a store: look at what exists, pick the next single action, do it, look again.
//! Every action is idempotent, so a restart anywhere in here just picks up where things stand.
use std::sync::Arc;
use std::time::Duration;

use super::EventType;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::namespace::{self, NamespaceState};
use super::readiness;
use super::release;
use super::status::{self, NAMESPACE_READY, READY, RELEASED, SETUP_COMPLETE, WORKLOADS_READY};
use super::{Context, Result};
use crate::crd::{Phase, Store, StoreStatus};
use crate::domain::StoreId;
use crate::helm::{ReleaseState, truncate_chars};
use crate::storage::{Action as AuditAction, AuditEntry};

/// What provisioning sees when it looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub namespace: NamespaceState,
    /// `None` when the release is known to be installed for the current generation (helm not asked).
    pub release: Option<ReleaseState>,
}

/// The one thing to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextAction {
    CreateNamespace,
    /// A namespace of that name is still being deleted.
    WaitForNamespace,
    /// A killed control plane left the release pending: remove the stale record first.
    Unlock,
    /// `helm upgrade --install`: the release is missing, failed, or has older values.
    Install,
    CheckReadiness,
}

pub fn next_action(observed: &Observed) -> NextAction {
    match (observed.namespace, &observed.release) {
        (NamespaceState::Missing, _) => NextAction::CreateNamespace,
        (NamespaceState::Terminating, _) => NextAction::WaitForNamespace,
        (NamespaceState::Active, None) => NextAction::CheckReadiness,
        (NamespaceState::Active, Some(ReleaseState::Pending(_) | ReleaseState::Uninstalling)) => {
            NextAction::Unlock
        }
        (NamespaceState::Active, Some(_)) => NextAction::Install,
    }
}

/// A hand-written Store whose name is not a store id: refuse it visibly, create nothing.
pub async fn reject_bad_name(store: &Store, ctx: &Context) -> Result<Action> {
    if store.phase() != Some(Phase::Failed) {
        let message = format!(
            "`{}` is not a store id: the name must be `store-` and 6 lowercase hex digits",
            store.name_any()
        );
        let mut st = StoreStatus {
            phase: Some(Phase::Failed),
            message: Some(message.clone()),
            ..Default::default()
        };
        status::set_condition(
            &mut st.conditions,
            READY,
            false,
            "InvalidName",
            &message,
            store.metadata.generation,
        );
        status::write(&ctx.stores, &store.name_any(), &st).await?;
        ctx.event(
            store,
            EventType::Warning,
            "InvalidName",
            "Validate",
            message,
        )
        .await;
    }
    Ok(Action::await_change())
}

pub async fn apply(store: Arc<Store>, ctx: &Context) -> Result<Action> {
    let id = store.store_id().expect("checked by the caller");
    let generation = store.metadata.generation;
    let mut st = store.status.clone().unwrap_or_default();
    match st.phase {
        Some(Phase::Provisioning) if st.provisioning_started_at.is_some() => {}
        Some(Phase::Ready | Phase::Failed) if st.observed_generation == generation => {
            return Ok(Action::await_change());
        }
        // New store, a changed spec after Ready/Failed, or a status someone else wrote: a new attempt.
        _ => {
            st = start_attempt(&store, &id, st, ctx).await?;
        }
    }
    provision(&store, &id, st, ctx).await
}

async fn start_attempt(
    store: &Store,
    id: &StoreId,
    previous: StoreStatus,
    ctx: &Context,
) -> Result<StoreStatus> {
    let generation = store.metadata.generation;
    let mut st = StoreStatus {
        phase: Some(Phase::Provisioning),
        conditions: previous.conditions,
        url: Some(ctx.urls.url(id)),
        message: Some("provisioning started".into()),
        ready_at: None,
        provisioning_started_at: Some(Time(Timestamp::now())),
        observed_generation: generation,
        released_generation: previous.released_generation,
    };
    status::set_condition(
        &mut st.conditions,
        READY,
        false,
        "Provisioning",
        "provisioning started",
        generation,
    );
    status::write(&ctx.stores, id.as_str(), &st).await?;
    tracing::info!(store_id = %id, "provisioning started");
    ctx.event(
        store,
        EventType::Normal,
        "Provisioning",
        "Provision",
        "creating the namespace and installing the store chart",
    )
    .await;
    Ok(st)
}

fn deadline(st: &StoreStatus, ctx: &Context) -> Timestamp {
    let started = st
        .provisioning_started_at
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    started + SignedDuration::try_from(ctx.provision_timeout).unwrap_or(SignedDuration::MAX)
}

fn until(deadline: Timestamp) -> Duration {
    let left = deadline.duration_since(Timestamp::now());
    Duration::try_from(left).unwrap_or(Duration::ZERO)
}

async fn provision(
    store: &Store,
    id: &StoreId,
    mut st: StoreStatus,
    ctx: &Context,
) -> Result<Action> {
    let generation = store.metadata.generation;
    // A spec change while provisioning: this attempt now provisions the new generation.
    st.observed_generation = generation;
    let deadline = deadline(&st, ctx);
    // Each pass does one action; a handful of passes gets a new store from nothing to "waiting".
    for _ in 0..6 {
        if Timestamp::now() >= deadline {
            return fail(store, id, st, ctx).await;
        }
        let ns = namespace::observe(&ctx.client, id).await?;
        let release = if ns == NamespaceState::Active && st.released_generation != generation {
            match ctx.helm.release_state(id).await {
                Ok(state) => Some(state),
                Err(e) => {
                    return helm_failed(
                        store,
                        id,
                        st,
                        ctx,
                        "ReleaseUnknown",
                        e.to_string(),
                        deadline,
                    )
                    .await;
                }
            }
        } else {
            None
        };
        if ns == NamespaceState::Active {
            // Also after a restart that lost the write which would have said so.
            status::set_condition(
                &mut st.conditions,
                NAMESPACE_READY,
                true,
                "Created",
                format!("namespace {id} exists"),
                generation,
            );
        }
        let observed = Observed {
            namespace: ns,
            release,
        };
        tracing::debug!(store_id = %id, ?observed, "observed");
        match next_action(&observed) {
            NextAction::CreateNamespace => {
                namespace::ensure(&ctx.client, id, store, &ctx.instance).await?;
                status::set_condition(
                    &mut st.conditions,
                    NAMESPACE_READY,
                    true,
                    "Created",
                    format!("namespace {id} exists"),
                    generation,
                );
                status::write(&ctx.stores, id.as_str(), &st).await?;
                tracing::info!(store_id = %id, "namespace created");
                ctx.event(
                    store,
                    EventType::Normal,
                    "NamespaceCreated",
                    "CreateNamespace",
                    format!("created namespace {id}"),
                )
                .await;
            }
            NextAction::WaitForNamespace => {
                let message = format!("namespace {id} is still being deleted");
                status::set_condition(
                    &mut st.conditions,
                    NAMESPACE_READY,
                    false,
                    "Terminating",
                    &message,
                    generation,
                );
                st.message = Some(message.clone());
                status::write(&ctx.stores, id.as_str(), &st).await?;
                return Ok(Action::requeue(
                    Duration::from_secs(3)
                        .min(until(deadline))
                        .max(Duration::from_millis(100)),
                ));
            }
            NextAction::Unlock => {
                let removed = release::unlock(&ctx.client, id).await?;
                let message = format!(
                    "release {id} was left mid-operation (a control plane stopped during helm); removed the stale record {}",
                    removed.join(", ")
                );
                tracing::warn!(store_id = %id, "{message}");
                status::set_condition(
                    &mut st.conditions,
                    RELEASED,
                    false,
                    "StaleLockRemoved",
                    &message,
                    generation,
                );
                status::write(&ctx.stores, id.as_str(), &st).await?;
                ctx.event(
                    store,
                    EventType::Warning,
                    "ReleaseUnlocked",
                    "Unlock",
                    message,
                )
                .await;
            }
            NextAction::Install => {
                let values = release::values(store, id, &ctx.urls);
                tracing::info!(store_id = %id, "helm upgrade --install");
                if let Err(e) = ctx.helm.upgrade_install(id, &values).await {
                    return helm_failed(store, id, st, ctx, "HelmFailed", e.to_string(), deadline)
                        .await;
                }
                ctx.reset_backoff(id.as_str());
                st.released_generation = generation;
                status::set_condition(
                    &mut st.conditions,
                    RELEASED,
                    true,
                    "Installed",
                    format!("release {id} is deployed"),
                    generation,
                );
                st.message = Some("release installed; waiting for the workloads".into());
                status::write(&ctx.stores, id.as_str(), &st).await?;
                ctx.event(
                    store,
                    EventType::Normal,
                    "Released",
                    "Install",
                    format!("helm release {id} deployed"),
                )
                .await;
            }
            NextAction::CheckReadiness => {
                return check_readiness(store, id, st, ctx, deadline).await;
            }
        }
    }
    Ok(Action::requeue(Duration::from_secs(1)))
}

async fn check_readiness(
    store: &Store,
    id: &StoreId,
    mut st: StoreStatus,
    ctx: &Context,
    deadline: Timestamp,
) -> Result<Action> {
    let generation = store.metadata.generation;
    let r = readiness::evaluate(&ctx.client, id).await?;
    let before = st.clone();
    status::set_condition(
        &mut st.conditions,
        WORKLOADS_READY,
        r.workloads.ok,
        &r.workloads.reason,
        &r.workloads.message,
        generation,
    );
    status::set_condition(
        &mut st.conditions,
        SETUP_COMPLETE,
        r.setup.ok,
        &r.setup.reason,
        &r.setup.message,
        generation,
    );
    if r.is_ready() {
        st.phase = Some(Phase::Ready);
        st.ready_at = Some(Time(Timestamp::now()));
        st.message = Some("the store is ready".into());
        status::set_condition(
            &mut st.conditions,
            READY,
            true,
            "Ready",
            "every workload is ready and setup succeeded",
            generation,
        );
        status::write(&ctx.stores, id.as_str(), &st).await?;
        ctx.reset_backoff(id.as_str());
        tracing::info!(store_id = %id, "store is ready");
        ctx.event(
            store,
            EventType::Normal,
            "Ready",
            "Provision",
            format!("store is ready at {}", ctx.urls.url(id)),
        )
        .await;
        ctx.audit(AuditEntry {
            actor: "controller".into(),
            action: AuditAction::Ready,
            store_id: Some(id.to_string()),
            outcome: "ready".into(),
            detail: format!("ready at {}", ctx.urls.url(id)),
            remote_addr: None,
        })
        .await;
        return Ok(Action::await_change());
    }
    let summary = r.summary();
    // Say early what will fail the store at the deadline, so nobody has to wait 10 minutes to learn it.
    st.message = Some(match readiness::diagnose(&ctx.client, id).await? {
        Some(d) => format!("waiting: {summary} ({})", d.message),
        None => format!("waiting: {summary}"),
    });
    status::set_condition(
        &mut st.conditions,
        READY,
        false,
        "WorkloadsNotReady",
        &summary,
        generation,
    );
    if st != before {
        status::write(&ctx.stores, id.as_str(), &st).await?;
    }
    // Watch events wake us when something changes; the requeue makes the deadline fire regardless.
    Ok(Action::requeue(
        until(deadline) + Duration::from_millis(500),
    ))
}

async fn helm_failed(
    store: &Store,
    id: &StoreId,
    mut st: StoreStatus,
    ctx: &Context,
    reason: &str,
    message: String,
    deadline: Timestamp,
) -> Result<Action> {
    let generation = store.metadata.generation;
    let retry = ctx
        .helm_backoff(id.as_str())
        .min(until(deadline) + Duration::from_millis(500));
    tracing::warn!(store_id = %id, retry_in = ?retry, "{message}");
    status::set_condition(
        &mut st.conditions,
        RELEASED,
        false,
        reason,
        &message,
        generation,
    );
    st.message = Some(format!(
        "helm failed, retrying in {}s: {}",
        retry.as_secs(),
        truncate_chars(&message, 500)
    ));
    status::write(&ctx.stores, id.as_str(), &st).await?;
    ctx.event(store, EventType::Warning, reason, "Install", message)
        .await;
    Ok(Action::requeue(retry))
}

/// The deadline passed: Failed, with the most telling reason we can find.
async fn fail(store: &Store, id: &StoreId, mut st: StoreStatus, ctx: &Context) -> Result<Action> {
    let generation = store.metadata.generation;
    let timeout = humanise(ctx.provision_timeout);
    let helm_error = status::condition(&st, RELEASED)
        .filter(|c| c.status == "False" && c.reason != "StaleLockRemoved")
        .cloned();
    let (reason, detail) = if let Some(c) = helm_error {
        (
            "HelmFailed".to_owned(),
            format!("helm could not install the release: {}", c.message),
        )
    } else if namespace::observe(&ctx.client, id).await? != NamespaceState::Active {
        (
            "NamespaceNotReady".to_owned(),
            format!("namespace {id} could not be created"),
        )
    } else if let Some(d) = readiness::diagnose(&ctx.client, id).await? {
        (d.reason, d.message)
    } else {
        let r = readiness::evaluate(&ctx.client, id).await?;
        if r.is_ready() {
            // Became ready right at the deadline: take it.
            return check_readiness(store, id, st, ctx, Timestamp::now()).await;
        }
        let reason = if r.setup.reason == "SetupFailed" {
            "SetupFailed"
        } else {
            "ProvisioningTimeout"
        };
        (reason.to_owned(), r.summary())
    };
    let message = format!("not ready after {timeout}: {detail}");
    st.phase = Some(Phase::Failed);
    st.message = Some(message.clone());
    status::set_condition(
        &mut st.conditions,
        READY,
        false,
        &reason,
        &message,
        generation,
    );
    status::write(&ctx.stores, id.as_str(), &st).await?;
    ctx.reset_backoff(id.as_str());
    tracing::warn!(store_id = %id, reason, "store failed: {message}");
    ctx.event(store, EventType::Warning, &reason, "Provision", &message)
        .await;
    ctx.audit(AuditEntry {
        actor: "controller".into(),
        action: AuditAction::Failed,
        store_id: Some(id.to_string()),
        outcome: reason,
        detail: message,
        remote_addr: None,
    })
    .await;
    Ok(Action::await_change())
}

fn humanise(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(namespace: NamespaceState, release: Option<ReleaseState>) -> Observed {
        Observed { namespace, release }
    }

    #[test]
    fn picks_the_next_action() {
        use NamespaceState::*;
        assert_eq!(
            next_action(&observed(Missing, None)),
            NextAction::CreateNamespace
        );
        assert_eq!(
            next_action(&observed(Terminating, Some(ReleaseState::Missing))),
            NextAction::WaitForNamespace
        );
        assert_eq!(
            next_action(&observed(Active, Some(ReleaseState::Missing))),
            NextAction::Install
        );
        assert_eq!(
            next_action(&observed(Active, Some(ReleaseState::Failed))),
            NextAction::Install
        );
        assert_eq!(
            next_action(&observed(Active, Some(ReleaseState::Deployed))),
            NextAction::Install
        );
        assert_eq!(
            next_action(&observed(
                Active,
                Some(ReleaseState::Pending("pending-install".into()))
            )),
            NextAction::Unlock
        );
        assert_eq!(
            next_action(&observed(Active, Some(ReleaseState::Uninstalling))),
            NextAction::Unlock
        );
        assert_eq!(
            next_action(&observed(Active, None)),
            NextAction::CheckReadiness
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(humanise(Duration::from_secs(600)), "10m");
        assert_eq!(humanise(Duration::from_secs(20)), "20s");
        assert_eq!(humanise(Duration::from_secs(90)), "1m30s");
    }
}

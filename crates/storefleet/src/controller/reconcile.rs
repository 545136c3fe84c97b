//! Provisioning a store: look at what exists, pick the next single action, do it, look again.
//! Every action is idempotent, so a restart anywhere in here just picks up where things stand.
use std::sync::Arc;
use std::time::Duration;

use super::EventType;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::mail;
use super::namespace::{self, NamespaceState};
use super::readiness;
use super::release;
use super::rolebinding;
use super::status::{self, NAMESPACE_READY, READY, RELEASED, SETUP_COMPLETE, WORKLOADS_READY};
use super::{Context, Result};
use crate::crd::{Phase, Store, StoreStatus};
use crate::domain::StoreId;
use crate::helm::{HelmError, ReleaseState, truncate_chars};
use crate::plans::resize::{self, PrepareError};
use crate::storage::{Action as AuditAction, AuditEntry};

/// How long after creating a store namespace (and its RoleBinding) helm being refused by RBAC is
/// taken for the API server's authorizer not having seen the RoleBinding yet, not for a real denial.
const RBAC_GRACE: SignedDuration = SignedDuration::from_secs(30);
const ROLE_BINDING_FAILED: &str = "RoleBindingFailed";
/// The namespace of a Ready store went away (deleted by hand): the store heals by provisioning again.
const NAMESPACE_LOST: &str = "NamespaceLost";
const RECREATED: &str = "Recreated";

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
    /// A namespace of that name exists and is not this store's: never install into it.
    RefuseNamespace,
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
        (NamespaceState::Foreign, _) => NextAction::RefuseNamespace,
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
        // A Ready store whose namespace went away (the namespace watch wakes us): self-heal.
        Some(Phase::Ready) if st.observed_generation == generation => {
            match namespace::observe(&ctx.client, &id, &store).await? {
                NamespaceState::Active => return Ok(Action::await_change()),
                lost => st = namespace_lost(&store, &id, st, lost, ctx).await?,
            }
        }
        Some(Phase::Failed) if st.observed_generation == generation => {
            return Ok(Action::await_change());
        }
        // A restore owns the store (backups/restores): it stops and starts WordPress and gives the
        // store back Ready; a spec changed meanwhile is released after that.
        Some(Phase::Restoring) => return Ok(Action::await_change()),
        // New store, a changed spec after Ready/Failed, or a status someone else wrote: a new attempt.
        _ => {
            st =
                start_attempt(&store, &id, st, ctx, "Provisioning", "provisioning started").await?;
        }
    }
    provision(&store, &id, st, ctx).await
}

/// The namespace of a Ready store is gone or going, and with it the release, the workloads and their
/// data. What a platform engineer expects is the store back: a new attempt recreates the namespace and
/// reinstalls the release (an empty store), said in a Warning Event and in the conditions.
async fn namespace_lost(
    store: &Store,
    id: &StoreId,
    mut previous: StoreStatus,
    state: NamespaceState,
    ctx: &Context,
) -> Result<StoreStatus> {
    let what = match state {
        NamespaceState::Foreign => "was replaced by one that is not this store's",
        NamespaceState::Terminating => "is being deleted",
        NamespaceState::Missing | NamespaceState::Active => "is gone",
    };
    let message = format!(
        "namespace {id} {what} although the store was Ready (deleted outside Storefleet; the store's \
         data went with it): recreating the namespace and reinstalling the release"
    );
    tracing::warn!(store_id = %id, "{message}");
    ctx.event(
        store,
        EventType::Warning,
        NAMESPACE_LOST,
        "Heal",
        message.as_str(),
    )
    .await;
    // Whatever was released lived in that namespace.
    previous.released_generation = None;
    status::set_condition(
        &mut previous.conditions,
        NAMESPACE_READY,
        false,
        NAMESPACE_LOST,
        &message,
        store.metadata.generation,
    );
    start_attempt(store, id, previous, ctx, NAMESPACE_LOST, &message).await
}

async fn start_attempt(
    store: &Store,
    id: &StoreId,
    previous: StoreStatus,
    ctx: &Context,
    reason: &str,
    message: &str,
) -> Result<StoreStatus> {
    let generation = store.metadata.generation;
    let mut st = StoreStatus {
        phase: Some(Phase::Provisioning),
        conditions: previous.conditions,
        url: Some(ctx.urls.url(id)),
        message: Some(message.into()),
        ready_at: None,
        provisioning_started_at: Some(Time(Timestamp::now())),
        observed_generation: generation,
        released_generation: previous.released_generation,
    };
    status::set_condition(
        &mut st.conditions,
        READY,
        false,
        reason,
        message,
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

/// When to try a failed step again: the store's backoff, but not past the provisioning deadline
/// (just after it, so the timeout is what the next attempt reports).
fn retry_in(ctx: &Context, id: &StoreId, deadline: Timestamp) -> Duration {
    ctx.helm_backoff(id.as_str())
        .min(until(deadline) + Duration::from_millis(500))
}

/// Whether this generation is already released, as the API server has it now. The Store handed to
/// a reconcile comes from the watch's cache, which can be behind this controller's own last status
/// write: after an API-server outage the watch relists late, and each reconcile meanwhile took the
/// stale `released_generation` for "not released" and upgraded the release again (nine helm
/// revisions in ten seconds, seen in faults_outage's log). One GET before deciding on helm, which
/// is much dearer than a GET, and which a rollout must never repeat for the same target.
async fn released_generation_now(
    ctx: &Context,
    id: &StoreId,
    generation: Option<i64>,
) -> Result<Option<i64>> {
    let fresh = ctx.stores.get_opt(id.as_str()).await?;
    Ok(fresh
        .filter(|s| s.metadata.generation == generation)
        .and_then(|s| s.status)
        .and_then(|st| st.released_generation)
        .filter(|released| Some(*released) == generation))
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
    if st.released_generation != generation {
        st.released_generation = released_generation_now(ctx, id, generation)
            .await?
            .or(st.released_generation);
    }
    let deadline = deadline(&st, ctx);
    // Once per reconcile, before the first helm call into the namespace: also after a restart
    // between creating the namespace and binding.
    let mut bound = ctx.store_access.is_none();
    // Each pass does one action; a handful of passes gets a new store from nothing to "waiting".
    for _ in 0..6 {
        if Timestamp::now() >= deadline {
            return fail(store, id, st, ctx).await;
        }
        let ns = namespace::observe(&ctx.client, id, store).await?;
        if ns == NamespaceState::Active {
            // Also after a restart that lost the write which would have said so.
            namespace_ready(&mut st, id, generation);
        }
        let needs_helm = ns == NamespaceState::Active && st.released_generation != generation;
        if needs_helm && !bound {
            if let Some(action) = bind(store, id, &mut st, ctx, deadline).await? {
                return Ok(action);
            }
            bound = true;
        }
        let release = if needs_helm {
            match ctx.helm.release_state(id).await {
                Ok(state) => Some(state),
                Err(e) => {
                    return helm_failed(store, id, st, ctx, "ReleaseUnknown", &e, deadline).await;
                }
            }
        } else {
            None
        };
        let observed = Observed {
            namespace: ns,
            release,
        };
        tracing::debug!(store_id = %id, ?observed, "observed");
        match next_action(&observed) {
            NextAction::CreateNamespace => {
                if namespace::ensure(&ctx.client, id, store, &ctx.instance).await?
                    != NamespaceState::Active
                {
                    // Created by someone else meanwhile, or being deleted: the next pass sees which.
                    continue;
                }
                // A new namespace holds no release (one installed earlier went with the old one).
                st.released_generation = None;
                namespace_ready(&mut st, id, generation);
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
            NextAction::RefuseNamespace => {
                let message = NamespaceState::foreign_message(id);
                status::set_condition(
                    &mut st.conditions,
                    NAMESPACE_READY,
                    false,
                    "NamespaceTaken",
                    &message,
                    generation,
                );
                return fail_with(store, id, st, ctx, "NamespaceTaken".into(), message).await;
            }
            NextAction::WaitForNamespace => {
                let message = format!("namespace {id} is still being deleted");
                if !namespace_was_lost(&st) {
                    status::set_condition(
                        &mut st.conditions,
                        NAMESPACE_READY,
                        false,
                        "Terminating",
                        &message,
                        generation,
                    );
                }
                st.message = Some(message.clone());
                status::write(&ctx.stores, id.as_str(), &st).await?;
                return Ok(Action::requeue(
                    Duration::from_secs(3)
                        .min(until(deadline))
                        .max(Duration::from_millis(100)),
                ));
            }
            NextAction::Unlock => {
                let started = std::time::Instant::now();
                let removed = release::unlock(&ctx.client, id).await;
                ctx.metrics.helm_operation(
                    "unlock",
                    crate::metrics::outcome(&removed),
                    started.elapsed(),
                );
                let removed = removed?;
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
                let mail = mail::prepare(ctx, id, &mut st.conditions, generation).await?;
                // The plan's sizes, never below the volumes that exist (plans/resize.rs).
                let plan = match resize::prepare(&ctx.client, &ctx.plans, store, id).await {
                    Ok(plan) => plan,
                    Err(PrepareError::Unknown(unknown)) => {
                        let message = unknown.to_string();
                        status::set_condition(
                            &mut st.conditions,
                            RELEASED,
                            false,
                            "UnknownPlan",
                            &message,
                            generation,
                        );
                        return fail_with(store, id, st, ctx, "UnknownPlan".into(), message).await;
                    }
                    Err(PrepareError::Kube(e)) => return Err(e.into()),
                };
                let values = release::values(
                    store,
                    id,
                    &ctx.urls,
                    mail,
                    ctx.backup_egress.as_ref(),
                    &plan,
                );
                tracing::info!(store_id = %id, "helm upgrade --install");
                let upgrade = !matches!(observed.release, Some(ReleaseState::Missing) | None);
                if let Err(e) = ctx
                    .helm
                    .upgrade_install(
                        id,
                        &values,
                        store.spec.release.as_ref().map(|r| &r.values),
                        upgrade,
                    )
                    .await
                {
                    return helm_failed(store, id, st, ctx, "HelmFailed", &e, deadline).await;
                }
                // After helm, which has raised the quota. Not released until this is done: a failure
                // retries the (idempotent) upgrade and the growth together.
                match resize::grow(&ctx.client, id, &plan).await {
                    Ok(Some((from, to))) => {
                        let claim =
                            crate::plans::volumes::Volume::DatabaseData.claim_name(id.as_str());
                        tracing::info!(store_id = %id, "grew PVC {claim} from {from} to {to}");
                        ctx.event(
                            store,
                            EventType::Normal,
                            "VolumeResized",
                            "Resize",
                            format!("grew PVC {claim} from {from} to {to} (plan {})", plan.plan),
                        )
                        .await;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let message = format!("growing the MariaDB volume: {e}");
                        return retry_later(
                            store,
                            id,
                            st,
                            ctx,
                            ("resizing the volume failed", "VolumeResizeFailed"),
                            message,
                            deadline,
                        )
                        .await;
                    }
                }
                ctx.reset_backoff(id.as_str());
                st.released_generation = generation;
                // An upgrade follows a change of the store (`PATCH /stores/{id}`): say so.
                let (reason, action, done) = if upgrade {
                    ("Upgraded", "Upgrade", "upgraded")
                } else {
                    ("Installed", "Install", "installed")
                };
                status::set_condition(
                    &mut st.conditions,
                    RELEASED,
                    true,
                    reason,
                    format!(
                        "release {id} is deployed (generation {}, plan {})",
                        generation.unwrap_or_default(),
                        plan.plan
                    ),
                    generation,
                );
                st.message = Some(format!("release {done}; waiting for the workloads"));
                status::write(&ctx.stores, id.as_str(), &st).await?;
                ctx.event(
                    store,
                    EventType::Normal,
                    "Released",
                    action,
                    format!("helm release {id} {done} (plan {})", plan.plan),
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
        // Audited before the status says so: whoever sees the outcome finds it in the audit log (a
        // status write that fails and is retried may record it twice).
        ctx.audit(AuditEntry {
            actor: "controller".into(),
            action: AuditAction::Ready,
            store_id: Some(id.to_string()),
            store_owner: Some(store.spec.owner.clone()),
            outcome: "ready".into(),
            detail: format!("ready at {}", ctx.urls.url(id)),
            remote_addr: None,
        })
        .await;
        status::write(&ctx.stores, id.as_str(), &st).await?;
        ctx.reset_backoff(id.as_str());
        // Once per store, from request to its first Ready: a later spec change provisions again
        // (and clears `ready_at`), but that is not how long the store took to come up.
        if before.ready_at.is_none()
            && generation.unwrap_or(1) <= 1
            && status::condition(&st, NAMESPACE_READY).is_none_or(|c| c.reason != RECREATED)
            && let Some(Time(created)) = &store.metadata.creation_timestamp
        {
            let elapsed = Timestamp::now().duration_since(*created);
            ctx.metrics
                .store_ready(Duration::try_from(elapsed).unwrap_or_default());
        }
        tracing::info!(store_id = %id, "store is ready");
        ctx.event(
            store,
            EventType::Normal,
            "Ready",
            "Provision",
            format!("store is ready at {}", ctx.urls.url(id)),
        )
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
    // Watch events wake us when something changes (without workload watches, the poll does); the
    // requeue makes the deadline fire regardless.
    let at_deadline = until(deadline) + Duration::from_millis(500);
    Ok(Action::requeue(
        ctx.readiness_poll()
            .map_or(at_deadline, |poll| poll.min(at_deadline)),
    ))
}

/// NamespaceReady=True, once: `Recreated` when the namespace of a Ready store had been lost, so that
/// stays visible after the store is Ready again.
fn namespace_ready(st: &mut StoreStatus, id: &StoreId, generation: Option<i64>) {
    if status::condition(st, NAMESPACE_READY).is_some_and(|c| c.status == "True") {
        return;
    }
    let (reason, message) = if namespace_was_lost(st) {
        (
            RECREATED,
            format!("namespace {id} was recreated after it was deleted outside Storefleet"),
        )
    } else {
        ("Created", format!("namespace {id} exists"))
    };
    status::set_condition(
        &mut st.conditions,
        NAMESPACE_READY,
        true,
        reason,
        message,
        generation,
    );
}

fn namespace_was_lost(st: &StoreStatus) -> bool {
    status::condition(st, NAMESPACE_READY).is_some_and(|c| c.reason == NAMESPACE_LOST)
}

/// Binds the store role in the store namespace (and the API's role, when the API has an identity of
/// its own). `Some`: it was refused, retry then (the reason is in the status, and becomes the store's
/// failure at the deadline).
async fn bind(
    store: &Store,
    id: &StoreId,
    st: &mut StoreStatus,
    ctx: &Context,
    deadline: Timestamp,
) -> Result<Option<Action>> {
    let Some(access) = &ctx.store_access else {
        return Ok(None);
    };
    let Err(refused) = rolebinding::ensure(&ctx.client, id, access).await else {
        tracing::debug!(store_id = %id, role = %access.role, "store role bound");
        return Ok(None);
    };
    let message = refused.to_string();
    let retry = retry_in(ctx, id, deadline);
    tracing::warn!(store_id = %id, retry_in = ?retry, "{message}");
    status::set_condition(
        &mut st.conditions,
        NAMESPACE_READY,
        false,
        ROLE_BINDING_FAILED,
        &message,
        store.metadata.generation,
    );
    st.message = Some(format!(
        "retrying in {}s: {}",
        retry.as_secs(),
        truncate_chars(&message, 500)
    ));
    status::write(&ctx.stores, id.as_str(), st).await?;
    ctx.event(
        store,
        EventType::Warning,
        ROLE_BINDING_FAILED,
        "Bind",
        message,
    )
    .await;
    Ok(Some(Action::requeue(retry)))
}

/// Helm refused by RBAC right after the store RoleBinding was made: the authorizer learns of new
/// RoleBindings through a watch, a moment later.
fn access_is_new(st: &StoreStatus, ctx: &Context) -> bool {
    ctx.store_access.is_some()
        && status::condition(st, NAMESPACE_READY).is_some_and(|c| {
            c.status == "True"
                && Timestamp::now().duration_since(c.last_transition_time.0) < RBAC_GRACE
        })
}

async fn helm_failed(
    store: &Store,
    id: &StoreId,
    mut st: StoreStatus,
    ctx: &Context,
    reason: &str,
    error: &HelmError,
    deadline: Timestamp,
) -> Result<Action> {
    if error.is_rbac_denial() && access_is_new(&st, ctx) {
        tracing::info!(store_id = %id, "helm is not allowed in the new namespace yet: {error}");
        let message = format!(
            "waiting for RoleBinding {} in {id} to take effect",
            rolebinding::NAME
        );
        if st.message.as_deref() != Some(message.as_str()) {
            st.message = Some(message);
            status::write(&ctx.stores, id.as_str(), &st).await?;
        }
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    ctx.metrics.reconcile_error("helm");
    let message = error.to_string();
    retry_later(
        store,
        id,
        st,
        ctx,
        ("helm failed", reason),
        message,
        deadline,
    )
    .await
}

/// A step of the release failed: Released=False with why, an Event, and another try with backoff
/// (until the deadline fails the store).
async fn retry_later(
    store: &Store,
    id: &StoreId,
    mut st: StoreStatus,
    ctx: &Context,
    (what, reason): (&str, &str),
    message: String,
    deadline: Timestamp,
) -> Result<Action> {
    let generation = store.metadata.generation;
    let retry = retry_in(ctx, id, deadline);
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
        "{what}, retrying in {}s: {}",
        retry.as_secs(),
        truncate_chars(&message, 500)
    ));
    status::write(&ctx.stores, id.as_str(), &st).await?;
    ctx.event(store, EventType::Warning, reason, "Install", message)
        .await;
    Ok(Action::requeue(retry))
}

/// The deadline passed: Failed, with the most telling reason we can find.
async fn fail(store: &Store, id: &StoreId, st: StoreStatus, ctx: &Context) -> Result<Action> {
    let timeout = humanise(ctx.provision_timeout);
    let helm_error = status::condition(&st, RELEASED)
        .filter(|c| c.status == "False" && c.reason != "StaleLockRemoved")
        .cloned();
    let bind_error = status::condition(&st, NAMESPACE_READY)
        .filter(|c| c.status == "False" && c.reason == ROLE_BINDING_FAILED)
        .cloned();
    let namespace = namespace::observe(&ctx.client, id, store).await?;
    let (reason, detail) = if let Some(c) = bind_error {
        (ROLE_BINDING_FAILED.to_owned(), c.message)
    } else if let Some(c) = helm_error {
        if c.reason == "VolumeResizeFailed" {
            (c.reason, c.message)
        } else {
            (
                "HelmFailed".to_owned(),
                format!("helm could not install the release: {}", c.message),
            )
        }
    } else if namespace == NamespaceState::Foreign {
        (
            "NamespaceTaken".to_owned(),
            NamespaceState::foreign_message(id),
        )
    } else if namespace != NamespaceState::Active {
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
    fail_with(store, id, st, ctx, reason, message).await
}

/// Failed (terminal until the spec changes): status, Event, audit entry.
async fn fail_with(
    store: &Store,
    id: &StoreId,
    mut st: StoreStatus,
    ctx: &Context,
    reason: String,
    message: String,
) -> Result<Action> {
    let generation = store.metadata.generation;
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
    // Audited before the status says so (see check_readiness).
    ctx.audit(AuditEntry {
        actor: "controller".into(),
        action: AuditAction::Failed,
        store_id: Some(id.to_string()),
        store_owner: Some(store.spec.owner.clone()),
        outcome: reason.clone(),
        detail: message.clone(),
        remote_addr: None,
    })
    .await;
    status::write(&ctx.stores, id.as_str(), &st).await?;
    ctx.reset_backoff(id.as_str());
    tracing::warn!(store_id = %id, reason, "store failed: {message}");
    ctx.event(store, EventType::Warning, &reason, "Provision", &message)
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
            next_action(&observed(Foreign, None)),
            NextAction::RefuseNamespace
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

//! The rollout controller: each pass looks at the oldest unfinished rollout of this instance and
//! does what its stores' steps say. Every step is written to the rollout's status before it is
//! taken (and after), so a control plane killed anywhere resumes from there: a store whose spec
//! already carries the target is never changed again, and a rollback already applied to a Store's
//! spec is not run again.
//!
//! With a backup target, a store first gets a pre-upgrade backup (`BackingUp`): its id is written
//! to the store's progress before the `StoreBackup` is made, and the store is touched only once
//! that backup `Succeeded`; a `Failed` one pauses the rollout with the store untouched.
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use tracing::Instrument;

use super::plan::{self, Next, Wave};
use super::types::{RolloutPhase, StoreProgress, StoreRollout, StoreRolloutStatus, StoreStep};
use crate::backups::service::{BackupService, BackupServiceError};
use crate::backups::{BackupId, BackupPhase, StoreBackup};
use crate::controller::{Context, EventType, readiness, release};
use crate::crd::{DEFAULT_INSTANCE, LABEL_INSTANCE, Phase, Store, StoreRelease};
use crate::domain::StoreId;
use crate::helm::{ReleaseState, deployed_revision};
use crate::storage::{Action as AuditAction, AuditEntry};

pub const FIELD_MANAGER: &str = "storefleet-rollouts";
/// How often rollouts are looked at. A pass is a few reads; gates take tens of seconds.
const PASS: Duration = Duration::from_secs(2);

/// Runs the rollouts of the store controller's instance until the process ends. `backups`: the
/// platform has a backup target, and each store is backed up before it is upgraded.
pub async fn run(ctx: Arc<Context>, backups: Option<BackupService>) {
    let rollouts = Api::<StoreRollout>::all(ctx.client.clone());
    loop {
        if let Err(e) = pass(&ctx, backups.as_ref(), &rollouts).await {
            tracing::warn!("rollout pass failed: {e}");
        }
        tokio::time::sleep(PASS).await;
    }
}

/// Rollouts of `instance` (all labelled by the API; unlabelled ones belong to `default`).
fn of_instance(r: &StoreRollout, instance: &str) -> bool {
    r.labels()
        .get(LABEL_INSTANCE)
        .map_or(DEFAULT_INSTANCE, String::as_str)
        == instance
}

async fn pass(
    ctx: &Context,
    backups: Option<&BackupService>,
    rollouts: &Api<StoreRollout>,
) -> kube::Result<()> {
    let mut list: Vec<StoreRollout> = rollouts
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| of_instance(r, &ctx.instance) && !r.is_finished())
        .collect();
    // One at a time, oldest first: two rollouts moving the same stores would fight.
    list.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            a.name_any(),
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.name_any(),
            ))
    });
    let Some(rollout) = list.into_iter().next() else {
        return Ok(());
    };
    let span = tracing::info_span!("rollout", rollout = %rollout.name_any());
    reconcile(ctx, backups, rollouts, &rollout)
        .instrument(span)
        .await
}

async fn reconcile(
    ctx: &Context,
    backups: Option<&BackupService>,
    rollouts: &Api<StoreRollout>,
    rollout: &StoreRollout,
) -> kube::Result<()> {
    let name = rollout.name_any();
    let spec = &rollout.spec;
    let mut st = rollout.status.clone().unwrap_or_default();
    if st.phase.is_none() {
        // The stores it moves are fixed here, once: a store already on the target is done.
        let stores = selection(ctx, rollout).await?;
        st.stores = stores
            .iter()
            .map(|s| StoreProgress {
                store_id: s.name_any(),
                step: if on_target(s, rollout) {
                    StoreStep::Upgraded
                } else {
                    StoreStep::Pending
                },
                previous_revision: None,
                previous_release: None,
                started_at: None,
                backup: None,
                message: None,
            })
            .collect();
        st.phase = Some(RolloutPhase::Progressing);
        st.message = Some(format!(
            "moving {} stores to {}",
            st.stores.len(),
            spec.target.name
        ));
        write(rollouts, &name, &mut st).await?;
        audit(
            ctx,
            None,
            "started",
            format!(
                "rollout {name}: {} stores to target {}",
                st.stores.len(),
                spec.target.name
            ),
        )
        .await;
    }

    // Gate the stores in flight, and finish rollbacks a restart interrupted.
    let was_paused = st.phase == Some(RolloutPhase::Paused);
    for i in 0..st.stores.len() {
        match st.stores[i].step {
            StoreStep::BackingUp => back_up(ctx, backups, rollouts, rollout, &mut st, i).await?,
            StoreStep::Upgrading => gate(ctx, rollouts, rollout, &mut st, i).await?,
            StoreStep::RollingBack => roll_back(ctx, rollouts, rollout, &mut st, i).await?,
            _ => {}
        }
    }

    if !was_paused && st.phase == Some(RolloutPhase::Paused) {
        // A store was rolled back (or its backup failed) just now: paused (this pass still sees
        // the old spec).
        return Ok(());
    }
    let stores = selection(ctx, rollout).await?;
    let steps = steps_of(&st);
    let unavailable = stores
        .iter()
        .filter(|s| !is_ready(s))
        .count()
        .try_into()
        .unwrap_or(u32::MAX);
    let wave = Wave {
        stores: &steps,
        canary: spec.canary.as_deref(),
        batch_size: spec.batch_size.max(1),
        max_unavailable: spec.max_unavailable.max(1),
        unavailable,
        // A store rolled back pauses the rollout too (its spec says so once the patch lands).
        paused: spec.paused || st.phase == Some(RolloutPhase::Paused),
        aborted: spec.aborted,
    };
    match plan::next(&wave) {
        Next::Gate => {
            st.message = Some(format!("moving stores to {}", spec.target.name));
        }
        // Say why nothing moves (a store that stays down, Failed say, holds the rollout here).
        Next::Wait => {
            st.message = Some(format!(
                "waiting: {unavailable} stores of the selection are not Ready (maxUnavailable {})",
                wave.max_unavailable
            ));
        }
        Next::Paused => {
            if st.phase != Some(RolloutPhase::Paused) {
                st.phase = Some(RolloutPhase::Paused);
                st.message = Some("paused by an operator".into());
            }
            if !spec.paused {
                // Resumed: go on with the stores not moved yet.
                st.phase = Some(RolloutPhase::Progressing);
                st.message = Some(format!("resumed: moving stores to {}", spec.target.name));
                audit(ctx, None, "resumed", format!("rollout {name} resumed")).await;
            }
        }
        Next::Aborted => {
            st.phase = Some(RolloutPhase::Aborted);
            st.message =
                Some("aborted by an operator; stores not moved yet stay as they are".into());
            audit(ctx, None, "aborted", format!("rollout {name} aborted")).await;
        }
        Next::Completed => {
            st.phase = Some(RolloutPhase::Completed);
            st.message = Some(format!("every store runs {}", spec.target.name));
            audit(
                ctx,
                None,
                "completed",
                format!("rollout {name} completed: {}", plan::progress(&steps)),
            )
            .await;
        }
        Next::Start(ids) => {
            st.phase = Some(RolloutPhase::Progressing);
            if let Some(backups) = backups {
                return start_backups(ctx, backups, rollouts, rollout, &mut st, &stores, &ids)
                    .await;
            }
            // First write down what each store ran and that it is about to move...
            for id in &ids {
                let Some(store) = stores.iter().find(|s| &s.name_any() == id) else {
                    continue;
                };
                let Some(p) = st.stores.iter_mut().find(|p| &p.store_id == id) else {
                    continue;
                };
                if !record_upgrade(ctx, rollout, store, p).await {
                    return Ok(());
                }
            }
            write(rollouts, &name, &mut st).await?;
            // ...then move them (the store controller upgrades each release).
            for id in &ids {
                if let Some(store) = stores.iter().find(|s| &s.name_any() == id) {
                    move_store(ctx, rollout, store).await?;
                }
            }
        }
    }
    // Only a change is written: the loop looks every 2 s.
    st.progress = Some(plan::progress(&steps_of(&st)));
    if rollout.status.as_ref() != Some(&st) {
        write(rollouts, &name, &mut st).await?;
    }
    Ok(())
}

/// Writes into `p` that the store is about to move: the helm revision and release it runs now (the
/// rollback's), and when its gate starts counting. False: helm could not say (the next pass tries
/// again; nothing was written).
async fn record_upgrade(
    ctx: &Context,
    rollout: &StoreRollout,
    store: &Store,
    p: &mut StoreProgress,
) -> bool {
    let Ok(store_id) = StoreId::parse(&p.store_id) else {
        return false;
    };
    let revision = match ctx.helm.history(&store_id).await {
        Ok(history) => deployed_revision(&history),
        Err(e) => {
            tracing::warn!(store_id = %store_id, "helm history: {e}");
            return false;
        }
    };
    p.step = StoreStep::Upgrading;
    p.previous_revision = revision;
    p.previous_release = store.spec.release.clone();
    p.started_at = Some(Time(Timestamp::now()));
    p.message = Some(format!("moving to {}", rollout.spec.target.name));
    true
}

/// Puts the store on the target (after its `Upgrading` step is written): the store controller
/// upgrades its release.
async fn move_store(ctx: &Context, rollout: &StoreRollout, store: &Store) -> kube::Result<()> {
    set_release(ctx, &store.name_any(), Some(&target_release(rollout))).await?;
    ctx.event(
        store,
        EventType::Normal,
        "RolloutStarted",
        "Rollout",
        format!(
            "rollout {} moves the store to {}",
            rollout.name_any(),
            rollout.spec.target.name
        ),
    )
    .await;
    Ok(())
}

/// The batch's stores begin with their pre-upgrade backups: each id is written to the store's
/// progress first, then its `StoreBackup` is made (a restart in between makes it with that id).
async fn start_backups(
    ctx: &Context,
    backups: &BackupService,
    rollouts: &Api<StoreRollout>,
    rollout: &StoreRollout,
    st: &mut StoreRolloutStatus,
    stores: &[Store],
    ids: &[String],
) -> kube::Result<()> {
    let name = rollout.name_any();
    let target = &rollout.spec.target.name;
    for id in ids {
        if let Some(p) = st.stores.iter_mut().find(|p| &p.store_id == id) {
            let backup = BackupId::new(chrono::Utc::now());
            p.step = StoreStep::BackingUp;
            p.message = Some(format!("backing up as {backup} before moving to {target}"));
            p.backup = Some(backup.to_string());
            p.started_at = None;
        }
    }
    write(rollouts, &name, st).await?;
    for id in ids {
        let (Some(store), Some(p)) = (
            stores.iter().find(|s| &s.name_any() == id),
            st.stores.iter().find(|p| &p.store_id == id),
        ) else {
            continue;
        };
        let (Ok(store_id), Some(Ok(backup))) =
            (StoreId::parse(id), p.backup.as_deref().map(BackupId::parse))
        else {
            continue;
        };
        ensure_backup(backups, &store_id, &backup).await?;
        ctx.event(
            store,
            EventType::Normal,
            "BackingUp",
            "Rollout",
            format!("rollout {name} backs the store up as {backup} before moving it to {target}"),
        )
        .await;
    }
    Ok(())
}

/// The backup, made if missing. `None`: not now (logged; the next pass asks again).
async fn ensure_backup(
    backups: &BackupService,
    store: &StoreId,
    id: &BackupId,
) -> kube::Result<Option<StoreBackup>> {
    match backups
        .ensure(store, id, crate::backups::kind::BackupKind::PreUpgrade)
        .await
    {
        Ok(b) => Ok(Some(b)),
        Err(BackupServiceError::Kube(e)) => Err(e),
        Err(e) => {
            tracing::warn!(store_id = %store, backup = %id, "pre-upgrade backup: {e}");
            Ok(None)
        }
    }
}

/// A store backing up: waits for its backup; `Succeeded` moves it (write-ahead, as a start
/// without backups), `Failed` pauses the rollout with the store untouched and back to `Pending`
/// (a resume backs it up afresh). Paused or aborted meanwhile: back to `Pending`, untouched.
async fn back_up(
    ctx: &Context,
    backups: Option<&BackupService>,
    rollouts: &Api<StoreRollout>,
    rollout: &StoreRollout,
    st: &mut StoreRolloutStatus,
    i: usize,
) -> kube::Result<()> {
    let name = rollout.name_any();
    let target = rollout.spec.target.name.clone();
    let p = st.stores[i].clone();
    let Some(store) = ctx.stores.get_opt(&p.store_id).await? else {
        st.stores[i].step = StoreStep::Upgraded;
        st.stores[i].message = Some("the store was deleted".into());
        return write(rollouts, &name, st).await;
    };
    let recorded = p.backup.as_deref().and_then(|b| BackupId::parse(b).ok());
    let (Some(backups), Some(backup_id)) = (backups, recorded) else {
        // The platform's backup target was removed across a restart: no backup will come, and
        // the store is not upgraded without one unless an operator resumes.
        let why = "the platform has no backup target any more; resume to upgrade without a backup";
        return hold_untouched(ctx, rollouts, rollout, st, i, &store, why, true).await;
    };
    if rollout.spec.paused || rollout.spec.aborted || st.phase == Some(RolloutPhase::Paused) {
        // Not touched yet, so it need not finish as a moving store must: it stays as it is.
        let held = if rollout.spec.aborted {
            "aborted"
        } else {
            "paused"
        };
        let why = format!("not moved: the rollout was {held} during its backup {backup_id}");
        return hold_untouched(ctx, rollouts, rollout, st, i, &store, &why, false).await;
    }
    let store_id = StoreId::parse(&p.store_id).expect("a store id");
    let Some(backup) = ensure_backup(backups, &store_id, &backup_id).await? else {
        return Ok(());
    };
    match backup.phase() {
        Some(BackupPhase::Succeeded) => {
            if !record_upgrade(ctx, rollout, &store, &mut st.stores[i]).await {
                return Ok(());
            }
            st.stores[i].message = Some(format!("backed up as {backup_id}; moving to {target}"));
            write(rollouts, &name, st).await?;
            move_store(ctx, rollout, &store).await
        }
        Some(BackupPhase::Failed) => {
            let reason = backup
                .status
                .as_ref()
                .and_then(|s| s.message.clone())
                .unwrap_or_default();
            let why = format!("pre-upgrade backup {backup_id} failed: {reason}; not upgraded");
            hold_untouched(ctx, rollouts, rollout, st, i, &store, &why, true).await
        }
        _ => Ok(()),
    }
}

/// A store the rollout leaves untouched, back to `Pending` with `why`; `pause`: the rollout pauses
/// naming it (in the spec first, as a rollback does, so a restart keeps the flag for a resume),
/// with an Event and an audit entry.
#[allow(clippy::too_many_arguments)]
async fn hold_untouched(
    ctx: &Context,
    rollouts: &Api<StoreRollout>,
    rollout: &StoreRollout,
    st: &mut StoreRolloutStatus,
    i: usize,
    store: &Store,
    why: &str,
    pause: bool,
) -> kube::Result<()> {
    let name = rollout.name_any();
    let store_id = st.stores[i].store_id.clone();
    if pause {
        rollouts
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"paused": true}})),
            )
            .await?;
        st.phase = Some(RolloutPhase::Paused);
        st.message = Some(format!("paused: {store_id} {why}"));
    }
    st.stores[i].step = StoreStep::Pending;
    st.stores[i].message = Some(why.to_owned());
    write(rollouts, &name, st).await?;
    if pause {
        tracing::warn!(store_id = %store_id, "{why}");
        ctx.event(store, EventType::Warning, "BackupFailed", "Rollout", why)
            .await;
        audit(
            ctx,
            Some(store),
            "backup_failed",
            format!("rollout {name}: {store_id} {why}"),
        )
        .await;
    }
    Ok(())
}

fn steps_of(st: &StoreRolloutStatus) -> Vec<(String, StoreStep)> {
    st.stores
        .iter()
        .map(|p| (p.store_id.clone(), p.step))
        .collect()
}

/// What the gate of one store says.
#[derive(Debug, PartialEq, Eq)]
enum Gate {
    Passed,
    Waiting,
    Failed(String),
}

/// Ready on the generation that carries the target: released, workloads ready, setup succeeded
/// (the store controller's readiness, `controller/readiness.rs`).
fn is_ready(store: &Store) -> bool {
    let generation = store.metadata.generation;
    store.status.as_ref().is_some_and(|s| {
        s.phase == Some(Phase::Ready)
            && s.observed_generation == generation
            && s.released_generation == generation
    })
}

fn on_target(store: &Store, rollout: &StoreRollout) -> bool {
    store
        .spec
        .release
        .as_ref()
        .is_some_and(|r| r.target == rollout.spec.target.name)
}

fn target_release(rollout: &StoreRollout) -> StoreRelease {
    StoreRelease {
        target: rollout.spec.target.name.clone(),
        values: rollout.spec.target.values.clone(),
    }
}

async fn gate(
    ctx: &Context,
    rollouts: &Api<StoreRollout>,
    rollout: &StoreRollout,
    st: &mut StoreRolloutStatus,
    i: usize,
) -> kube::Result<()> {
    let id = st.stores[i].store_id.clone();
    let Some(store) = ctx.stores.get_opt(&id).await? else {
        st.stores[i].step = StoreStep::Upgraded;
        st.stores[i].message = Some("the store was deleted".into());
        return write(rollouts, &rollout.name_any(), st).await;
    };
    if !on_target(&store, rollout) {
        // Killed between writing `Upgrading` and changing the Store: change it now (once).
        return set_release(ctx, &id, Some(&target_release(rollout))).await;
    }
    let verdict = evaluate_gate(ctx, rollout, &store, &st.stores[i]).await?;
    match verdict {
        Gate::Waiting => Ok(()),
        Gate::Passed => {
            st.stores[i].step = StoreStep::Upgraded;
            st.stores[i].message = Some(format!("Ready on {}", rollout.spec.target.name));
            write(rollouts, &rollout.name_any(), st).await?;
            ctx.event(
                &store,
                EventType::Normal,
                "Upgraded",
                "Rollout",
                format!(
                    "passed its gate on {} (rollout {})",
                    rollout.spec.target.name,
                    rollout.name_any()
                ),
            )
            .await;
            Ok(())
        }
        Gate::Failed(why) => {
            let message = format!(
                "failed its gate on target {} ({}): {why}",
                rollout.spec.target.name,
                changed_values(&rollout.spec.target.values)
            );
            tracing::warn!(store_id = %id, "{message}");
            st.stores[i].step = StoreStep::RollingBack;
            st.stores[i].message = Some(message);
            write(rollouts, &rollout.name_any(), st).await?;
            roll_back(ctx, rollouts, rollout, st, i).await
        }
    }
}

async fn evaluate_gate(
    ctx: &Context,
    rollout: &StoreRollout,
    store: &Store,
    progress: &StoreProgress,
) -> kube::Result<Gate> {
    if is_ready(store) {
        return Ok(Gate::Passed);
    }
    let generation = store.metadata.generation;
    let Some(status) = &store.status else {
        return Ok(Gate::Waiting);
    };
    if status.phase == Some(Phase::Failed) && status.observed_generation == generation {
        return Ok(Gate::Failed(status.message.clone().unwrap_or_default()));
    }
    // Only once helm is done with the new generation: before that, the store controller may be
    // running helm, and a rollback beside it would collide.
    if status.released_generation != generation {
        return Ok(Gate::Waiting);
    }
    let id = StoreId::parse(&store.name_any()).expect("a store of the selection");
    if let Some(d) = readiness::diagnose(&ctx.client, &id).await?
        && matches!(d.reason.as_str(), "ImagePullBackOff" | "CrashLoopBackOff")
    {
        return Ok(Gate::Failed(format!("{}: {}", d.reason, d.message)));
    }
    let started = progress
        .started_at
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    let waited = Timestamp::now().duration_since(started);
    if waited.as_secs() >= i64::from(rollout.spec.gate_timeout_seconds) {
        return Ok(Gate::Failed(format!(
            "not Ready within {}s: {}",
            rollout.spec.gate_timeout_seconds,
            status.message.clone().unwrap_or_default()
        )));
    }
    Ok(Gate::Waiting)
}

/// `helm rollback` to the revision the store ran before, then its spec back to its previous
/// release (so the Store says what it runs), then the rollout pauses. Restart-safe: once the
/// Store's spec is back, the rollback is done and is not run again.
async fn roll_back(
    ctx: &Context,
    rollouts: &Api<StoreRollout>,
    rollout: &StoreRollout,
    st: &mut StoreRolloutStatus,
    i: usize,
) -> kube::Result<()> {
    let name = rollout.name_any();
    let p = st.stores[i].clone();
    let id = StoreId::parse(&p.store_id).expect("a store id");
    let Some(store) = ctx.stores.get_opt(&p.store_id).await? else {
        st.stores[i].step = StoreStep::RolledBack;
        return write(rollouts, &name, st).await;
    };
    if on_target(&store, rollout) {
        if let Some(revision) = p.previous_revision {
            // A rollback a killed control plane left pending: nothing else runs helm on this
            // release now (its generation is released), so the record is stale.
            if let Ok(ReleaseState::Pending(_)) = ctx.helm.release_state(&id).await {
                release::unlock(&ctx.client, &id).await?;
            }
            if let Err(e) = ctx.helm.rollback(&id, revision).await {
                tracing::warn!(store_id = %id, "helm rollback: {e}");
                st.stores[i].message = Some(format!("rollback failed, retrying: {e}"));
                return write(rollouts, &name, st).await;
            }
        }
        ctx.metrics.rollout_rollback();
        set_release(ctx, &p.store_id, p.previous_release.as_ref()).await?;
    }
    let back_to = p
        .previous_revision
        .map_or("its previous values".to_owned(), |r| {
            format!("revision {r}")
        });
    let why = p.message.clone().unwrap_or_default();
    // Paused in the spec before the status says RolledBack: a restart in between must not take
    // the Paused phase without the flag for a resume.
    rollouts
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"paused": true}})),
        )
        .await?;
    st.stores[i].step = StoreStep::RolledBack;
    st.stores[i].message = Some(format!("{why}; rolled back to {back_to}"));
    st.phase = Some(RolloutPhase::Paused);
    st.message = Some(format!(
        "paused: {} {why}; rolled back to {back_to}",
        p.store_id
    ));
    write(rollouts, &name, st).await?;
    ctx.event(
        &store,
        EventType::Warning,
        "RolledBack",
        "Rollout",
        format!("{why}; rolled back to {back_to}"),
    )
    .await;
    audit(
        ctx,
        Some(&store),
        "rolled_back",
        format!(
            "rollout {name}: {} {why}; rolled back to {back_to}",
            p.store_id
        ),
    )
    .await;
    Ok(())
}

/// The values a target sets, as `path=value` (what a human looks for in a failure).
pub fn changed_values(values: &serde_json::Value) -> String {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out);
                }
            }
            serde_json::Value::String(s) => out.push(format!("{prefix}={s}")),
            other => out.push(format!("{prefix}={other}")),
        }
    }
    let mut out = Vec::new();
    walk("", values, &mut out);
    if out.is_empty() {
        "no values".into()
    } else {
        out.join(", ")
    }
}

/// The stores of the rollout's selection (this instance, its labels), by id.
async fn selection(ctx: &Context, rollout: &StoreRollout) -> kube::Result<Vec<Store>> {
    let mut labels: Vec<String> = rollout
        .spec
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if ctx.instance != DEFAULT_INSTANCE {
        labels.push(format!("{LABEL_INSTANCE}={}", ctx.instance));
    }
    let mut stores: Vec<Store> = ctx
        .stores
        .list(&ListParams::default().labels(&labels.join(",")))
        .await?
        .items
        .into_iter()
        .filter(|s| {
            s.instance() == ctx.instance && s.store_id().is_some() && !s.deletion_requested()
        })
        .collect();
    stores.sort_by_key(|s| s.name_any());
    Ok(stores)
}

/// Sets (or removes) a Store's `spec.release`: a new generation, which the store controller
/// releases. The same release again changes nothing (no new generation, no upgrade).
async fn set_release(ctx: &Context, id: &str, release: Option<&StoreRelease>) -> kube::Result<()> {
    ctx.stores
        .patch(
            id,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"release": release}})),
        )
        .await
        .map(drop)
}

async fn write(
    api: &Api<StoreRollout>,
    name: &str,
    st: &mut StoreRolloutStatus,
) -> kube::Result<()> {
    let steps = steps_of(st);
    st.progress = Some(plan::progress(&steps));
    let patch = serde_json::json!({
        "apiVersion": StoreRollout::api_version(&()),
        "kind": StoreRollout::kind(&()),
        "status": st,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(drop)
}

async fn audit(ctx: &Context, store: Option<&Store>, outcome: &str, detail: String) {
    ctx.audit(AuditEntry {
        actor: "controller".into(),
        action: AuditAction::Rollout,
        store_id: store.map(|s| s.name_any()),
        store_owner: store.map(|s| s.spec.owner.clone()),
        outcome: outcome.into(),
        detail,
        remote_addr: None,
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_values_that_changed() {
        let values =
            serde_json::json!({"wordpress": {"image": {"tag": "6.8.3-broken"}}, "replicas": 1});
        assert_eq!(
            changed_values(&values),
            "replicas=1, wordpress.image.tag=6.8.3-broken"
        );
        assert_eq!(changed_values(&serde_json::json!({})), "no values");
    }
}

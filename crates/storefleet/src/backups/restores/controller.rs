//! The restore controller: each pass looks at this instance's unfinished `StoreRestore`s and takes
//! the next step of each (the steps are in [`super`]). Restart-safe: what a step decides (the safety
//! backup's id, WordPress's replicas, a failure) is written to the status before it is acted on,
//! Jobs are named by the restore, and every step is safe to take twice.
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

use super::types::{FINALIZER, RestorePhase, StoreRestore, StoreRestoreStatus};
use super::{LABEL_SAFETY_FOR, RestoreId};
use crate::backups::controller::{FIELD_MANAGER, of_instance};
use crate::backups::job::{self, JobParams, StoreWorkload};
use crate::backups::service::BackupService;
use crate::backups::settings::PlatformBackups;
use crate::backups::types::{BackupPhase, StoreBackup};
use crate::backups::{BackupError, BackupId, open_manifest};
use crate::crd::{Phase, Store};
use crate::domain::StoreId;

const PASS: Duration = Duration::from_secs(2);

struct Ctx {
    client: Client,
    platform: Arc<PlatformBackups>,
    restores: Api<StoreRestore>,
    stores: Api<Store>,
    backups: BackupService,
}

pub async fn run(client: Client, instance: String, platform: Arc<PlatformBackups>) {
    let ctx = Ctx {
        restores: Api::all(client.clone()),
        stores: Api::all(client.clone()),
        backups: BackupService::new(client.clone(), instance.clone(), true),
        client,
        platform,
    };
    loop {
        match ctx.restores.list(&ListParams::default()).await {
            Ok(list) => {
                let ours: Vec<_> = list
                    .items
                    .iter()
                    .filter(|r| of_instance(*r, &instance))
                    .collect();
                let unfinished: Vec<_> = ours
                    .iter()
                    .copied()
                    .filter(|r| !r.phase().is_finished())
                    .collect();
                for r in &ours {
                    // An unfinished restore holds its finalizer: deleting it by hand lets it run
                    // to its end first, since its own steps are what give the store back (WordPress
                    // started, the store Ready). A finished one lets go.
                    if let Err(e) = hold(&ctx, r, !r.phase().is_finished()).await {
                        tracing::warn!(restore = %r.name_any(), "restore finalizer: {e:#}");
                    }
                }
                for r in &unfinished {
                    if let Err(e) = step(&ctx, r, &unfinished).await {
                        tracing::warn!(restore = %r.name_any(), "restore step failed: {e:#}");
                    }
                }
            }
            Err(e) => tracing::warn!("listing restores: {e}"),
        }
        tokio::time::sleep(PASS).await;
    }
}

/// Adds (`keep`) or removes the restore's finalizer, when it is not so already.
async fn hold(ctx: &Ctx, r: &StoreRestore, keep: bool) -> anyhow::Result<()> {
    let has = r.finalizers().iter().any(|f| f == FINALIZER);
    if has == keep || (keep && r.meta().deletion_timestamp.is_some()) {
        // Nothing to do; and a restore already being deleted can no longer gain a finalizer.
        return Ok(());
    }
    let mut finalizers: Vec<String> = r
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if keep {
        finalizers.push(FINALIZER.into());
    }
    // Against the version read: another writer's finalizer list is never overwritten.
    let patch = serde_json::json!({
        "metadata": { "finalizers": finalizers, "resourceVersion": r.resource_version() }
    });
    ctx.restores
        .patch(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// What the store's status says while this restore owns it.
fn restoring_message(r: &StoreRestore) -> String {
    format!(
        "restoring backup {} (restore {})",
        r.spec.backup_id,
        r.name_any()
    )
}

async fn step(ctx: &Ctx, r: &StoreRestore, unfinished: &[&StoreRestore]) -> anyhow::Result<()> {
    let name = r.name_any();
    let st = r.status.clone().unwrap_or_default();
    let source = r.spec.source_store_id.as_deref().map(StoreId::parse);
    let (Ok(id), Ok(store_id), Ok(backup_id), None | Some(Ok(_))) = (
        RestoreId::parse(&name),
        StoreId::parse(&r.spec.store_id),
        BackupId::parse(&r.spec.backup_id),
        &source,
    ) else {
        return finish(
            ctx,
            r,
            st,
            RestorePhase::Failed,
            "the object's name is not a restore id, its storeId or sourceStoreId not a store id, or its backupId not a backup id".into(),
        )
        .await;
    };
    // The store the backup is of: the restored store itself, or a clone's source.
    let source = source
        .and_then(Result::ok)
        .unwrap_or_else(|| store_id.clone());
    let store = ctx.stores.get_opt(store_id.as_str()).await?;
    let Some(store) = store.filter(|s| !s.is_deleting()) else {
        let why = match r.phase() {
            RestorePhase::Pending => format!("store {store_id} does not exist or is being deleted"),
            _ => format!("store {store_id} was deleted during the restore"),
        };
        return finish(ctx, r, st, RestorePhase::Failed, why).await;
    };
    match r.phase() {
        RestorePhase::Pending => {
            begin(ctx, r, st, &id, &store, &source, &backup_id, unfinished).await
        }
        RestorePhase::BackingUp => safety_backup(ctx, r, st, &store_id).await,
        RestorePhase::Stopping => stop(ctx, r, st, &store_id).await,
        RestorePhase::Restoring => {
            let job = Agent {
                store: &store_id,
                source: &source,
                backup: &backup_id,
                name: id.as_str(),
                rollback: false,
            };
            agent(ctx, r, st, job).await
        }
        RestorePhase::RollingBack => {
            let safety = st
                .safety_backup
                .as_deref()
                .and_then(|b| BackupId::parse(b).ok());
            let Some(safety) = safety else {
                // WordPress is stopped: it is started again whatever happened.
                return to_starting(
                    ctx,
                    r,
                    st,
                    "rolling back, but the status names no safety backup".into(),
                )
                .await;
            };
            let job = Agent {
                store: &store_id,
                source: &store_id,
                backup: &safety,
                name: &id.rollback_job(),
                rollback: true,
            };
            agent(ctx, r, st, job).await
        }
        RestorePhase::MovingUrls => move_urls(ctx, r, st, &store, &id).await,
        RestorePhase::Starting => start(ctx, r, st, &store_id).await,
        RestorePhase::Succeeded | RestorePhase::Failed => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn begin(
    ctx: &Ctx,
    r: &StoreRestore,
    st: StoreRestoreStatus,
    id: &RestoreId,
    store: &Store,
    source: &StoreId,
    backup_id: &BackupId,
    unfinished: &[&StoreRestore],
) -> anyhow::Result<()> {
    let store_id = &r.spec.store_id;
    let ours = store
        .status
        .as_ref()
        .and_then(|s| s.message.as_deref())
        .is_some_and(|m| m == restoring_message(r));
    let why_not = match store.phase() {
        Some(Phase::Ready) => None,
        // Set by this restore before a restart.
        Some(Phase::Restoring) if ours => None,
        // A clone is asked for with its store: it waits for the store's first Ready.
        None | Some(Phase::Provisioning) if r.is_clone() => {
            let message = format!("waiting for the new store {store_id} to be Ready");
            if st.message.as_deref() == Some(message.as_str()) {
                return Ok(());
            }
            return write(
                ctx,
                r,
                StoreRestoreStatus {
                    message: Some(message),
                    ..st
                },
            )
            .await;
        }
        other => Some(format!(
            "store {store_id} is not Ready ({}): restore a running store",
            other.map_or("no phase yet", Phase::as_str)
        )),
    };
    if let Some(why) = why_not {
        return finish(ctx, r, st, RestorePhase::Failed, why).await;
    }
    // One restore of a store at a time: the oldest goes on, the others end here.
    if let Some(first) = unfinished
        .iter()
        .filter(|o| o.spec.store_id == *store_id)
        .map(|o| o.name_any())
        .min()
        .filter(|first| *first != id.as_str())
    {
        return finish(
            ctx,
            r,
            st,
            RestorePhase::Failed,
            format!("restore {first} of store {store_id} runs; one at a time"),
        )
        .await;
    }
    let backup = Api::<StoreBackup>::all(ctx.client.clone())
        .get_opt(backup_id.as_str())
        .await?;
    let why_not = match &backup {
        None => Some(format!("backup {backup_id} does not exist")),
        Some(b) if b.spec.store_id != source.as_str() => Some(format!(
            "backup {backup_id} is not a backup of store {source}"
        )),
        Some(b) if b.phase() != Some(BackupPhase::Succeeded) => Some(format!(
            "backup {backup_id} did not succeed ({}): only a checked backup is restored",
            b.phase().map_or("Pending", BackupPhase::as_str)
        )),
        Some(_) => None,
    };
    if let Some(why) = why_not {
        return finish(ctx, r, st, RestorePhase::Failed, why).await;
    }
    // The sealed manifest, bound to this store: its engine must be the store's. The parts are
    // checked in full by the agent before it changes anything.
    let settings = &ctx.platform.settings;
    match open_manifest(&settings.store, &settings.key, source, backup_id).await {
        Ok(m) if m.engine != store.spec.engine => {
            return finish(
                ctx,
                r,
                st,
                RestorePhase::Failed,
                format!(
                    "backup {backup_id} is of a {} store; store {store_id} is {}",
                    m.engine.as_str(),
                    store.spec.engine.as_str()
                ),
            )
            .await;
        }
        Ok(_) => {}
        // The target did not answer: not the backup's fault; the next pass asks again.
        Err(e @ (BackupError::Storage { .. } | BackupError::Io { .. })) => {
            return write(
                ctx,
                r,
                StoreRestoreStatus {
                    message: Some(format!("reading the backup's manifest: {e}")),
                    ..st
                },
            )
            .await;
        }
        Err(e) => {
            return finish(
                ctx,
                r,
                st,
                RestorePhase::Failed,
                format!("backup {backup_id} was refused, nothing was changed: {e}"),
            )
            .await;
        }
    }
    set_store(ctx, store_id, Phase::Restoring, Some(restoring_message(r))).await?;
    if r.is_clone() {
        // A new store holds nothing worth a safety backup: straight to stopping WordPress.
        let store_key = StoreId::parse(store_id).expect("checked by step");
        let replicas = wordpress(ctx, &store_key)
            .await?
            .and_then(|d| d.spec.replicas)
            .unwrap_or(1);
        tracing::info!(restore = %id, store = %store_id, source = %source, "clone started");
        return write(
            ctx,
            r,
            StoreRestoreStatus {
                phase: Some(RestorePhase::Stopping),
                message: Some("stopping WordPress".into()),
                wordpress_replicas: Some(replicas),
                started_at: Some(Time(Timestamp::now())),
                ..st
            },
        )
        .await;
    }
    let safety = BackupId::new(chrono::Utc::now());
    tracing::info!(restore = %id, store = %store_id, safety = %safety, "restore started");
    write(
        ctx,
        r,
        StoreRestoreStatus {
            phase: Some(RestorePhase::BackingUp),
            message: Some(format!("taking safety backup {safety}")),
            safety_backup: Some(safety.to_string()),
            started_at: Some(Time(Timestamp::now())),
            ..st
        },
    )
    .await
}

async fn safety_backup(
    ctx: &Ctx,
    r: &StoreRestore,
    st: StoreRestoreStatus,
    store_id: &StoreId,
) -> anyhow::Result<()> {
    let Some(safety) = st
        .safety_backup
        .as_deref()
        .and_then(|b| BackupId::parse(b).ok())
    else {
        return finish(
            ctx,
            r,
            st,
            RestorePhase::Failed,
            "the status names no safety backup".into(),
        )
        .await;
    };
    let b = ctx
        .backups
        .ensure_safety(store_id, &safety, (LABEL_SAFETY_FOR, &r.name_any()))
        .await?;
    match b.phase() {
        Some(BackupPhase::Succeeded) => {
            let replicas = wordpress(ctx, store_id)
                .await?
                .and_then(|d| d.spec.replicas)
                .unwrap_or(1);
            write(
                ctx,
                r,
                StoreRestoreStatus {
                    phase: Some(RestorePhase::Stopping),
                    message: Some("stopping WordPress".into()),
                    wordpress_replicas: Some(replicas),
                    ..st
                },
            )
            .await
        }
        Some(BackupPhase::Failed) => {
            let why = b
                .status
                .and_then(|s| s.message)
                .unwrap_or_else(|| "no reason given".into());
            finish(
                ctx,
                r,
                st,
                RestorePhase::Failed,
                format!("the safety backup {safety} failed ({why}); nothing was changed"),
            )
            .await
        }
        _ => Ok(()),
    }
}

async fn wordpress(ctx: &Ctx, store_id: &StoreId) -> anyhow::Result<Option<Deployment>> {
    Ok(
        Api::<Deployment>::namespaced(ctx.client.clone(), store_id.as_str())
            .list(&ListParams::default().labels("app.kubernetes.io/component=wordpress"))
            .await?
            .items
            .into_iter()
            .next(),
    )
}

async fn scale(ctx: &Ctx, store_id: &StoreId, d: &Deployment, replicas: i32) -> anyhow::Result<()> {
    if d.spec.replicas == Some(replicas) {
        return Ok(());
    }
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    Api::<Deployment>::namespaced(ctx.client.clone(), store_id.as_str())
        .patch(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

async fn stop(
    ctx: &Ctx,
    r: &StoreRestore,
    st: StoreRestoreStatus,
    store_id: &StoreId,
) -> anyhow::Result<()> {
    let Some(d) = wordpress(ctx, store_id).await? else {
        return finish(
            ctx,
            r,
            st,
            RestorePhase::Failed,
            format!("store {store_id} has no WordPress Deployment; nothing was changed"),
        )
        .await;
    };
    scale(ctx, store_id, &d, 0).await?;
    // No pod of WordPress left: none writes to the files or the database while they are replaced.
    let selector = d
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), store_id.as_str())
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    if !selector.is_empty() && !pods.is_empty() {
        let message = format!("waiting for {} WordPress pod(s) to stop", pods.len());
        if st.message.as_deref() != Some(message.as_str()) {
            write(
                ctx,
                r,
                StoreRestoreStatus {
                    message: Some(message),
                    ..st
                },
            )
            .await?;
        }
        return Ok(());
    }
    write(
        ctx,
        r,
        StoreRestoreStatus {
            phase: Some(RestorePhase::Restoring),
            message: Some(format!("restoring backup {}", r.spec.backup_id)),
            ..st
        },
    )
    .await
}

/// One of the agent's restore Jobs: `name` restores `backup` (of store `source`) into `store`.
struct Agent<'a> {
    store: &'a StoreId,
    source: &'a StoreId,
    backup: &'a BackupId,
    name: &'a str,
    /// The safety backup going back after the restore failed.
    rollback: bool,
}

/// How a Job ended: `None` while it runs.
fn job_outcome(j: &Job) -> Option<Result<(), String>> {
    let js = j.status.clone().unwrap_or_default();
    if js.succeeded.unwrap_or(0) > 0 {
        return Some(Ok(()));
    }
    let failed = js
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    if js.failed.unwrap_or(0) == 0 && failed.is_none() {
        return None;
    }
    Some(Err(failed
        .and_then(|c| c.message.clone().or(c.reason.clone()))
        .unwrap_or_else(|| "its pod failed".into())))
}

/// The agent's Job: started when missing, judged when ended.
async fn agent(
    ctx: &Ctx,
    r: &StoreRestore,
    st: StoreRestoreStatus,
    a: Agent<'_>,
) -> anyhow::Result<()> {
    let (ns, backup, job_name) = (a.store.as_str(), a.backup, a.name);
    let jobs = Api::<Job>::namespaced(ctx.client.clone(), ns);
    let Some(j) = jobs.get_opt(job_name).await? else {
        return start_job(ctx, r, st, &a).await;
    };
    let Some(ended) = job_outcome(&j) else {
        return Ok(()); // still running
    };
    let outcome = match ended {
        Ok(()) => {
            let expected = format!(
                "restored backup {backup} of store {} into store {} ",
                a.source, a.store
            );
            match said(ctx, ns, job_name).await? {
                Some(m) if m.starts_with(&expected) => Ok(()),
                Some(m) => Err(format!(
                    "the agent ended saying {m:?}, not that it restored {backup}"
                )),
                None => Err(
                    "the Job ended without the agent saying it restored anything (no termination message)"
                        .to_owned(),
                ),
            }
        }
        Err(why) => Err(why),
    };
    // The agent's words when it refused before changing anything (`RestoreError::Refused`): there
    // is nothing to put back.
    let refused = match &outcome {
        Err(_) => said(ctx, ns, job_name)
            .await?
            .filter(|m| m.starts_with("refused, nothing was changed")),
        Ok(()) => None,
    };
    let logs = format!("kubectl logs -n {ns} job/{job_name}");
    let (phase, message, failure) = match (outcome, a.rollback) {
        (Err(_), false) if refused.is_some() => (
            RestorePhase::Starting,
            "the agent refused the backup; starting WordPress".to_owned(),
            Some(format!(
                "the agent {} (its log: {logs})",
                refused.as_deref().unwrap_or_default()
            )),
        ),
        // A clone's data is in: its URLs still name the store it came from.
        (Ok(()), false) if r.is_clone() => (
            RestorePhase::MovingUrls,
            format!("restored {backup}; moving the site's URLs to this store's address"),
            None,
        ),
        // A clone has no safety backup to go back to: it ends Failed, with the reason.
        (Err(why), false) if r.is_clone() => (
            RestorePhase::Starting,
            "the clone's restore failed; starting WordPress".to_owned(),
            Some(format!("the restore Job failed: {why} (its log: {logs})")),
        ),
        (Ok(()), false) => (
            RestorePhase::Starting,
            format!("restored {backup}; starting WordPress"),
            None,
        ),
        (Ok(()), true) => (
            RestorePhase::Starting,
            format!("the safety backup {backup} is back; starting WordPress"),
            st.failure.clone(),
        ),
        (Err(why), false) => (
            RestorePhase::RollingBack,
            "the restore failed; putting the safety backup back".to_owned(),
            Some(format!("the restore Job failed: {why} (its log: {logs})")),
        ),
        (Err(why), true) => (
            RestorePhase::Starting,
            "putting the safety backup back failed too; starting WordPress".into(),
            Some(format!(
                "{}; putting the safety backup {backup} back failed too: {why} (its log: {logs}); the store's data may be partly restored: restore {backup} again",
                st.failure.as_deref().unwrap_or("the restore failed")
            )),
        ),
    };
    write(
        ctx,
        r,
        StoreRestoreStatus {
            phase: Some(phase),
            message: Some(message),
            failure,
            ..st
        },
    )
    .await
}

/// A clone's last step, WordPress still stopped: WP-CLI `search-replace` (a Job made from the
/// store's WP-CLI CronJob, `crate::backups::clones::urls`) moves the site's URLs from the source
/// store's address to this one's. Then WordPress starts.
async fn move_urls(
    ctx: &Ctx,
    r: &StoreRestore,
    st: StoreRestoreStatus,
    store: &Store,
    id: &RestoreId,
) -> anyhow::Result<()> {
    let ns = store.name_any();
    let name = format!("{id}-urls");
    let jobs = Api::<Job>::namespaced(ctx.client.clone(), &ns);
    let outcome = match jobs.get_opt(&name).await? {
        Some(j) => match job_outcome(&j) {
            Some(ended) => ended,
            None => return Ok(()), // still running
        },
        None => match start_urls_job(ctx, r, store, &name).await? {
            Ok(()) => return Ok(()),
            Err(why) => Err(why),
        },
    };
    let (message, failure) = match outcome {
        Ok(()) => ("moved the site's URLs; starting WordPress".to_owned(), None),
        Err(why) => (
            "moving the site's URLs failed; starting WordPress".to_owned(),
            Some(format!(
                "moving the site's URLs with WP-CLI search-replace failed: {why} (its log: kubectl logs -n {ns} job/{name}); the store holds the backup's data, its links may still name {}",
                r.spec.source_url.as_deref().unwrap_or("the source store")
            )),
        ),
    };
    write(
        ctx,
        r,
        StoreRestoreStatus {
            phase: Some(RestorePhase::Starting),
            message: Some(message),
            failure,
            ..st
        },
    )
    .await
}

/// Makes the `search-replace` Job; `Ok(Err(why))` when it cannot be made at all.
async fn start_urls_job(
    ctx: &Ctx,
    r: &StoreRestore,
    store: &Store,
    name: &str,
) -> anyhow::Result<Result<(), String>> {
    use crate::backups::clones::{site_path, urls};
    let ns = store.name_any();
    let from = r.spec.source_url.as_deref().and_then(site_path);
    let to = store
        .status
        .as_ref()
        .and_then(|s| s.url.as_deref())
        .and_then(site_path);
    let (Some(from), Some(to)) = (from, to) else {
        return Ok(Err(format!(
            "the source's address ({:?}) or this store's is not an http(s) URL",
            r.spec.source_url
        )));
    };
    let Some(cron) = urls::cron_pod(&ctx.client, &ns).await? else {
        return Ok(Err(
            "the store has no WP-CLI CronJob (the store chart's cron.enabled is off), whose pod the Job copies"
                .into(),
        ));
    };
    let owner = r
        .controller_owner_ref(&())
        .expect("a StoreRestore read from the API server has a uid");
    let job = match urls::job(&cron, &ns, name, owner, &from, &to) {
        Ok(j) => j,
        Err(why) => return Ok(Err(why)),
    };
    match Api::<Job>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &job)
        .await
    {
        Ok(_) => {
            tracing::info!(restore = %r.name_any(), job = name, %from, %to, "search-replace Job started");
            Ok(Ok(()))
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Ok(())),
        Err(kube::Error::Api(e)) if (400..500).contains(&e.code) && e.code != 429 => Ok(Err(
            format!("the search-replace Job was refused: {}", e.message),
        )),
        Err(e) => Err(e.into()),
    }
}

/// What the agent wrote to its termination message, from the Job's pod.
async fn said(ctx: &Ctx, ns: &str, job_name: &str) -> anyhow::Result<Option<String>> {
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&format!("job-name={job_name}")))
        .await?
        .items;
    Ok(pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
        .find(|m| !m.is_empty()))
}

async fn start_job(
    ctx: &Ctx,
    r: &StoreRestore,
    st: StoreRestoreStatus,
    a: &Agent<'_>,
) -> anyhow::Result<()> {
    let (store_id, backup, job_name) = (a.store, a.backup, a.name);
    let ns = store_id.as_str();
    let mariadb = Api::<StatefulSet>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/component=database"))
        .await?
        .items;
    let (Some(wordpress), Some(mariadb)) = (wordpress(ctx, store_id).await?, mariadb.first())
    else {
        return to_starting(
            ctx,
            r,
            st,
            format!("store {store_id} has no WordPress Deployment or MariaDB StatefulSet"),
        )
        .await;
    };
    let workload = match StoreWorkload::from_objects(&wordpress, mariadb) {
        Ok(w) => w,
        Err(why) => return to_starting(ctx, r, st, format!("cannot restore: {why}")).await,
    };
    Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .patch(
            job::SECRET,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(job::secret(store_id, &ctx.platform.settings)),
        )
        .await?;
    let owner = r
        .controller_owner_ref(&())
        .expect("a StoreRestore read from the API server has a uid");
    let j = job::restore_job(
        &JobParams {
            store: store_id,
            backup,
            platform: &ctx.platform,
            chart_version: "",
            owner,
            source: (a.source != a.store).then_some(a.source),
        },
        &workload,
        job_name,
    );
    match Api::<Job>::namespaced(ctx.client.clone(), ns)
        .create(&PostParams::default(), &j)
        .await
    {
        Ok(_) => {}
        // Made by this controller before a restart.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(kube::Error::Api(e)) if (400..500).contains(&e.code) && e.code != 429 => {
            return to_starting(
                ctx,
                r,
                st,
                format!("the restore Job was refused: {}", e.message),
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(restore = %r.name_any(), job = job_name, backup = %backup, "restore Job started");
    Ok(())
}

/// A restore Job could not even be made: nothing was replaced, so WordPress goes back as it was.
async fn to_starting(
    ctx: &Ctx,
    r: &StoreRestore,
    st: StoreRestoreStatus,
    why: String,
) -> anyhow::Result<()> {
    let failure = match &st.failure {
        Some(first) => format!("{first}; {why}"),
        None => format!("{why}; nothing was changed"),
    };
    write(
        ctx,
        r,
        StoreRestoreStatus {
            phase: Some(RestorePhase::Starting),
            message: Some("starting WordPress".into()),
            failure: Some(failure),
            ..st
        },
    )
    .await
}

async fn start(
    ctx: &Ctx,
    r: &StoreRestore,
    st: StoreRestoreStatus,
    store_id: &StoreId,
) -> anyhow::Result<()> {
    let replicas = st.wordpress_replicas.unwrap_or(1);
    if let Some(d) = wordpress(ctx, store_id).await? {
        scale(ctx, store_id, &d, replicas).await?;
        let status = d.status.clone().unwrap_or_default();
        // Ready pods counted by the Deployment controller after it saw the scale-up, not before.
        let seen = status.observed_generation >= d.metadata.generation;
        if d.spec.replicas != Some(replicas)
            || !seen
            || status.ready_replicas.unwrap_or(0) < replicas
        {
            return Ok(()); // the next pass looks again
        }
    }
    let (phase, message) = match &st.failure {
        None => (
            RestorePhase::Succeeded,
            format!("restored backup {}", r.spec.backup_id),
        ),
        Some(f) => (
            RestorePhase::Failed,
            format!(
                "{f}; the safety backup is {}",
                st.safety_backup.as_deref().unwrap_or("(none)")
            ),
        ),
    };
    finish(ctx, r, st, phase, message).await
}

/// The end: the store Ready again if this restore had made it `Restoring`, then the restore's
/// final state.
async fn finish(
    ctx: &Ctx,
    r: &StoreRestore,
    st: StoreRestoreStatus,
    phase: RestorePhase,
    message: String,
) -> anyhow::Result<()> {
    if let Some(store) = ctx.stores.get_opt(&r.spec.store_id).await? {
        let ours = store.phase() == Some(Phase::Restoring)
            && store.status.as_ref().and_then(|s| s.message.as_deref())
                == Some(restoring_message(r).as_str());
        if ours && !store.is_deleting() {
            if r.is_clone() && phase == RestorePhase::Failed {
                // Not Ready: it would be a blank shop, or another shop's half, under a name the
                // owner expects to hold the copy. Failed until deleted (or its spec changes).
                set_store(
                    ctx,
                    &r.spec.store_id,
                    Phase::Failed,
                    Some(format!(
                        "the clone from backup {} failed: {message}",
                        r.spec.backup_id
                    )),
                )
                .await?;
            } else {
                set_store(ctx, &r.spec.store_id, Phase::Ready, None).await?;
            }
        }
    }
    if phase == RestorePhase::Failed {
        tracing::warn!(restore = %r.name_any(), "restore failed: {message}");
    } else {
        tracing::info!(restore = %r.name_any(), "restore succeeded");
    }
    write(
        ctx,
        r,
        StoreRestoreStatus {
            phase: Some(phase),
            message: Some(message),
            finished_at: Some(Time(Timestamp::now())),
            ..st
        },
    )
    .await
}

async fn set_store(
    ctx: &Ctx,
    store_id: &str,
    phase: Phase,
    message: Option<String>,
) -> anyhow::Result<()> {
    let patch = serde_json::json!({"status": {"phase": phase, "message": message}});
    ctx.stores
        .patch_status(store_id, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn write(ctx: &Ctx, r: &StoreRestore, status: StoreRestoreStatus) -> anyhow::Result<()> {
    let patch = serde_json::json!({"status": status});
    ctx.restores
        .patch_status(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

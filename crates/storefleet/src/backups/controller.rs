//! The backup controller: each pass looks at this instance's unfinished `StoreBackup`s and takes
//! the next step of each: start its Job, or judge the Job that ended. Restart-safe by construction:
//! the Job is named by the backup id (a restarted controller finds the Job it made, and a second
//! create is a harmless conflict), and a backup is written `Succeeded` only after the controller
//! itself opened its sealed manifest on the target; a Job that says "done" is not enough.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

use super::job::{self, JobParams, StoreWorkload};
use super::settings::PlatformBackups;
use super::types::{BackupPhase, FINALIZER, StoreBackup, StoreBackupStatus, human_size};
use super::{BackupError, BackupId, PartName, open_manifest};
use crate::crd::{DEFAULT_INSTANCE, LABEL_INSTANCE, Phase, Store};
use crate::domain::StoreId;
use crate::metrics::Metrics;

pub const FIELD_MANAGER: &str = "storefleet-backups";
/// How often backups are looked at: a pass is a few reads; a backup takes seconds to hours.
const PASS: Duration = Duration::from_secs(2);
/// What a Job that ended well without leaving a manifest means. On the test cluster, whose kubelet
/// stand-in ends Job pods Succeeded without running them, every backup ends here: honestly.
pub const NO_MANIFEST: &str = "the agent reported success but no manifest was found";

pub async fn run(
    client: Client,
    instance: String,
    platform: Arc<PlatformBackups>,
    metrics: Arc<Metrics>,
) {
    let backups = Api::<StoreBackup>::all(client.clone());
    loop {
        match backups.list(&ListParams::default()).await {
            Ok(list) => {
                let ours: Vec<_> = list
                    .items
                    .iter()
                    .filter(|b| of_instance(*b, &instance))
                    .collect();
                for b in &ours {
                    if let Err(e) = reconcile(&client, &platform, &metrics, &backups, b).await {
                        tracing::warn!(backup = %b.name_any(), "backup step failed: {e:#}");
                    }
                }
                metrics.last_backups(&newest_successes(&ours));
            }
            Err(e) => tracing::warn!("listing backups: {e}"),
        }
        tokio::time::sleep(PASS).await;
    }
}

/// Each store's newest successful backup, as Unix seconds (from the list just read: a backup that
/// succeeded in this pass shows in the next).
fn newest_successes(backups: &[&StoreBackup]) -> BTreeMap<String, f64> {
    let mut newest = BTreeMap::new();
    for b in backups {
        let finished = b.status.as_ref().and_then(|s| s.finished_at.as_ref());
        if let (Some(BackupPhase::Succeeded), Some(at)) = (b.phase(), finished) {
            let at = at.0.as_millisecond() as f64 / 1000.0;
            let slot = newest.entry(b.spec.store_id.clone()).or_insert(at);
            *slot = slot.max(at);
        }
    }
    newest
}

/// From the backup's start (its Job's creation) to now.
fn took(status: &StoreBackupStatus) -> Option<Duration> {
    let started = status.started_at.as_ref()?.0;
    Timestamp::now().duration_since(started).try_into().ok()
}

/// Backups (and restores) of `instance` (the API labels them; unlabelled ones belong to `default`).
pub fn of_instance(b: &impl ResourceExt, instance: &str) -> bool {
    b.labels()
        .get(LABEL_INSTANCE)
        .map_or(DEFAULT_INSTANCE, String::as_str)
        == instance
}

async fn reconcile(
    client: &Client,
    platform: &PlatformBackups,
    metrics: &Metrics,
    backups: &Api<StoreBackup>,
    b: &StoreBackup,
) -> anyhow::Result<()> {
    let name = b.name_any();
    if b.meta().deletion_timestamp.is_some() {
        return cleanup(client, platform, backups, b).await;
    }
    if !b.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = b.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
        backups
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let status = b.status.clone().unwrap_or_default();
    if status.phase.is_some_and(BackupPhase::is_finished) {
        return Ok(());
    }
    let (Ok(backup_id), Ok(store_id)) = (BackupId::parse(&name), StoreId::parse(&b.spec.store_id))
    else {
        return fail(
            metrics,
            backups,
            &name,
            status,
            "the object's name is not a backup id, or its storeId not a store id".into(),
        )
        .await;
    };
    let jobs = Api::<Job>::namespaced(client.clone(), store_id.as_str());
    match jobs.get_opt(&name).await? {
        Some(j) => {
            judge(
                platform, metrics, backups, &name, status, &store_id, &backup_id, &j,
            )
            .await
        }
        None if status.phase == Some(BackupPhase::Running) => {
            fail(
                metrics,
                backups,
                &name,
                status,
                format!("its Job {}/{name} disappeared before it finished", store_id),
            )
            .await
        }
        None => {
            start(
                client, platform, metrics, backups, b, status, &store_id, &backup_id,
            )
            .await
        }
    }
}

// The pass's context (client, settings, metrics, API) and the backup's own parts: one more
// argument than clippy likes, and a struct for it would only be unpacked again.
#[allow(clippy::too_many_arguments)]
async fn start(
    client: &Client,
    platform: &PlatformBackups,
    metrics: &Metrics,
    backups: &Api<StoreBackup>,
    b: &StoreBackup,
    status: StoreBackupStatus,
    store_id: &StoreId,
    backup_id: &BackupId,
) -> anyhow::Result<()> {
    let name = b.name_any();
    let store = Api::<Store>::all(client.clone())
        .get_opt(store_id.as_str())
        .await?;
    let why_not = match &store {
        None => Some(format!("store {store_id} does not exist")),
        Some(s) if s.is_deleting() => Some(format!("store {store_id} is being deleted")),
        // A restore's safety backup is taken while the store shows `Restoring`, before anything
        // of it is stopped or replaced.
        Some(s)
            if s.phase() == Some(Phase::Restoring)
                && b.labels().contains_key(super::restores::LABEL_SAFETY_FOR) =>
        {
            None
        }
        Some(s) if s.phase() != Some(Phase::Ready) => Some(format!(
            "store {store_id} is not Ready ({}): back up a running store",
            s.phase().map_or("no phase yet", Phase::as_str)
        )),
        Some(_) => None,
    };
    if let Some(why) = why_not {
        return fail(metrics, backups, &name, status, why).await;
    }
    let ns = store_id.as_str();
    let component =
        |c: &str| ListParams::default().labels(&format!("app.kubernetes.io/component={c}"));
    let wordpress = Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&component("wordpress"))
        .await?
        .items;
    let mariadb = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(&component("database"))
        .await?
        .items;
    let (Some(wordpress), Some(mariadb)) = (wordpress.first(), mariadb.first()) else {
        return fail(
            metrics,
            backups,
            &name,
            status,
            format!("store {store_id} has no WordPress Deployment or MariaDB StatefulSet"),
        )
        .await;
    };
    let workload = match StoreWorkload::from_objects(wordpress, mariadb) {
        Ok(w) => w,
        Err(why) => {
            return fail(
                metrics,
                backups,
                &name,
                status,
                format!("cannot back up store {store_id}: {why}"),
            )
            .await;
        }
    };
    // A filesystem target reaches the Job through a claim the platform's operator binds in each
    // store namespace: without it the Job would wait Pending for ever, so say so at once.
    if let (super::Target::Filesystem { .. }, super::settings::JobTarget::Claim(claim)) =
        (&platform.settings.target, &platform.job_target)
    {
        let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
        if claims.get_opt(claim).await?.is_none() {
            return fail(metrics, backups,
                &name,
                status,
                format!(
                    "the backup target's PersistentVolumeClaim {claim} does not exist in namespace {ns} (docs/backups.md)"
                ),
            )
            .await;
        }
    }
    let chart_version = wordpress
        .labels()
        .get("helm.sh/chart")
        .and_then(|c| c.rsplit_once('-'))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    // The key and credentials, copied into the store's namespace for the Job (kept up to date:
    // server-side apply rewrites it if the platform's key changed).
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            job::SECRET,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(job::secret(store_id, &platform.settings)),
        )
        .await?;
    let owner = b
        .controller_owner_ref(&())
        .expect("a StoreBackup read from the API server has a uid");
    let j = job::backup_job(
        &JobParams {
            store: store_id,
            backup: backup_id,
            platform,
            chart_version: &chart_version,
            owner,
            source: None,
        },
        &workload,
    );
    match Api::<Job>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &j)
        .await
    {
        Ok(_) => {}
        // Made by this controller before a restart: same name, same backup.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(kube::Error::Api(e)) if (400..500).contains(&e.code) && e.code != 429 => {
            return fail(
                metrics,
                backups,
                &name,
                status,
                format!("the backup Job was refused: {}", e.message),
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(backup = %name, store = %store_id, "backup Job started");
    write(
        backups,
        &name,
        StoreBackupStatus {
            phase: Some(BackupPhase::Running),
            message: Some("the agent runs in the store's namespace".into()),
            job: Some(name.clone()),
            started_at: Some(Time(Timestamp::now())),
            ..status
        },
    )
    .await
}

// The pass's context (client, settings, metrics, API) and the backup's own parts: one more
// argument than clippy likes, and a struct for it would only be unpacked again.
#[allow(clippy::too_many_arguments)]
async fn judge(
    platform: &PlatformBackups,
    metrics: &Metrics,
    backups: &Api<StoreBackup>,
    name: &str,
    status: StoreBackupStatus,
    store_id: &StoreId,
    backup_id: &BackupId,
    j: &Job,
) -> anyhow::Result<()> {
    let js = j.status.clone().unwrap_or_default();
    if js.succeeded.unwrap_or(0) > 0 {
        let settings = &platform.settings;
        return match open_manifest(&settings.store, &settings.key, store_id, backup_id).await {
            Ok(m) => {
                let part = |p| m.part(p).map(|r| r.plain_bytes);
                let stored: u64 = m.parts.iter().map(|p| p.stored_bytes).sum();
                tracing::info!(backup = %name, store = %store_id, stored, "backup succeeded");
                metrics.backup_finished("success", took(&status), Some(stored));
                write(
                    backups,
                    name,
                    StoreBackupStatus {
                        phase: Some(BackupPhase::Succeeded),
                        message: None,
                        finished_at: Some(Time(Timestamp::now())),
                        stored_bytes: Some(stored),
                        database_bytes: part(PartName::Database),
                        files_bytes: part(PartName::Files),
                        size: Some(human_size(stored)),
                        ..status
                    },
                )
                .await
            }
            Err(BackupError::ManifestMissing(_)) => {
                fail(metrics, backups, name, status, NO_MANIFEST.into()).await
            }
            // The target did not answer: not the backup's fault; the next pass asks again.
            Err(e @ (BackupError::Storage { .. } | BackupError::Io { .. })) => {
                if status.message.as_deref() != Some(&format!("checking the manifest: {e}")) {
                    write(
                        backups,
                        name,
                        StoreBackupStatus {
                            message: Some(format!("checking the manifest: {e}")),
                            ..status
                        },
                    )
                    .await?;
                }
                Ok(())
            }
            Err(e) => {
                fail(
                    metrics,
                    backups,
                    name,
                    status,
                    format!("the backup's manifest was refused: {e}"),
                )
                .await
            }
        };
    }
    let failed = js
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    if js.failed.unwrap_or(0) > 0 || failed.is_some() {
        let why = failed
            .and_then(|c| c.message.clone().or(c.reason.clone()))
            .unwrap_or_else(|| "its pod failed".into());
        return fail(
            metrics,
            backups,
            name,
            status,
            format!(
                "the backup Job failed: {why} (its log: kubectl logs -n {store_id} job/{name})"
            ),
        )
        .await;
    }
    Ok(())
}

async fn cleanup(
    client: &Client,
    platform: &PlatformBackups,
    backups: &Api<StoreBackup>,
    b: &StoreBackup,
) -> anyhow::Result<()> {
    let name = b.name_any();
    if !b.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    if let (Ok(backup_id), Ok(store_id)) =
        (BackupId::parse(&name), StoreId::parse(&b.spec.store_id))
    {
        // The Job first, and only then the data: a running agent could otherwise write its
        // manifest after the folder was emptied.
        let jobs = Api::<Job>::namespaced(client.clone(), store_id.as_str());
        if jobs.get_opt(&name).await?.is_some() {
            jobs.delete(&name, &DeleteParams::foreground()).await?;
            return Ok(()); // the next pass goes on once it is gone
        }
        platform
            .settings
            .store
            .delete_backup(&store_id, &backup_id)
            .await?;
    }
    let finalizers: Vec<_> = b
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
    backups
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn fail(
    metrics: &Metrics,
    backups: &Api<StoreBackup>,
    name: &str,
    status: StoreBackupStatus,
    why: String,
) -> anyhow::Result<()> {
    tracing::warn!(backup = %name, "backup failed: {why}");
    metrics.backup_finished("failure", took(&status), None);
    write(
        backups,
        name,
        StoreBackupStatus {
            phase: Some(BackupPhase::Failed),
            message: Some(why),
            finished_at: Some(Time(Timestamp::now())),
            ..status
        },
    )
    .await
}

async fn write(
    backups: &Api<StoreBackup>,
    name: &str,
    status: StoreBackupStatus,
) -> anyhow::Result<()> {
    let mut patch = serde_json::json!({"status": status});
    // A merge patch leaves out what is absent: a backup that succeeded must not keep the message of
    // its last step ("the agent runs…"), so no message is an explicit null.
    if status.message.is_none() {
        patch["status"]["message"] = serde_json::Value::Null;
    }
    backups
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

//! The scheduler: every pass (20 s) it reads this instance's stores and backups, asks for each
//! store's scheduled backup when its slot has come ([`super::schedule`]), and deletes the backups
//! retention lets go ([`super::retention`]). Both decisions come from the objects alone (a slot's
//! backup has an id derived from the slot; retention reads phases and times), so a restarted or
//! newly elected controller takes the same ones, and never twice.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};

use super::BackupId;
use super::controller::of_instance;
use super::kind::BackupKind;
use super::retention::Entry;
use super::schedule::{self, ANNOTATION_SCHEDULE, Schedule};
use super::service::BackupService;
use super::settings::BackupPolicy;
use super::types::StoreBackup;
use crate::crd::{Phase, Store};
use crate::domain::StoreId;
use crate::storage::{Action, AuditEntry, AuditLog};
use crate::stores::to_chrono;

const PASS: Duration = Duration::from_secs(20);

/// The schedule a store runs: its own choice, else the platform's. An annotation that does not
/// name a schedule (written by hand) counts as absent, and the API never writes one.
pub fn effective(store: &Store, platform: Schedule) -> (Schedule, bool) {
    match store
        .annotations()
        .get(ANNOTATION_SCHEDULE)
        .and_then(|raw| Schedule::parse(raw))
    {
        Some(own) => (own, true),
        None => (platform, false),
    }
}

pub async fn run(
    client: Client,
    instance: String,
    policy: BackupPolicy,
    service: BackupService,
    audit: AuditLog,
) {
    loop {
        if let Err(e) = pass_at(&client, &instance, &policy, &service, &audit, Utc::now()).await {
            tracing::warn!("backup scheduler: listing: {e}");
        }
        tokio::time::sleep(PASS).await;
    }
}

/// One pass as if it were `now`: what `run` does every 20 s (public for the tests, which cannot
/// wait for a day's slot).
pub async fn pass_at(
    client: &Client,
    instance: &str,
    policy: &BackupPolicy,
    service: &BackupService,
    audit: &AuditLog,
    now: DateTime<Utc>,
) -> Result<(), kube::Error> {
    let stores = Api::<Store>::all(client.clone());
    let backups = Api::<StoreBackup>::all(client.clone());
    let s: Vec<_> = stores
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|s| s.instance() == instance)
        .collect();
    let b: Vec<_> = backups
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|b| of_instance(b, instance))
        .collect();
    pass(policy, service, &backups, audit, &s, &b, now).await;
    Ok(())
}

async fn pass(
    policy: &BackupPolicy,
    service: &BackupService,
    api: &Api<StoreBackup>,
    audit: &AuditLog,
    stores: &[Store],
    backups: &[StoreBackup],
    now: DateTime<Utc>,
) {
    let mut by_store: BTreeMap<&str, Vec<&StoreBackup>> = BTreeMap::new();
    for b in backups {
        by_store.entry(&b.spec.store_id).or_default().push(b);
    }
    let existing: BTreeSet<&str> = stores.iter().map(name).collect();

    for store in stores {
        let Some((id, slot)) = due(policy, store, by_store.get(name(store)), now) else {
            continue;
        };
        let backup = schedule::slot_backup_id(&id, slot);
        match service.ensure(&id, &backup, BackupKind::Scheduled).await {
            Ok(b) if b.spec.store_id == id.as_str() => {
                tracing::info!(store = %id, backup = %backup, "scheduled backup asked for");
                audit
                    .record(AuditEntry {
                        actor: "controller".into(),
                        action: Action::Backup,
                        store_id: Some(id.to_string()),
                        store_owner: Some(store.spec.owner.clone()),
                        outcome: "scheduled".into(),
                        detail: format!("backup {backup}"),
                        remote_addr: None,
                    })
                    .await;
            }
            // Two stores whose slot ids collide (24 bits, same minute): this one takes a random
            // id; its slot is then found through the new backup's time.
            Ok(_) => {
                let fresh = BackupId::new(slot);
                if let Err(e) = service.ensure(&id, &fresh, BackupKind::Scheduled).await {
                    tracing::warn!(store = %id, "scheduled backup: {e}");
                }
            }
            Err(e) => tracing::warn!(store = %id, "scheduled backup: {e}"),
        }
    }

    for (store, list) in &by_store {
        let entries: Vec<Entry> = list
            .iter()
            .filter_map(|b| {
                Some(Entry {
                    id: BackupId::parse(&b.name_any()).ok()?,
                    kind: BackupKind::of(b),
                    phase: b.phase(),
                    finished_at: b
                        .status
                        .as_ref()
                        .and_then(|s| s.finished_at.as_ref())
                        .and_then(to_chrono),
                })
            })
            .collect();
        let gone = !existing.contains(store);
        for id in policy.retention.expired(&entries, !gone, now) {
            match api.delete(id.as_str(), &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(store = %store, backup = %id, deleted_store = gone, "backup expired");
                    let owner = list
                        .iter()
                        .find(|b| b.name_any() == id.as_str())
                        .and_then(|b| {
                            b.annotations()
                                .get(super::service::ANNOTATION_OWNER)
                                .cloned()
                        });
                    audit
                        .record(AuditEntry {
                            actor: "controller".into(),
                            action: Action::Backup,
                            store_id: Some((*store).to_owned()),
                            store_owner: owner,
                            outcome: "expired".into(),
                            detail: format!("backup {id}"),
                            remote_addr: None,
                        })
                        .await;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => tracing::warn!(backup = %id, "deleting an expired backup: {e}"),
            }
        }
    }
}

/// Whether `store` is due for a scheduled backup now, and for which slot: a Ready store (a store
/// that is provisioning, failed, being restored or deleted waits, and its slot is taken when it is
/// Ready again within the period), whose slot came after it was created, that has no scheduled
/// backup since the slot and no backup under way.
fn due(
    policy: &BackupPolicy,
    store: &Store,
    backups: Option<&Vec<&StoreBackup>>,
    now: DateTime<Utc>,
) -> Option<(StoreId, DateTime<Utc>)> {
    // An unclaimed warm-pool store holds nobody's data; a backup of it would be listed to whoever
    // claims it, with the pool's identity in it (docs/pool.md).
    if store.is_deleting()
        || crate::pool::refill::kind_label(store).is_some()
        || store.phase() != Some(Phase::Ready)
        || super::safety_net::final_backup_of(store).is_some()
    {
        return None;
    }
    let id = StoreId::parse(name(store)).ok()?;
    let (schedule, _) = effective(store, policy.schedule);
    let slot = schedule::last_slot(schedule, &id, now)?;
    let created = store
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(to_chrono)?;
    if slot < created {
        return None;
    }
    let backups = backups.map(Vec::as_slice).unwrap_or_default();
    let busy = backups
        .iter()
        .any(|b| !b.phase().is_some_and(super::BackupPhase::is_finished));
    let taken = backups.iter().any(|b| {
        BackupKind::of(b) == BackupKind::Scheduled
            && BackupId::parse(&b.name_any()).is_ok_and(|id| id.time() >= slot)
    });
    (!busy && !taken).then_some((id, slot))
}

fn name(store: &Store) -> &str {
    store.metadata.name.as_deref().unwrap_or_default()
}

/// A store's schedule as the API shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    #[schema(example = "store-7016ff")]
    pub store_id: String,
    /// The schedule the store runs.
    pub schedule: Schedule,
    /// `store`: its own choice; `platform`: the platform's default (`--backup-schedule`).
    #[schema(example = "platform")]
    pub source: String,
    /// The platform's default, which the store runs when it has no choice of its own.
    pub platform_schedule: Schedule,
    /// When its next scheduled backup is due (none when `off`); a store that is not Ready then
    /// is backed up as soon as it is Ready again within the period.
    pub next_at: Option<DateTime<Utc>>,
    /// Retention of scheduled backups: the newest of each of this many last days...
    pub keep_daily: u32,
    /// ...and of this many last ISO weeks.
    pub keep_weekly: u32,
}

pub fn view(store: &Store, policy: &BackupPolicy, now: DateTime<Utc>) -> ScheduleView {
    let (schedule, own) = effective(store, policy.schedule);
    ScheduleView {
        store_id: name(store).to_owned(),
        schedule,
        source: if own { "store" } else { "platform" }.into(),
        platform_schedule: policy.schedule,
        next_at: StoreId::parse(name(store))
            .ok()
            .and_then(|id| schedule::next_slot(schedule, &id, now)),
        keep_daily: policy.retention.keep_daily,
        keep_weekly: policy.retention.keep_weekly,
    }
}

/// Sets (or, with `None`, clears) the store's own schedule: an annotation, so no new generation.
pub async fn set_own(
    stores: &Api<Store>,
    id: &StoreId,
    schedule: Option<Schedule>,
) -> Result<Store, kube::Error> {
    let patch = serde_json::json!({
        "metadata": { "annotations": { ANNOTATION_SCHEDULE: schedule.map(Schedule::as_str) } }
    });
    stores
        .patch(
            id.as_str(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
}

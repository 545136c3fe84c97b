//! Which finished backups the platform deletes on its own. Pure: the scheduler hands in one store's
//! backups and gets back the ones to delete; the rules are the platform's settings (`storefleet
//! serve --backup-keep-daily/--backup-keep-weekly/--backup-automatic-retention/
//! --backup-deleted-retention`):
//!
//! - **scheduled**, succeeded: the newest of each of the last `keep_daily` days that have one, and
//!   the newest of each of the last `keep_weekly` ISO weeks that have one (days and weeks in UTC);
//!   the newest success is always kept. The rest go.
//! - **scheduled**, failed: kept until a newer scheduled backup succeeded (its message says what
//!   went wrong until then), or for the automatic window.
//! - **pre-upgrade** and **safety** backups: for the automatic window after they finished.
//! - **manual** and **final** backups of a store that exists: until someone deletes them.
//! - every backup of a **deleted store**: for the deleted window after the newest of them finished
//!   (its final backup, when it had one), so a store deleted by mistake can come back as a clone.
//!
//! Unfinished backups are never deleted here.
use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};

use super::BackupId;
use super::kind::BackupKind;
use super::types::BackupPhase;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub keep_daily: u32,
    pub keep_weekly: u32,
    /// Pre-upgrade and safety backups, and failed scheduled ones.
    pub automatic: Duration,
    /// Every backup of a store that no longer exists.
    pub deleted: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_daily: 7,
            keep_weekly: 4,
            automatic: Duration::from_secs(7 * 24 * 3600),
            deleted: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One backup as retention sees it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: BackupId,
    pub kind: BackupKind,
    pub phase: Option<BackupPhase>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Retention {
    /// Of one store's backups, the ids to delete now.
    pub fn expired(
        &self,
        backups: &[Entry],
        store_exists: bool,
        now: DateTime<Utc>,
    ) -> Vec<BackupId> {
        let finished = |e: &&Entry| e.phase.is_some_and(BackupPhase::is_finished);
        let older_than = |at: Option<DateTime<Utc>>, window: Duration| {
            at.is_some_and(|at| {
                now.signed_duration_since(at)
                    .to_std()
                    .is_ok_and(|age| age > window)
            })
        };
        if !store_exists {
            let last = backups.iter().filter_map(|e| e.finished_at).max();
            if !older_than(last, self.deleted) {
                return Vec::new();
            }
            return backups
                .iter()
                .filter(finished)
                .map(|e| e.id.clone())
                .collect();
        }
        let keep = self.scheduled_to_keep(backups);
        let newest_scheduled_success = backups
            .iter()
            .filter(|e| e.kind == BackupKind::Scheduled && e.phase == Some(BackupPhase::Succeeded))
            .map(|e| e.id.time())
            .max();
        backups
            .iter()
            .filter(finished)
            .filter(|e| match (e.kind, e.phase) {
                (BackupKind::Scheduled, Some(BackupPhase::Succeeded)) => !keep.contains(&e.id),
                (BackupKind::Scheduled, _) => {
                    newest_scheduled_success.is_some_and(|t| t > e.id.time())
                        || older_than(e.finished_at, self.automatic)
                }
                (k, _) if k.is_one_off() => older_than(e.finished_at, self.automatic),
                _ => false,
            })
            .map(|e| e.id.clone())
            .collect()
    }

    fn scheduled_to_keep(&self, backups: &[Entry]) -> BTreeSet<BackupId> {
        let mut good: Vec<&Entry> = backups
            .iter()
            .filter(|e| e.kind == BackupKind::Scheduled && e.phase == Some(BackupPhase::Succeeded))
            .collect();
        good.sort_by_key(|e| std::cmp::Reverse(e.id.clone())); // newest first
        let mut keep = BTreeSet::new();
        if let Some(newest) = good.first() {
            keep.insert(newest.id.clone());
        }
        let mut newest_per = |limit: u32, bucket: &dyn Fn(DateTime<Utc>) -> (i32, u32)| {
            let mut seen = BTreeSet::new();
            for e in &good {
                if seen.len() >= limit as usize {
                    break;
                }
                // Newest first, so the first of a bucket is its newest.
                if seen.insert(bucket(e.id.time())) {
                    keep.insert(e.id.clone());
                }
            }
        };
        newest_per(self.keep_daily, &|t| (t.year(), t.ordinal()));
        newest_per(self.keep_weekly, &|t| {
            let w = t.iso_week();
            (w.year(), w.week())
        });
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as Span;

    fn now() -> DateTime<Utc> {
        "2026-12-02T12:00:00Z".parse().unwrap()
    }

    fn entry(kind: BackupKind, phase: BackupPhase, started: DateTime<Utc>) -> Entry {
        Entry {
            id: BackupId::new(started),
            kind,
            phase: Some(phase),
            finished_at: Some(started + Span::minutes(5)),
        }
    }

    fn daily_for(days: i64) -> Vec<Entry> {
        (0..days)
            .map(|d| {
                entry(
                    BackupKind::Scheduled,
                    BackupPhase::Succeeded,
                    now() - Span::days(d) - Span::hours(1),
                )
            })
            .collect()
    }

    fn kept(all: &[Entry], expired: &[BackupId]) -> Vec<i64> {
        // Which ones stay, as "days ago".
        all.iter()
            .filter(|e| !expired.contains(&e.id))
            .map(|e| (now() - e.id.time()).num_days())
            .collect()
    }

    #[test]
    fn seven_daily_and_four_weekly() {
        let all = daily_for(60);
        let expired = Retention::default().expired(&all, true, now());
        let kept = kept(&all, &expired);
        // 2026-12-02 is a Wednesday: days 0..=6 are the daily ones; the newest of the four newest
        // ISO weeks are day 0 (this week, already kept), 3 (Sunday Nov 29), 10 and 17.
        assert_eq!(kept, vec![0, 1, 2, 3, 4, 5, 6, 10, 17]);
        assert_eq!(expired.len(), 60 - kept.len());
    }

    #[test]
    fn several_a_day_keep_the_newest_of_each_day() {
        let mut all = Vec::new();
        for d in 0..3 {
            for h in [1, 4, 7] {
                all.push(entry(
                    BackupKind::Scheduled,
                    BackupPhase::Succeeded,
                    now() - Span::days(d) - Span::hours(h),
                ));
            }
        }
        let policy = Retention {
            keep_daily: 2,
            keep_weekly: 0,
            ..Retention::default()
        };
        let expired = policy.expired(&all, true, now());
        let stay: Vec<_> = all
            .iter()
            .filter(|e| !expired.contains(&e.id))
            .map(|e| e.id.clone())
            .collect();
        // Today's newest (1 h ago) and yesterday's newest (25 h ago).
        assert_eq!(stay, vec![all[0].id.clone(), all[3].id.clone()]);
    }

    #[test]
    fn the_newest_success_stays_whatever_the_settings() {
        let all = daily_for(3);
        let policy = Retention {
            keep_daily: 0,
            keep_weekly: 0,
            ..Retention::default()
        };
        assert_eq!(kept(&all, &policy.expired(&all, true, now())), vec![0]);
    }

    #[test]
    fn failures_stay_until_a_newer_success_or_the_window() {
        let failed_old = entry(
            BackupKind::Scheduled,
            BackupPhase::Failed,
            now() - Span::days(2),
        );
        let good = entry(
            BackupKind::Scheduled,
            BackupPhase::Succeeded,
            now() - Span::days(1),
        );
        let failed_new = entry(
            BackupKind::Scheduled,
            BackupPhase::Failed,
            now() - Span::hours(2),
        );
        let all = vec![failed_old.clone(), good, failed_new.clone()];
        assert_eq!(
            Retention::default().expired(&all, true, now()),
            vec![failed_old.id]
        );
        // With no success at all, a failure goes only after the window.
        let lone = vec![entry(
            BackupKind::Scheduled,
            BackupPhase::Failed,
            now() - Span::days(8),
        )];
        assert_eq!(
            Retention::default().expired(&lone, true, now()),
            vec![lone[0].id.clone()]
        );
        let recent = vec![failed_new];
        assert!(
            Retention::default()
                .expired(&recent, true, now())
                .is_empty()
        );
    }

    #[test]
    fn manual_and_final_stay_one_offs_expire_unfinished_never() {
        let manual = entry(
            BackupKind::Manual,
            BackupPhase::Succeeded,
            now() - Span::days(90),
        );
        let fin = entry(
            BackupKind::Final,
            BackupPhase::Succeeded,
            now() - Span::days(90),
        );
        let upgrade_old = entry(
            BackupKind::PreUpgrade,
            BackupPhase::Succeeded,
            now() - Span::days(8),
        );
        let safety_new = entry(
            BackupKind::Safety,
            BackupPhase::Succeeded,
            now() - Span::days(6),
        );
        let mut running = entry(
            BackupKind::Scheduled,
            BackupPhase::Running,
            now() - Span::days(30),
        );
        running.phase = Some(BackupPhase::Running);
        running.finished_at = None;
        let all = vec![manual, fin, upgrade_old.clone(), safety_new, running];
        assert_eq!(
            Retention::default().expired(&all, true, now()),
            vec![upgrade_old.id]
        );
    }

    #[test]
    fn a_deleted_stores_backups_stay_for_the_window_after_its_last() {
        let old = entry(
            BackupKind::Scheduled,
            BackupPhase::Succeeded,
            now() - Span::days(20),
        );
        let fin = entry(
            BackupKind::Final,
            BackupPhase::Succeeded,
            now() - Span::days(6),
        );
        let all = vec![old.clone(), fin.clone()];
        assert!(Retention::default().expired(&all, false, now()).is_empty());
        let later = now() + Span::days(2);
        assert_eq!(
            Retention::default().expired(&all, false, later),
            vec![old.id, fin.id]
        );
    }
}

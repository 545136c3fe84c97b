//! When a store is backed up on its own: a schedule (`off`, `hourly`, `daily`, `weekly`; the
//! platform's `--backup-schedule` for every store, a store's own choice over it) and, for each
//! store, its own minute in the period, so a fleet of 10,000 stores does not back up at once.
//!
//! Presets rather than cron expressions: the spread is the point (a cron line names one minute for
//! every store that uses it), and four words are what a shop owner chooses between. The minute is
//! a hash of the store id (SHA-256, so it stays the same across Storefleet versions and replicas).
//!
//! A scheduled backup's id is derived from its store and slot ([`slot_backup_id`]): a controller
//! killed between deciding and creating makes the same object after its restart, never a second.
use std::fmt;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BackupId;
use crate::domain::StoreId;

/// On a `Store`: its own schedule, over the platform's (an annotation, so choosing it is not a new
/// generation of the store and never upgrades its release).
pub const ANNOTATION_SCHEDULE: &str = "storefleet.dev/backup-schedule";

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// No scheduled backups (backups on request, before upgrades and restores, and on delete still
    /// happen).
    Off,
    Hourly,
    #[default]
    Daily,
    Weekly,
}

impl Schedule {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "off" => Some(Self::Off),
            "hourly" => Some(Self::Hourly),
            "daily" => Some(Self::Daily),
            "weekly" => Some(Self::Weekly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
        }
    }

    /// The period in minutes; `None` for `off`.
    fn period_minutes(self) -> Option<i64> {
        match self {
            Self::Off => None,
            Self::Hourly => Some(60),
            Self::Daily => Some(24 * 60),
            Self::Weekly => Some(7 * 24 * 60),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The store's own place in a period: minutes after the period's start (periods start at the Unix
/// epoch, so a weekly one starts on Thursdays 00:00 UTC; only the spread matters).
fn offset_minutes(store: &StoreId, period: i64) -> i64 {
    let digest = Sha256::digest(store.as_str().as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (n % period as u64) as i64
}

/// The newest time at or before `now` at which `store` is due on `schedule`.
pub fn last_slot(schedule: Schedule, store: &StoreId, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let period = schedule.period_minutes()?;
    let offset = offset_minutes(store, period);
    let minutes = now.timestamp().div_euclid(60);
    let slot = (minutes - offset).div_euclid(period) * period + offset;
    Utc.timestamp_opt(slot * 60, 0).single()
}

/// The first time after `now` at which `store` is due.
pub fn next_slot(schedule: Schedule, store: &StoreId, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let period = schedule.period_minutes()?;
    Some(last_slot(schedule, store, now)? + Duration::minutes(period))
}

/// The id of `store`'s scheduled backup for `slot`: the slot's time, then 24 bits of a hash of
/// store and slot (ids are cluster-wide names; stores due in the same minute differ in those bits).
pub fn slot_backup_id(store: &StoreId, slot: DateTime<Utc>) -> BackupId {
    let digest = Sha256::digest(format!("{store}@{}", slot.timestamp()).as_bytes());
    let raw = format!(
        "backup-{}-{:02x}{:02x}{:02x}",
        slot.format("%Y%m%d-%H%M%S"),
        digest[0],
        digest[1],
        digest[2]
    );
    BackupId::parse(&raw).expect("a slot id is a backup id")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw).unwrap().to_utc()
    }

    fn store(n: u32) -> StoreId {
        StoreId::parse(&format!("store-{n:06x}")).unwrap()
    }

    #[test]
    fn slots_are_in_the_past_and_one_period_apart() {
        let now = at("2026-12-02T10:17:42Z");
        for n in 0..200 {
            let s = store(n);
            for schedule in [Schedule::Hourly, Schedule::Daily, Schedule::Weekly] {
                let last = last_slot(schedule, &s, now).unwrap();
                let next = next_slot(schedule, &s, now).unwrap();
                assert!(
                    last <= now && now < next,
                    "{schedule} {s}: {last} {now} {next}"
                );
                assert_eq!(
                    (next - last).num_minutes(),
                    schedule.period_minutes().unwrap()
                );
                assert_eq!(last.timestamp() % 60, 0, "whole minutes");
                // The same slot for every moment until the next one.
                assert_eq!(
                    last_slot(schedule, &s, next - Duration::seconds(1)),
                    Some(last)
                );
                assert_eq!(last_slot(schedule, &s, next), Some(next));
            }
        }
        assert_eq!(last_slot(Schedule::Off, &store(1), now), None);
        assert_eq!(next_slot(Schedule::Off, &store(1), now), None);
    }

    #[test]
    fn a_fleet_is_spread_over_the_day() {
        let now = at("2026-12-02T00:00:00Z");
        let mut per_hour = [0u32; 24];
        let stores = 2400;
        for n in 0..stores {
            let slot = last_slot(Schedule::Daily, &store((n * 7919) % 0x100_0000), now).unwrap();
            per_hour[(slot.timestamp().div_euclid(3600) % 24) as usize] += 1;
        }
        // 100 per hour on average; a hash spread stays within a factor of two of that.
        assert!(
            per_hour.iter().all(|&c| (50..=150).contains(&c)),
            "{per_hour:?}"
        );
    }

    #[test]
    fn slot_ids_are_stable_backup_ids_that_differ_between_stores() {
        let slot = at("2026-12-02T03:41:00Z");
        let a = slot_backup_id(&store(1), slot);
        assert_eq!(a, slot_backup_id(&store(1), slot));
        assert!(a.as_str().starts_with("backup-20261202-034100-"), "{a}");
        assert_ne!(a, slot_backup_id(&store(2), slot));
        assert_ne!(a, slot_backup_id(&store(1), slot + Duration::days(1)));
    }

    #[test]
    fn names_round_trip() {
        for s in [
            Schedule::Off,
            Schedule::Hourly,
            Schedule::Daily,
            Schedule::Weekly,
        ] {
            assert_eq!(Schedule::parse(s.as_str()), Some(s));
        }
        assert_eq!(Schedule::parse("Daily"), None);
        assert_eq!(Schedule::parse("*/5 * * * *"), None);
    }
}

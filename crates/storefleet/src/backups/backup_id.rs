//! The backup id: `backup-YYYYMMDD-HHMMSS-` + 6 lowercase hex digits (UTC start time, then random).
//! Sorting ids sorts backups by time; the id stays a DNS label, so a future `StoreBackup` object can
//! carry it as its name; and it is one path segment of the storage layout, so it must hold no `/`.
use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize};

use super::BackupError;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BackupId(String);

impl BackupId {
    const PREFIX: &'static str = "backup-";
    const TIME_FORMAT: &'static str = "%Y%m%d-%H%M%S";

    pub fn parse(raw: &str) -> Result<Self, BackupError> {
        let invalid = || BackupError::InvalidBackupId(raw.to_owned());
        let rest = raw.strip_prefix(Self::PREFIX).ok_or_else(invalid)?;
        // "YYYYMMDD-HHMMSS" is 15 characters, then "-", then 6 hex digits.
        if rest.len() != 22 || !rest.is_ascii() || rest.as_bytes()[15] != b'-' {
            return Err(invalid());
        }
        let (time, random) = (&rest[..15], &rest[16..]);
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let time_ok = digits(&time[..8])
            && time.as_bytes()[8] == b'-'
            && digits(&time[9..])
            && NaiveDateTime::parse_from_str(time, Self::TIME_FORMAT).is_ok();
        let random_ok = random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if time_ok && random_ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid())
        }
    }

    /// A fresh id for a backup starting at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        let n: u32 = rand::rng().random_range(0..=0xff_ffff);
        Self(format!(
            "{}{}-{n:06x}",
            Self::PREFIX,
            at.format(Self::TIME_FORMAT)
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the backup started (second precision), read from the id itself.
    pub fn time(&self) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(&self.0[Self::PREFIX.len()..][..15], Self::TIME_FORMAT)
            .expect("checked when parsed")
            .and_utc()
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BackupId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_parse_and_sort_by_time() {
        let early = BackupId::new("2026-01-02T03:04:05Z".parse().unwrap());
        let late = BackupId::new("2026-11-02T03:04:05Z".parse().unwrap());
        assert!(early.as_str().starts_with("backup-20260102-030405-"));
        assert_eq!(BackupId::parse(early.as_str()).unwrap(), early);
        assert!(early < late);
        assert_eq!(
            early.time(),
            "2026-01-02T03:04:05Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "backup-",
            "backup-20260102-030405-abcde",
            "backup-20260102-030405-abcdeff",
            "backup-20260102-030405-ABCDEF",
            "backup-20261302-030405-abcdef",
            "backup-20260102-250405-abcdef",
            "backup-20260102T030405-abcdef",
            "backup-2026010-0030405-abcdef",
            "Backup-20260102-030405-abcdef",
            "backup-20260102-030405-abcdef/",
            "../backup-20260102-030405-abcdef",
            "backup-+2026012-030405-abcdef",
            "backup-20260102-030405-ab/def",
        ] {
            assert!(BackupId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(BackupId::parse("backup-20260102-030405-abcdef").is_ok());
    }
}

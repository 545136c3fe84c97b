//! Restore in place (issue 14): `POST /stores/{id}/restore` makes a `StoreRestore` object
//! ([`types`]); its [`controller`] takes the store through the steps below, each one recorded in
//! the object's status before it is taken, so a control plane killed anywhere picks up where it
//! stood ([`service`] is the API's side):
//!
//! 1. `BackingUp`: the store shows `Restoring`; a safety backup (a `StoreBackup`, its id written
//!    first) must succeed, or the restore ends `Failed` with nothing changed;
//! 2. `Stopping`: WordPress scaled to 0 (its replica count kept in the status), and no pod left;
//! 3. `Restoring`: the agent's restore Job (`backup-agent restore`: it checks the whole backup before
//!    it changes anything); it must end well *and* say so in its termination message;
//! 4. `RollingBack`, only when step 3 failed: the same Job with the safety backup;
//! 5. `Starting`: WordPress back to its replicas, Ready; the store Ready again; the restore
//!    `Succeeded`, or `Failed` with the reason and the safety backup named.
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{BackupError, BackupId};

pub mod controller;
pub mod service;
pub mod types;

pub use types::{RestorePhase, StoreRestore, StoreRestoreSpec, StoreRestoreStatus};

/// The label a safety backup carries: the restore it was taken for. The backup controller backs a
/// store up while it is `Restoring` only for such a backup.
pub const LABEL_SAFETY_FOR: &str = "storefleet.dev/safety-for";

/// A restore's id: `restore-YYYYMMDD-HHMMSS-` and 6 lowercase hex digits (UTC time it was asked
/// for, then random), like a backup id, so restores sort by time and the id is a DNS label (the
/// object's and its Jobs' names).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RestoreId(String);

impl RestoreId {
    const PREFIX: &'static str = "restore-";

    pub fn new(at: DateTime<Utc>) -> Self {
        let backup = BackupId::new(at);
        let rest = backup
            .as_str()
            .strip_prefix("backup-")
            .expect("a backup id starts with backup-");
        Self(format!("{}{rest}", Self::PREFIX))
    }

    /// Same shape as a backup id, behind another prefix.
    pub fn parse(raw: &str) -> Result<Self, BackupError> {
        let rest = raw
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| BackupError::InvalidBackupId(raw.to_owned()))?;
        BackupId::parse(&format!("backup-{rest}"))
            .map(|_| Self(raw.to_owned()))
            .map_err(|_| BackupError::InvalidBackupId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Job that restores the safety backup after a failed restore.
    pub fn rollback_job(&self) -> String {
        format!("{}-rollback", self.0)
    }
}

impl fmt::Display for RestoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_backup_ids() {
        let id = RestoreId::new(Utc::now());
        assert!(id.as_str().starts_with("restore-"));
        assert_eq!(RestoreId::parse(id.as_str()).unwrap(), id);
        assert!(id.rollback_job().len() <= 63);
        for bad in [
            "backup-20261201-221500-3fa2c1",
            "restore-20261301-221500-3fa2c1",
            "restore-20261201-221500-3FA2C1",
            "restore-",
        ] {
            assert!(RestoreId::parse(bad).is_err(), "{bad}");
        }
    }
}

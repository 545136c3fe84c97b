//! Why a backup was taken, as a label on its `StoreBackup` (`kubectl get storebackups -l
//! storefleet.dev/backup-kind=final`). Retention ([`super::retention`]) keeps each kind its own way.
use serde::Serialize;

use super::types::StoreBackup;
use kube::ResourceExt;

pub const LABEL_KIND: &str = "storefleet.dev/backup-kind";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    /// Asked for (`POST /stores/{id}/backups`, "Back up now"): kept until someone deletes it.
    Manual,
    /// By the store's schedule: kept by the daily/weekly rule.
    Scheduled,
    /// Before a fleet rollout upgrades the store.
    PreUpgrade,
    /// Before a restore replaces the store's data.
    Safety,
    /// Before the store is deleted: what brings a store deleted by mistake back.
    Final,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Scheduled => "scheduled",
            Self::PreUpgrade => "pre-upgrade",
            Self::Safety => "safety",
            Self::Final => "final",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [
            Self::Manual,
            Self::Scheduled,
            Self::PreUpgrade,
            Self::Safety,
            Self::Final,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
    }

    /// The backup's kind from its label. Backups made before kinds existed carry none: a restore's
    /// safety backup is known by its other label, anything else counts as asked for (kept).
    pub fn of(b: &StoreBackup) -> Self {
        match b.labels().get(LABEL_KIND).and_then(|k| Self::parse(k)) {
            Some(kind) => kind,
            None if b.labels().contains_key(super::restores::LABEL_SAFETY_FOR) => Self::Safety,
            None => Self::Manual,
        }
    }

    /// Taken by the platform on its own for one occasion, and kept for the platform's window.
    pub fn is_one_off(self) -> bool {
        matches!(self, Self::PreUpgrade | Self::Safety)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backups::types::StoreBackupSpec;

    fn labelled(labels: &[(&str, &str)]) -> StoreBackup {
        let mut b = StoreBackup::new(
            "backup-20261202-030000-abcdef",
            StoreBackupSpec {
                store_id: "store-000001".into(),
            },
        );
        for (k, v) in labels {
            b.labels_mut().insert((*k).into(), (*v).into());
        }
        b
    }

    #[test]
    fn kinds_come_from_labels_and_unlabelled_ones_are_kept() {
        assert_eq!(BackupKind::of(&labelled(&[])), BackupKind::Manual);
        assert_eq!(
            BackupKind::of(&labelled(&[(LABEL_KIND, "final")])),
            BackupKind::Final
        );
        assert_eq!(
            BackupKind::of(&labelled(&[(LABEL_KIND, "pre-upgrade")])),
            BackupKind::PreUpgrade
        );
        assert_eq!(
            BackupKind::of(&labelled(&[(
                crate::backups::restores::LABEL_SAFETY_FOR,
                "restore-20261202-030000-abcdef"
            )])),
            BackupKind::Safety
        );
        // An unknown value (a newer Storefleet's kind) is kept, never expired by a rule it lacks.
        assert_eq!(
            BackupKind::of(&labelled(&[(LABEL_KIND, "hourly-snapshot")])),
            BackupKind::Manual
        );
    }
}

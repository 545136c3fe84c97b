//! The rule for a store's volumes: a plan may grow them, never shrink them (Kubernetes cannot shrink
//! a PersistentVolumeClaim, and a smaller volume would lose data), and may grow them only where the
//! StorageClass allows expansion. Pure functions over what the cluster says; `cluster.rs` reads it.
use std::fmt;

use super::{Plan, StorageSize};

/// The two volumes of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Volume {
    /// `/var/www/html`: PVC `<id>-wordpress`, from the chart (helm owns it).
    WordpressFiles,
    /// `/var/lib/mysql`: PVC `data-<id>-mariadb-0`, made by the StatefulSet from its
    /// volumeClaimTemplate.
    DatabaseData,
}

impl Volume {
    pub const ALL: [Volume; 2] = [Volume::WordpressFiles, Volume::DatabaseData];

    pub fn claim_name(self, store_id: &str) -> String {
        match self {
            Volume::WordpressFiles => format!("{store_id}-wordpress"),
            Volume::DatabaseData => format!("data-{store_id}-mariadb-0"),
        }
    }

    pub fn planned(self, plan: &Plan) -> &StorageSize {
        match self {
            Volume::WordpressFiles => &plan.wordpress.storage,
            Volume::DatabaseData => &plan.mariadb.storage,
        }
    }
}

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Volume::WordpressFiles => "the WordPress files volume",
            Volume::DatabaseData => "the MariaDB data volume",
        })
    }
}

/// A StorageClass as far as growing goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassInfo {
    pub name: String,
    pub allows_expansion: bool,
}

/// One of the store's PVCs as the API server has it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExistingVolume {
    pub volume: Volume,
    pub claim: String,
    /// `spec.resources.requests.storage`: what was asked for (and last grown to).
    pub size: StorageSize,
    /// The class the claim uses (its own, or the cluster default when it names none); `None`: no
    /// class at all (a statically bound volume), which cannot be grown.
    pub class: Option<ClassInfo>,
}

/// Why a plan cannot be applied to a store as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VolumeRefusal {
    #[error(
        "plan `{plan}` would shrink {volume} (PVC {claim}) from {current} to {requested}; volumes can only grow"
    )]
    Shrink {
        plan: String,
        volume: Volume,
        claim: String,
        current: StorageSize,
        requested: StorageSize,
    },
    #[error(
        "plan `{plan}` would grow {volume} (PVC {claim}) from {current} to {requested}, but {}",
        match class { Some(c) => format!("its StorageClass `{c}` does not allow volume expansion (allowVolumeExpansion is not true)"), None => "it has no StorageClass, so it cannot be expanded".to_owned() }
    )]
    NotExpandable {
        plan: String,
        volume: Volume,
        claim: String,
        current: StorageSize,
        requested: StorageSize,
        class: Option<String>,
    },
}

/// Whether `plan` fits the store's volumes: every volume stays or grows, and grows only on a class
/// that allows it. Shrinks are reported first (they are wrong whatever the class). A volume that does
/// not exist yet has nothing to keep: it is made at the plan's size.
pub fn check_change(
    plan_name: &str,
    plan: &Plan,
    existing: &[ExistingVolume],
) -> Result<(), Box<VolumeRefusal>> {
    for v in existing {
        let requested = v.volume.planned(plan);
        if *requested < v.size {
            return Err(Box::new(VolumeRefusal::Shrink {
                plan: plan_name.to_owned(),
                volume: v.volume,
                claim: v.claim.clone(),
                current: v.size.clone(),
                requested: requested.clone(),
            }));
        }
    }
    for v in existing {
        let requested = v.volume.planned(plan);
        let can_grow = v.class.as_ref().is_some_and(|c| c.allows_expansion);
        if *requested > v.size && !can_grow {
            return Err(Box::new(VolumeRefusal::NotExpandable {
                plan: plan_name.to_owned(),
                volume: v.volume,
                claim: v.claim.clone(),
                current: v.size.clone(),
                requested: requested.clone(),
                class: v.class.as_ref().map(|c| c.name.clone()),
            }));
        }
    }
    Ok(())
}

/// The sizes the controller releases a store with.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseSizes {
    /// `wordpress.persistence.size`: helm patches the PVC it owns to this.
    pub wordpress: StorageSize,
    /// `mariadb.persistence.size`, the StatefulSet's volumeClaimTemplate: immutable once the
    /// StatefulSet exists (an upgrade that changes it fails), so it stays what it was installed with.
    pub database_template: StorageSize,
    /// What the MariaDB PVC should request: the controller grows the PVC itself to this.
    pub database: StorageSize,
}

/// What the cluster has of a store's volumes, for the controller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub wordpress: Option<StorageSize>,
    pub database: Option<StorageSize>,
    /// The size in the existing StatefulSet's volumeClaimTemplate.
    pub database_template: Option<StorageSize>,
}

/// The plan's sizes, never below what exists: the API refuses shrinking plans, but a Store written
/// with kubectl (or a platform whose plan table got smaller) must not make helm try to shrink a PVC.
pub fn release_sizes(plan: &Plan, observed: &Observed) -> ReleaseSizes {
    let at_least = |planned: &StorageSize, existing: &Option<StorageSize>| match existing {
        Some(e) if e > planned => e.clone(),
        _ => planned.clone(),
    };
    ReleaseSizes {
        wordpress: at_least(&plan.wordpress.storage, &observed.wordpress),
        database_template: observed
            .database_template
            .clone()
            .unwrap_or_else(|| plan.mariadb.storage.clone()),
        database: at_least(&plan.mariadb.storage, &observed.database),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::PlanTable;

    fn size(s: &str) -> StorageSize {
        StorageSize::parse(s).unwrap()
    }

    fn existing(volume: Volume, s: &str, class: Option<(&str, bool)>) -> ExistingVolume {
        ExistingVolume {
            volume,
            claim: volume.claim_name("store-00aa11"),
            size: size(s),
            class: class.map(|(name, allows_expansion)| ClassInfo {
                name: name.into(),
                allows_expansion,
            }),
        }
    }

    fn plan(name: &str) -> Plan {
        let table = PlanTable::builtin();
        table.lookup(name).unwrap().1.clone()
    }

    #[test]
    fn growing_on_an_expandable_class_and_staying_are_fine() {
        let volumes = [
            existing(Volume::WordpressFiles, "2Gi", Some(("fast", true))),
            existing(Volume::DatabaseData, "2Gi", Some(("fast", true))),
        ];
        assert_eq!(check_change("medium", &plan("medium"), &volumes), Ok(()));
        // The same sizes need no expansion, whatever the class.
        let fixed = [existing(
            Volume::WordpressFiles,
            "2048Mi",
            Some(("standard", false)),
        )];
        assert_eq!(check_change("small", &plan("small"), &fixed), Ok(()));
        // Nothing exists yet: nothing to keep.
        assert_eq!(check_change("small", &plan("small"), &[]), Ok(()));
    }

    #[test]
    fn shrinking_is_refused_naming_the_volume_and_both_sizes() {
        let volumes = [
            existing(Volume::WordpressFiles, "5Gi", Some(("fast", true))),
            existing(Volume::DatabaseData, "5Gi", Some(("fast", true))),
        ];
        let e = check_change("small", &plan("small"), &volumes).unwrap_err();
        assert!(matches!(
            *e,
            VolumeRefusal::Shrink {
                volume: Volume::WordpressFiles,
                ..
            }
        ));
        let text = e.to_string();
        for part in [
            "WordPress files",
            "store-00aa11-wordpress",
            "from 5Gi to 2Gi",
        ] {
            assert!(text.contains(part), "{text}");
        }
        // Only the database is bigger: it is the one named.
        let volumes = [
            existing(Volume::WordpressFiles, "2Gi", Some(("fast", true))),
            existing(Volume::DatabaseData, "3Gi", Some(("fast", true))),
        ];
        let e = check_change("small", &plan("small"), &volumes).unwrap_err();
        assert!(
            e.to_string()
                .contains("MariaDB data volume (PVC data-store-00aa11-mariadb-0) from 3Gi to 2Gi"),
            "{e}"
        );
    }

    #[test]
    fn a_shrink_is_told_before_a_class_problem() {
        let volumes = [
            existing(Volume::WordpressFiles, "1Gi", Some(("standard", false))),
            existing(Volume::DatabaseData, "5Gi", Some(("standard", false))),
        ];
        let e = check_change("small", &plan("small"), &volumes).unwrap_err();
        assert!(
            matches!(
                *e,
                VolumeRefusal::Shrink {
                    volume: Volume::DatabaseData,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn growing_without_expansion_is_refused_naming_the_class() {
        let volumes = [
            existing(Volume::WordpressFiles, "2Gi", Some(("standard", false))),
            existing(Volume::DatabaseData, "2Gi", Some(("standard", false))),
        ];
        let e = check_change("medium", &plan("medium"), &volumes).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("StorageClass `standard`"), "{text}");
        assert!(text.contains("from 2Gi to 5Gi"), "{text}");
        let classless = [existing(Volume::DatabaseData, "2Gi", None)];
        let e = check_change("medium", &plan("medium"), &classless).unwrap_err();
        assert!(e.to_string().contains("no StorageClass"), "{e}");
    }

    #[test]
    fn releases_never_shrink_and_keep_the_template() {
        let medium = plan("medium");
        // A new store: everything at the plan's size.
        let fresh = release_sizes(&medium, &Observed::default());
        assert_eq!(
            (
                fresh.wordpress.as_str(),
                fresh.database_template.as_str(),
                fresh.database.as_str()
            ),
            ("5Gi", "5Gi", "5Gi")
        );
        // Installed small, now medium: the template stays, the PVCs grow.
        let grown = release_sizes(
            &medium,
            &Observed {
                wordpress: Some(size("2Gi")),
                database: Some(size("2Gi")),
                database_template: Some(size("2Gi")),
            },
        );
        assert_eq!(
            (
                grown.wordpress.as_str(),
                grown.database_template.as_str(),
                grown.database.as_str()
            ),
            ("5Gi", "2Gi", "5Gi")
        );
        // A plan smaller than the volumes (kubectl, or a smaller table): the volumes stay.
        let kept = release_sizes(
            &plan("small"),
            &Observed {
                wordpress: Some(size("5Gi")),
                database: Some(size("20Gi")),
                database_template: Some(size("5Gi")),
            },
        );
        assert_eq!(
            (
                kept.wordpress.as_str(),
                kept.database_template.as_str(),
                kept.database.as_str()
            ),
            ("5Gi", "5Gi", "20Gi")
        );
    }
}

//! The Job that runs the agent in a store's namespace, built from what the store's own workloads
//! say (so it reaches the database and files exactly as WordPress does), and the Secret that gives
//! it the platform key and the target's credentials. Pure functions: the controller reads the
//! objects and creates what these return.
//!
//! Two containers, no new image: an init container of the platform image copies the `storefleet`
//! binary into an `emptyDir` (`backup-agent install`; the platform image has no shell, no `cp`), and
//! the agent then runs in the store's own MariaDB image, which has `mariadb-dump` and `mariadb` of
//! the server's own version.
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    PersistentVolumeClaimVolumeSource, PodAffinity, PodAffinityTerm, PodSecurityContext, PodSpec,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use super::settings::{BackupSettings, JobTarget, PlatformBackups};
use super::{BackupId, Target};
use crate::domain::StoreId;

/// The Secret in each store namespace the agent reads the key (and S3 credentials) from.
pub const SECRET: &str = "storefleet-backup";
pub const SECRET_KEY: &str = "key";
pub const SECRET_AWS_ID: &str = "aws-access-key-id";
pub const SECRET_AWS_SECRET: &str = "aws-secret-access-key";
/// Where the wp-content volume, the backup folder and the agent binary are mounted in the Job.
const WORDPRESS_MOUNT: &str = "/wordpress";
const BACKUPS_MOUNT: &str = "/backups";
const AGENT_DIR: &str = "/agent";
pub const LABEL_BACKUP: &str = "storefleet.dev/backup";
/// On a restore Job: its name (the restore's id, or its rollback's).
pub const LABEL_RESTORE: &str = "storefleet.dev/restore";

/// What the Job takes from the store's workloads.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreWorkload {
    /// The MariaDB container's image: it has the client programs, of the server's version.
    pub mariadb_image: String,
    /// WordPress's database settings, as `STOREFLEET_DB_*` (values or the same Secret references).
    pub db_env: Vec<EnvVar>,
    /// The volume mounted at WordPress's document root (wp-content is its subfolder).
    pub wordpress_claim: String,
    /// WordPress's pod labels: the Job runs on the same node (the volume is ReadWriteOnce).
    pub wordpress_labels: BTreeMap<String, String>,
    /// WordPress's pod security context: the agent reads and writes the files as WordPress does.
    pub security: Option<PodSecurityContext>,
}

impl StoreWorkload {
    /// Reads the WordPress Deployment and MariaDB StatefulSet of the store chart.
    pub fn from_objects(wordpress: &Deployment, mariadb: &StatefulSet) -> Result<Self, String> {
        let pod = wordpress
            .spec
            .template
            .spec
            .as_ref()
            .ok_or("the WordPress Deployment has no pod spec")?;
        let container = pod
            .containers
            .iter()
            .find(|c| {
                c.env
                    .iter()
                    .flatten()
                    .any(|e| e.name == "WORDPRESS_DB_HOST")
            })
            .ok_or("no WordPress container with WORDPRESS_DB_HOST")?;
        let mut db_env = Vec::new();
        for (from, to) in [
            ("WORDPRESS_DB_HOST", "STOREFLEET_DB_HOST"),
            ("WORDPRESS_DB_NAME", "STOREFLEET_DB_NAME"),
            ("WORDPRESS_DB_USER", "STOREFLEET_DB_USER"),
            ("WORDPRESS_DB_PASSWORD", "STOREFLEET_DB_PASSWORD"),
        ] {
            let e = container
                .env
                .iter()
                .flatten()
                .find(|e| e.name == from)
                .ok_or_else(|| format!("the WordPress container has no {from}"))?;
            db_env.push(EnvVar {
                name: to.into(),
                ..e.clone()
            });
        }
        let root = container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == "/var/www/html")
            .ok_or("the WordPress container mounts nothing at /var/www/html")?;
        let wordpress_claim = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == root.name)
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.clone())
            .ok_or("WordPress's document root is not a PersistentVolumeClaim")?;
        let mariadb_image = mariadb
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone())
            .ok_or("the MariaDB StatefulSet names no image")?;
        let wordpress_labels = wordpress
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        Ok(Self {
            mariadb_image,
            db_env,
            wordpress_claim,
            wordpress_labels,
            security: pod.security_context.clone(),
        })
    }
}

/// What a backup Job needs besides the store's workloads.
pub struct JobParams<'a> {
    pub store: &'a StoreId,
    pub backup: &'a BackupId,
    pub platform: &'a PlatformBackups,
    pub chart_version: &'a str,
    pub owner: OwnerReference,
    /// A clone's restore: the store `backup` is of (not `store`).
    pub source: Option<&'a StoreId>,
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from_secret(name: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: SECRET.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    }
}

/// Requests and limits for each container: set, so the Job is admitted under the store's
/// ResourceQuota (which counts requests and limits), and small: the agent streams, its memory
/// stays around 20 MiB whatever the store's size (docs/backups.md).
fn resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.into());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q("50m")),
            ("memory".into(), q("64Mi")),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), q("500m")),
            ("memory".into(), q("256Mi")),
        ])),
        ..Default::default()
    }
}

/// The `restricted` Pod Security standard, which store namespaces enforce.
fn locked_down() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn claim(name: &str, claim_name: &str) -> Volume {
    Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim_name.into(),
            read_only: None,
        }),
        ..Default::default()
    }
}

/// What an agent Job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run<'a> {
    Backup,
    /// Restore `p.backup` into the store, as the Job `job` (the restore's id, or its rollback's).
    Restore {
        job: &'a str,
    },
}

/// Where the agent's restore writes its one-line result: the controller reads it from the pod's
/// status, so a Job that "succeeded" without the agent saying so (the test cluster's kubelet
/// stand-in ends pods without running them) is not taken for a restore.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// The backup Job: named like the backup, so a restarted controller finds the one it made.
pub fn backup_job(p: &JobParams<'_>, w: &StoreWorkload) -> Job {
    agent_job(p, w, Run::Backup)
}

/// A restore Job, named `job` (the restore's id, or its rollback's): `p.backup` is the backup it
/// puts back. No affinity to WordPress's pod: WordPress is stopped (its volume is free) while it runs.
pub fn restore_job(p: &JobParams<'_>, w: &StoreWorkload, job: &str) -> Job {
    agent_job(p, w, Run::Restore { job })
}

fn agent_job(p: &JobParams<'_>, w: &StoreWorkload, run: Run<'_>) -> Job {
    let mut envs = vec![
        env("STOREFLEET_STORE_ID", p.store.as_str()),
        env("STOREFLEET_BACKUP_ID", p.backup.as_str()),
        env("STOREFLEET_CHART_VERSION", p.chart_version),
        env(
            "STOREFLEET_WP_CONTENT",
            format!("{WORDPRESS_MOUNT}/wp-content"),
        ),
        env(
            "STOREFLEET_BACKUP_PREFIX",
            p.platform.settings.prefix.clone(),
        ),
        from_secret(super::settings::KEY_ENV, SECRET_KEY),
    ];
    if let Some(source) = p.source {
        envs.push(env("STOREFLEET_SOURCE_STORE_ID", source.as_str()));
    }
    envs.extend(w.db_env.iter().cloned());
    let mut mounts = vec![
        mount("agent", AGENT_DIR),
        mount("wordpress", WORDPRESS_MOUNT),
        mount("tmp", "/tmp"),
    ];
    let mut volumes = vec![
        empty_dir("agent"),
        claim("wordpress", &w.wordpress_claim),
        empty_dir("tmp"),
    ];
    match (&p.platform.settings.target, &p.platform.job_target) {
        (Target::S3(s3), _) => {
            envs.push(env("STOREFLEET_BACKUP_S3_BUCKET", s3.bucket.clone()));
            envs.push(env("STOREFLEET_BACKUP_S3_REGION", s3.region.clone()));
            if let Some(endpoint) = &s3.endpoint {
                envs.push(env("STOREFLEET_BACKUP_S3_ENDPOINT", endpoint.clone()));
            }
            envs.push(env(
                "STOREFLEET_BACKUP_S3_PATH_STYLE",
                s3.path_style.to_string(),
            ));
            envs.push(env(
                "STOREFLEET_BACKUP_S3_ALLOW_HTTP",
                s3.allow_http.to_string(),
            ));
            if p.platform.settings.s3_credentials.is_some() {
                envs.push(from_secret("AWS_ACCESS_KEY_ID", SECRET_AWS_ID));
                envs.push(from_secret("AWS_SECRET_ACCESS_KEY", SECRET_AWS_SECRET));
            }
        }
        (Target::Filesystem { .. }, JobTarget::Claim(claim_name)) => {
            envs.push(env("STOREFLEET_BACKUP_DIR", BACKUPS_MOUNT));
            mounts.push(mount("backups", BACKUPS_MOUNT));
            volumes.push(claim("backups", claim_name));
        }
    }
    let mut labels = BTreeMap::from([
        (
            crate::crd::LABEL_MANAGED_BY.to_owned(),
            crate::crd::MANAGED_BY.to_owned(),
        ),
        (crate::crd::LABEL_STORE_ID.to_owned(), p.store.to_string()),
        (LABEL_BACKUP.to_owned(), p.backup.to_string()),
    ]);
    let (name, container, affinity) = match run {
        Run::Backup => (
            p.backup.to_string(),
            "backup",
            !w.wordpress_labels.is_empty(),
        ),
        Run::Restore { job } => {
            labels.insert(LABEL_RESTORE.to_owned(), job.to_owned());
            (job.to_owned(), "restore", false)
        }
    };
    let agent = format!("{AGENT_DIR}/storefleet");
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(p.store.to_string()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![p.owner.clone()]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // One try: a failed agent has cleaned up after itself and says why in its log; the
            // backup is then Failed, and a new one is a new object.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(6 * 3600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    security_context: w.security.clone(),
                    affinity: affinity.then(|| Affinity {
                        pod_affinity: Some(PodAffinity {
                            required_during_scheduling_ignored_during_execution: Some(vec![
                                PodAffinityTerm {
                                    label_selector: Some(LabelSelector {
                                        match_labels: Some(w.wordpress_labels.clone()),
                                        ..Default::default()
                                    }),
                                    topology_key: "kubernetes.io/hostname".into(),
                                    ..Default::default()
                                },
                            ]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    init_containers: Some(vec![Container {
                        name: "install-agent".into(),
                        image: Some(p.platform.agent_image.clone()),
                        command: Some(vec!["/usr/local/bin/storefleet".into()]),
                        args: Some(
                            ["backup-agent", "install", "--to", agent.as_str()]
                                .map(String::from)
                                .to_vec(),
                        ),
                        volume_mounts: Some(vec![mount("agent", AGENT_DIR)]),
                        resources: Some(resources()),
                        security_context: Some(locked_down()),
                        ..Default::default()
                    }]),
                    containers: vec![Container {
                        name: container.into(),
                        image: Some(w.mariadb_image.clone()),
                        command: Some(vec![agent]),
                        args: Some(vec!["backup-agent".into(), container.into()]),
                        termination_message_path: Some(TERMINATION_LOG.into()),
                        env: Some(envs),
                        volume_mounts: Some(mounts),
                        resources: Some(resources()),
                        security_context: Some(locked_down()),
                        ..Default::default()
                    }],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The Secret the Job reads: the platform key, and the S3 credentials when the target has them.
pub fn secret(store: &StoreId, settings: &BackupSettings) -> Secret {
    let mut data = BTreeMap::from([(
        SECRET_KEY.to_owned(),
        ByteString(settings.key_text.expose().as_bytes().to_vec()),
    )]);
    if let Some(c) = &settings.s3_credentials {
        data.insert(
            SECRET_AWS_ID.into(),
            ByteString(c.access_key_id.clone().into_bytes()),
        );
        data.insert(
            SECRET_AWS_SECRET.into(),
            ByteString(c.secret_access_key.clone().into_bytes()),
        );
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.into()),
            namespace: Some(store.to_string()),
            labels: Some(BTreeMap::from([(
                crate::crd::LABEL_MANAGED_BY.to_owned(),
                crate::crd::MANAGED_BY.to_owned(),
            )])),
            ..Default::default()
        },
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backups::settings::{BackupArgs, PlatformBackupArgs};

    /// Every agent Job's pod, a backup's and a restore's alike, carries `storefleet.dev/backup`: the
    /// key the store chart's `<release>-allow-backup-target` selects on (with `Exists`), so an S3
    /// target is reachable from each of them. WordPress's pods never carry it.
    #[test]
    fn every_agent_pod_has_the_label_the_backup_target_policy_selects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "7f".repeat(32)).unwrap();
        let platform = PlatformBackupArgs {
            target: BackupArgs {
                backup_dir: Some(dir.path().join("backups")),
                backup_key_file: Some(dir.path().join("key")),
                ..Default::default()
            },
            backup_agent_image: Some("registry.example/storefleet:test".into()),
            backup_job_claim: "storefleet-backups".into(),
            ..Default::default()
        }
        .platform()
        .unwrap()
        .unwrap();
        let store = StoreId::parse("store-00aa11").unwrap();
        let backup = BackupId::parse("backup-20260101-000000-abcdef").unwrap();
        let params = JobParams {
            store: &store,
            backup: &backup,
            platform: &platform,
            chart_version: "0.1.0",
            owner: OwnerReference::default(),
            source: None,
        };
        let wordpress_labels = BTreeMap::from([(
            "app.kubernetes.io/component".to_owned(),
            "wordpress".to_owned(),
        )]);
        let workload = StoreWorkload {
            mariadb_image: "mariadb:11".into(),
            db_env: Vec::new(),
            wordpress_claim: "store-00aa11-wordpress".into(),
            wordpress_labels: wordpress_labels.clone(),
            security: None,
        };
        let pod_labels = |j: Job| j.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        for (what, labels) in [
            ("backup", pod_labels(backup_job(&params, &workload))),
            (
                "restore",
                pod_labels(restore_job(
                    &params,
                    &workload,
                    "restore-20260101-000000-abcdef",
                )),
            ),
        ] {
            assert_eq!(
                labels.get(LABEL_BACKUP).map(String::as_str),
                Some(backup.as_str()),
                "{what}: {labels:?}"
            );
        }
        assert!(!wordpress_labels.contains_key(LABEL_BACKUP));
        let policy = include_str!("../../../../charts/store/templates/networkpolicy.yaml");
        assert!(
            policy.contains(&format!(
                "      - key: {LABEL_BACKUP}\n        operator: Exists\n"
            )),
            "the store chart's backup target policy no longer selects on {LABEL_BACKUP}"
        );
    }
}

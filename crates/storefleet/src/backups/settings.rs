//! Where the platform keeps backups and which key seals them, from flags or `STOREFLEET_BACKUP_*`
//! environment variables. The same flags serve `storefleet serve` (the controller opens manifests to
//! check a finished backup) and `storefleet backup-agent` (the Job that writes and reads backups), so
//! the two can never disagree on a name.
//!
//! Secrets never travel as flag values, which `ps` and a Pod's spec show: the key comes from a file
//! (a mounted Secret) or `STOREFLEET_BACKUP_KEY` (an env var from a Secret); S3 credentials come from
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, which `object_store` reads itself.
use std::path::PathBuf;

use anyhow::{Context, bail, ensure};
use clap::Args;
use serde::Serialize;

use super::{BackupStore, PlatformKey, S3Credentials, S3Target, Target};
use crate::cidr::Cidr;

/// The environment variable holding the platform key itself (a Secret's key, as `env.valueFrom`).
pub const KEY_ENV: &str = "STOREFLEET_BACKUP_KEY";

#[derive(Args, Clone, Debug, Default)]
pub struct BackupArgs {
    /// Filesystem target: a folder (a PersistentVolume) holding every backup. Exclusive with
    /// --backup-s3-bucket.
    #[arg(
        long,
        env = "STOREFLEET_BACKUP_DIR",
        conflicts_with = "backup_s3_bucket"
    )]
    pub backup_dir: Option<PathBuf>,
    /// S3 target: the bucket (any S3-compatible server; credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, or the usual AWS sources).
    #[arg(long, env = "STOREFLEET_BACKUP_S3_BUCKET")]
    pub backup_s3_bucket: Option<String>,
    /// The S3 endpoint (`https://s3.example.net`); unset: AWS's endpoint for the region.
    #[arg(long, env = "STOREFLEET_BACKUP_S3_ENDPOINT")]
    pub backup_s3_endpoint: Option<String>,
    #[arg(long, env = "STOREFLEET_BACKUP_S3_REGION", default_value = "us-east-1")]
    pub backup_s3_region: String,
    /// `endpoint/bucket/key` addressing (MinIO, Garage and most self-hosted servers).
    #[arg(long, env = "STOREFLEET_BACKUP_S3_PATH_STYLE")]
    pub backup_s3_path_style: bool,
    /// Plain HTTP to the endpoint (an in-cluster server; parts are encrypted before they leave).
    #[arg(long, env = "STOREFLEET_BACKUP_S3_ALLOW_HTTP")]
    pub backup_s3_allow_http: bool,
    /// A `/`-separated folder inside the target that holds every backup (empty: its root).
    #[arg(long, env = "STOREFLEET_BACKUP_PREFIX", default_value = "")]
    pub backup_prefix: String,
    /// A file holding the platform key (a mounted Secret): 32 bytes as 64 hex digits or base64.
    /// Unset: the key is read from STOREFLEET_BACKUP_KEY.
    #[arg(long, env = "STOREFLEET_BACKUP_KEY_FILE")]
    pub backup_key_file: Option<PathBuf>,
}

/// A configured, opened target and the key: what reading or writing a backup needs.
#[derive(Clone, Debug)]
pub struct BackupSettings {
    pub target: Target,
    pub prefix: String,
    pub store: BackupStore,
    pub key: std::sync::Arc<PlatformKey>,
    /// The key as its Secret holds it, for the copy the controller puts into store namespaces.
    pub key_text: KeyText,
    /// The S3 credentials this process was given (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`), for
    /// the same copy; `None`: the Job finds its own (a workload identity).
    pub s3_credentials: Option<S3Credentials>,
}

/// The key's text; never printed.
#[derive(Clone)]
pub struct KeyText(String);

impl KeyText {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyText(..)")
    }
}

/// How backup Jobs in store namespaces reach a filesystem target: a PersistentVolumeClaim of this
/// name in each store namespace, bound by the platform's operator to the same storage the
/// control plane mounts at `--backup-dir` (a claim cannot cross namespaces). S3 needs none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobTarget {
    Claim(String),
}

/// The control plane's backup configuration (`storefleet serve`).
#[derive(Args, Clone, Debug, Default)]
pub struct PlatformBackupArgs {
    #[command(flatten)]
    pub target: BackupArgs,
    /// The platform image (this binary's own): backup Jobs copy the agent from it. Required with a
    /// backup target.
    #[arg(long, env = "STOREFLEET_BACKUP_AGENT_IMAGE")]
    pub backup_agent_image: Option<String>,
    /// With --backup-dir: the PersistentVolumeClaim, in each store namespace, that backup Jobs mount
    /// as the target.
    #[arg(
        long,
        env = "STOREFLEET_BACKUP_JOB_CLAIM",
        default_value = "storefleet-backups"
    )]
    pub backup_job_claim: String,
    /// With --backup-s3-bucket: the S3 endpoint's addresses, comma-separated CIDRs
    /// (`10.0.5.20/32,192.0.2.0/24`). Each store's NetworkPolicy opens exactly these, on the
    /// endpoint's port, to its backup and restore Jobs. Unset: the endpoint's own address when it is
    /// given as one; an endpoint given by name (or AWS's, without --backup-s3-endpoint) needs them.
    #[arg(
        long,
        env = "STOREFLEET_BACKUP_S3_CIDR",
        value_delimiter = ',',
        value_parser = Cidr::parse
    )]
    pub backup_s3_cidr: Vec<Cidr>,
    /// Every store's backup schedule unless it chose its own (`off`, `hourly`, `daily`, `weekly`;
    /// each store at its own minute of the period).
    #[arg(
        long,
        env = "STOREFLEET_BACKUP_SCHEDULE",
        value_enum,
        default_value = "daily"
    )]
    pub backup_schedule: super::schedule::Schedule,
    /// Scheduled backups kept: the newest of each of this many last days that have one.
    #[arg(long, env = "STOREFLEET_BACKUP_KEEP_DAILY", default_value_t = 7)]
    pub backup_keep_daily: u32,
    /// And the newest of each of this many last ISO weeks that have one.
    #[arg(long, env = "STOREFLEET_BACKUP_KEEP_WEEKLY", default_value_t = 4)]
    pub backup_keep_weekly: u32,
    /// How long backups taken before an upgrade or a restore, and failed scheduled ones, are kept.
    #[arg(long, env = "STOREFLEET_BACKUP_AUTOMATIC_RETENTION", default_value = "168h", value_parser = crate::cli::parse_duration)]
    pub backup_automatic_retention: std::time::Duration,
    /// How long a deleted store's backups (its final one among them) are kept after the last of
    /// them, so it can be brought back as a clone.
    #[arg(long, env = "STOREFLEET_BACKUP_DELETED_RETENTION", default_value = "168h", value_parser = crate::cli::parse_duration)]
    pub backup_deleted_retention: std::time::Duration,
}

/// When stores are backed up on their own and how long backups are kept: the API shows it, the
/// controller's scheduler acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupPolicy {
    pub schedule: super::schedule::Schedule,
    pub retention: super::retention::Retention,
}

impl Default for BackupPolicy {
    fn default() -> Self {
        Self {
            schedule: super::schedule::Schedule::Daily,
            retention: super::retention::Retention::default(),
        }
    }
}

/// Backups as the control plane runs them.
#[derive(Clone, Debug)]
pub struct PlatformBackups {
    pub settings: BackupSettings,
    pub agent_image: String,
    pub job_target: JobTarget,
    /// Where the Jobs connect to with an S3 target, which each store's NetworkPolicy opens to them;
    /// `None` with a filesystem target (a claim in the namespace: nothing leaves it).
    pub egress: Option<JobEgress>,
}

/// The S3 endpoint as the store namespaces' NetworkPolicy names it: its address ranges and its TCP
/// port. The store chart gets it as `networkPolicy.backupTarget` and opens exactly this to the pods
/// labelled `storefleet.dev/backup` (every backup and restore Job's), in a policy of its own
/// (`<release>-allow-backup-target`): the internet policy is WordPress's, and excludes private ranges,
/// where an S3 server of the platform's often sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEgress {
    pub cidrs: Vec<Cidr>,
    pub port: u16,
}

impl JobEgress {
    /// From the target and `--backup-s3-cidr`. NetworkPolicy names addresses, not host names: an
    /// endpoint given as an IP address is its own range; one given by name needs its ranges (resolving
    /// it here would freeze whatever DNS said at start, and hide a provider's change). The port is the
    /// endpoint URL's, else its scheme's (443, 80); AWS's own endpoint (no `--backup-s3-endpoint`) is
    /// HTTPS on 443.
    pub fn of(target: &Target, cidrs: &[Cidr]) -> anyhow::Result<Option<Self>> {
        let s3 = match target {
            Target::S3(s3) => s3,
            Target::Filesystem { .. } => {
                ensure!(
                    cidrs.is_empty(),
                    "--backup-s3-cidr goes with --backup-s3-bucket: a filesystem target's Jobs mount a \
                     claim and need no egress"
                );
                return Ok(None);
            }
        };
        let (host, ip, port) = match &s3.endpoint {
            Some(raw) => {
                let bad = || {
                    anyhow::anyhow!(
                        "--backup-s3-endpoint {raw:?} is not an http or https URL (`https://s3.example.net`)"
                    )
                };
                let url = reqwest::Url::parse(raw.trim()).map_err(|_| bad())?;
                ensure!(matches!(url.scheme(), "http" | "https"), bad());
                let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
                // An IPv6 address is written in brackets (`http://[fd00::5]:3900`).
                let ip = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .ok();
                (
                    host.to_owned(),
                    ip,
                    url.port_or_known_default().ok_or_else(bad)?,
                )
            }
            None => (format!("AWS's S3 endpoint for {}", s3.region), None, 443),
        };
        let cidrs = match (cidrs, ip) {
            ([], Some(ip)) => vec![Cidr::host(ip)],
            ([], None) => bail!(
                "--backup-s3-endpoint {host} is a name: give the addresses it resolves to with \
                 --backup-s3-cidr (STOREFLEET_BACKUP_S3_CIDR; comma-separated CIDRs; the platform \
                 chart's backups.s3.cidrs). Each store's NetworkPolicy opens exactly those, on port \
                 {port}, to its backup and restore Jobs; 0.0.0.0/0 opens every address on that port"
            ),
            (given, Some(ip)) => {
                ensure!(
                    given.iter().any(|c| c.contains(ip)),
                    "--backup-s3-cidr {} does not contain the endpoint's address {ip}",
                    list(given)
                );
                given.to_vec()
            }
            (given, None) => given.to_vec(),
        };
        Ok(Some(Self { cidrs, port }))
    }

    /// What the store chart gets under `networkPolicy.backupTarget`.
    pub fn values(&self) -> BackupTargetValues {
        BackupTargetValues {
            cidrs: self.cidrs.iter().map(Cidr::to_string).collect(),
            ports: vec![self.port],
        }
    }
}

fn list(cidrs: &[Cidr]) -> String {
    cidrs
        .iter()
        .map(Cidr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The store chart's `networkPolicy.backupTarget`: egress from backup and restore Jobs to these
/// ranges on these TCP ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupTargetValues {
    pub cidrs: Vec<String>,
    pub ports: Vec<u16>,
}

impl PlatformBackupArgs {
    pub fn policy(&self) -> BackupPolicy {
        BackupPolicy {
            schedule: self.backup_schedule,
            retention: super::retention::Retention {
                keep_daily: self.backup_keep_daily,
                keep_weekly: self.backup_keep_weekly,
                automatic: self.backup_automatic_retention,
                deleted: self.backup_deleted_retention,
            },
        }
    }

    /// `None` without a target: the platform then offers no backups (and says so).
    pub fn platform(self) -> anyhow::Result<Option<PlatformBackups>> {
        if !self.target.configured() {
            ensure!(
                self.backup_s3_cidr.is_empty(),
                "--backup-s3-cidr goes with --backup-s3-bucket"
            );
            return Ok(None);
        }
        let settings = self.target.settings()?;
        let egress = JobEgress::of(&settings.target, &self.backup_s3_cidr)?;
        let agent_image = self.backup_agent_image.context(
            "--backup-agent-image (STOREFLEET_BACKUP_AGENT_IMAGE) is required with a backup target",
        )?;
        Ok(Some(PlatformBackups {
            settings,
            agent_image,
            job_target: JobTarget::Claim(self.backup_job_claim),
            egress,
        }))
    }
}

impl BackupArgs {
    /// Whether backups are configured at all (`serve` runs without them; the agent needs them).
    pub fn configured(&self) -> bool {
        self.backup_dir.is_some() || self.backup_s3_bucket.is_some()
    }

    pub fn target(&self) -> anyhow::Result<Target> {
        match (&self.backup_dir, &self.backup_s3_bucket) {
            (Some(root), None) => Ok(Target::Filesystem {
                root: std::path::absolute(root)
                    .with_context(|| format!("--backup-dir {}", root.display()))?,
            }),
            (None, Some(bucket)) => Ok(Target::S3(S3Target {
                endpoint: self.backup_s3_endpoint.clone(),
                bucket: bucket.clone(),
                region: self.backup_s3_region.clone(),
                path_style: self.backup_s3_path_style,
                allow_http: self.backup_s3_allow_http,
                credentials: None,
            })),
            (None, None) => bail!(
                "no backup target: give --backup-dir (STOREFLEET_BACKUP_DIR) or --backup-s3-bucket (STOREFLEET_BACKUP_S3_BUCKET)"
            ),
            (Some(_), Some(_)) => bail!("--backup-dir and --backup-s3-bucket exclude each other"),
        }
    }

    fn key_text(&self) -> anyhow::Result<KeyText> {
        let raw = match &self.backup_key_file {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("reading the backup key from {}", file.display()))?,
            None => std::env::var(KEY_ENV).map_err(|_| {
                anyhow::anyhow!(
                    "no backup key: give --backup-key-file (STOREFLEET_BACKUP_KEY_FILE) or set {KEY_ENV}"
                )
            })?,
        };
        let text = raw.trim().to_owned();
        PlatformKey::parse(&text)?;
        Ok(KeyText(text))
    }

    pub fn key(&self) -> anyhow::Result<PlatformKey> {
        Ok(PlatformKey::parse(self.key_text()?.expose())?)
    }

    /// Target and key, checked and opened.
    pub fn settings(&self) -> anyhow::Result<BackupSettings> {
        let target = self.target()?;
        let store = BackupStore::open(&target, &self.backup_prefix)?;
        let key_text = self.key_text()?;
        let s3_credentials = match (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Ok(access_key_id), Ok(secret_access_key)) if matches!(target, Target::S3(_)) => {
                Some(S3Credentials {
                    access_key_id,
                    secret_access_key,
                })
            }
            _ => None,
        };
        Ok(BackupSettings {
            target,
            prefix: self.backup_prefix.clone(),
            store,
            key: std::sync::Arc::new(PlatformKey::parse(key_text.expose())?),
            key_text,
            s3_credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: Option<&str>) -> Target {
        Target::S3(S3Target {
            endpoint: endpoint.map(String::from),
            bucket: "storefleet-backups".into(),
            region: "eu-central-1".into(),
            path_style: true,
            allow_http: true,
            credentials: None,
        })
    }

    fn cidrs(raw: &[&str]) -> Vec<Cidr> {
        raw.iter().map(|c| Cidr::parse(c).unwrap()).collect()
    }

    fn egress(endpoint: Option<&str>, given: &[&str]) -> anyhow::Result<Option<JobEgress>> {
        JobEgress::of(&s3(endpoint), &cidrs(given))
    }

    #[test]
    fn an_endpoint_given_as_an_address_is_its_own_range_on_its_port() {
        let e = egress(Some("http://10.0.5.20:3900"), &[]).unwrap().unwrap();
        assert_eq!(e.cidrs, cidrs(&["10.0.5.20/32"]));
        assert_eq!(e.port, 3900);
        assert_eq!(
            e.values(),
            BackupTargetValues {
                cidrs: vec!["10.0.5.20/32".into()],
                ports: vec![3900],
            }
        );
        let v6 = egress(Some("https://[fd00::5]"), &[]).unwrap().unwrap();
        assert_eq!(v6.cidrs, cidrs(&["fd00::5/128"]));
        assert_eq!(v6.port, 443);
        // Given ranges replace the /32, and must hold the address.
        let wider = egress(Some("http://10.0.5.20"), &["10.0.5.0/24", "10.0.6.0/24"])
            .unwrap()
            .unwrap();
        assert_eq!(wider.cidrs, cidrs(&["10.0.5.0/24", "10.0.6.0/24"]));
        assert_eq!(wider.port, 80);
        let outside = egress(Some("http://10.0.5.20:3900"), &["10.9.0.0/16"]).unwrap_err();
        assert!(
            outside
                .to_string()
                .contains("does not contain the endpoint's address 10.0.5.20"),
            "{outside}"
        );
    }

    #[test]
    fn a_named_endpoint_needs_its_ranges_and_says_where_they_go() {
        let named = egress(Some("https://s3.example.net"), &[]).unwrap_err();
        let text = named.to_string();
        for said in [
            "s3.example.net is a name",
            "--backup-s3-cidr",
            "STOREFLEET_BACKUP_S3_CIDR",
            "backups.s3.cidrs",
            "port 443",
        ] {
            assert!(text.contains(said), "{said}: {text}");
        }
        let e = egress(
            Some("https://s3.example.net:8443"),
            &["192.0.2.0/24", "198.51.100.7/32"],
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.cidrs, cidrs(&["192.0.2.0/24", "198.51.100.7/32"]));
        assert_eq!(e.port, 8443);
        // AWS's own endpoint: a name too, HTTPS.
        let aws = egress(None, &[]).unwrap_err();
        assert!(
            aws.to_string()
                .contains("AWS's S3 endpoint for eu-central-1"),
            "{aws}"
        );
        assert_eq!(egress(None, &["52.219.0.0/16"]).unwrap().unwrap().port, 443);
        for bad in ["s3.example.net", "ftp://s3.example.net", "https://"] {
            let e = egress(Some(bad), &["192.0.2.0/24"]).unwrap_err();
            assert!(
                e.to_string().contains("is not an http or https URL"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn ranges_go_with_an_s3_target_only() {
        let fs = Target::Filesystem {
            root: "/backups".into(),
        };
        assert_eq!(JobEgress::of(&fs, &[]).unwrap(), None);
        assert!(JobEgress::of(&fs, &cidrs(&["10.0.0.0/8"])).is_err());
        let stray = PlatformBackupArgs {
            backup_s3_cidr: cidrs(&["10.0.0.0/8"]),
            ..Default::default()
        };
        let e = stray.platform().unwrap_err();
        assert!(e.to_string().contains("--backup-s3-bucket"), "{e}");
    }

    #[test]
    fn the_flag_takes_comma_separated_ranges() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            backups: PlatformBackupArgs,
        }
        use clap::Parser;
        let cli =
            Cli::try_parse_from(["serve", "--backup-s3-cidr", "10.0.5.0/24,192.0.2.7/32"]).unwrap();
        assert_eq!(
            cli.backups.backup_s3_cidr,
            cidrs(&["10.0.5.0/24", "192.0.2.7/32"])
        );
        let bad = Cli::try_parse_from(["serve", "--backup-s3-cidr", "s3.example.net"]).err();
        assert!(
            bad.is_some_and(|e| e.to_string().contains("is not a CIDR")),
            "a host name taken for a range"
        );
    }
}

//! `storefleet backup-agent backup|restore`: the program a backup or restore Job runs in the store's
//! namespace (the platform's own binary, so no new image). It reads the store's database with
//! `mariadb-dump` and its `wp-content` folder with the `tar` crate, and streams both through the
//! archive ([`super::archive`]) to the target; a restore runs the same way back, after checking the
//! whole backup. Nothing it runs goes through a shell: `mariadb-dump` and `mariadb` get argv vectors
//! and the password through their environment.
//!
//! - [`database`]: the connection settings and the two client programs
//! - [`files`]: `wp-content` as a tar, and its replacement (extract beside it, then swap)
//! - [`checked`]: a source that fails at its end when the program or thread behind it failed
//! - [`backup`], [`restore`]: the two runs
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::BackupId;
use super::settings::BackupArgs;
use crate::domain::{Engine, StoreId};

pub mod backup;
mod checked;
pub mod database;
pub mod files;
pub mod restore;

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Back the store up: database dump and wp-content, then the sealed manifest. Prints the
    /// manifest (JSON) on success.
    Backup(AgentArgs),
    /// Check the whole backup, then replace the store's database and wp-content with it. Changes
    /// nothing if any check fails.
    Restore(AgentArgs),
    /// Copy this binary to `--to` (a Job's init container: the platform image has no `cp`, and the
    /// agent runs in the store's MariaDB image, beside its client programs).
    Install {
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    #[arg(long, env = "STOREFLEET_STORE_ID", value_parser = parse_store_id)]
    pub store_id: StoreId,
    /// Restore only, for a clone: the store the backup is of (its manifest is sealed to it and
    /// its objects are under its folder). Unset: `--store-id`'s own backup.
    #[arg(long, env = "STOREFLEET_SOURCE_STORE_ID", value_parser = parse_store_id)]
    pub source_store_id: Option<StoreId>,
    /// Backup: the id to write (the controller names it; unset: a new one). Restore: required.
    #[arg(long, env = "STOREFLEET_BACKUP_ID", value_parser = parse_backup_id)]
    pub backup_id: Option<BackupId>,
    /// Recorded in the manifest.
    #[arg(long, env = "STOREFLEET_CHART_VERSION", default_value = "")]
    pub chart_version: String,
    /// The store's `wp-content` folder (a subfolder of the mounted WordPress volume: a restore
    /// swaps it with a sibling folder).
    #[arg(long, env = "STOREFLEET_WP_CONTENT")]
    pub wp_content: PathBuf,
    #[command(flatten)]
    pub database: database::DatabaseArgs,
    #[command(flatten)]
    pub target: BackupArgs,
}

fn parse_store_id(raw: &str) -> Result<StoreId, String> {
    StoreId::parse(raw).map_err(|e| e.to_string())
}

fn parse_backup_id(raw: &str) -> Result<BackupId, String> {
    BackupId::parse(raw).map_err(|e| e.to_string())
}

fn install(to: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe()?;
    std::fs::copy(&me, to)
        .map_err(|e| anyhow::anyhow!("copying {} to {}: {e}", me.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The exit status of a restore refused before it changed anything (1: failed, maybe half-way).
pub const REFUSED_EXIT: i32 = 3;

/// Peak resident memory (KiB) of this process and of its largest finished child (`mariadb-dump` or
/// `mariadb`), from getrusage(2): what `scripts/bench` reads from the Job's log to show that memory
/// stays bounded whatever the database's size.
fn peak_memory_kib() -> (i64, i64) {
    let of = |who| {
        // SAFETY: getrusage fills the struct we pass; both `who` values are valid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut usage) } == 0 {
            usage.ru_maxrss
        } else {
            -1
        }
    };
    (of(libc::RUSAGE_SELF), of(libc::RUSAGE_CHILDREN))
}

pub fn run(command: AgentCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let report = matches!(command, AgentCommand::Backup(_) | AgentCommand::Restore(_));
    let result = run_command(&runtime, command);
    if report {
        let (agent, child) = peak_memory_kib();
        eprintln!("storefleet-agent peak memory: agent {agent} KiB, child program {child} KiB");
    }
    result
}

fn run_command(runtime: &tokio::runtime::Runtime, command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::Backup(args) => {
            let manifest = runtime.block_on(backup::run(&args, Engine::Woocommerce))?;
            println!("{}", serde_json::to_string(&manifest)?);
        }
        AgentCommand::Restore(args) => {
            // In a Job the kubelet mounts this file and puts what it holds into the pod's status,
            // where the controller reads it; elsewhere (a restore by hand) it does not exist.
            let say = |words: &str| {
                let log = std::path::Path::new(super::job::TERMINATION_LOG);
                if log.exists() {
                    let _ = std::fs::write(log, words);
                }
            };
            match runtime.block_on(restore::run(&args)) {
                Ok(restored) => {
                    println!("{restored}");
                    say(&restored);
                }
                Err(e @ restore::RestoreError::Refused(_)) => {
                    // Its own exit status and words: the controller has nothing to put back.
                    let words = e.to_string();
                    eprintln!("Error: {words}");
                    say(&words);
                    let (agent, child) = peak_memory_kib();
                    eprintln!(
                        "storefleet-agent peak memory: agent {agent} KiB, child program {child} KiB"
                    );
                    std::process::exit(REFUSED_EXIT);
                }
                Err(e) => return Err(anyhow::Error::new(e)),
            }
        }
        AgentCommand::Install { to } => install(&to)?,
    }
    Ok(())
}

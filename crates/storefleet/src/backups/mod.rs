//! Backups of a store (issue 14): the archive format and its checks, and the agent
//! ([`agent`], `storefleet backup-agent`) that backs a store up and restores it. In the cluster a
//! backup is a `StoreBackup` object ([`types`]); its [`controller`] runs the agent as a [`job`] in
//! the store's namespace and marks it Succeeded only after opening its sealed manifest. The format is described for people in
//! `docs/backups.md`.
//!
//! A backup is a folder of objects ([`store`]): one per part (the database dump, the `wp-content`
//! tar) and a `manifest.json` written last. Each part is compressed (zstd) and then encrypted with the
//! platform key in 64 KiB authenticated chunks ([`crypto`]) before it leaves the process, so the
//! object store only ever sees ciphertext, and neither side holds a whole part in memory
//! ([`archive`]). The [`manifest`] records each part's size and SHA-256 and is itself sealed with the
//! same key, bound to its store and backup id: a restore refuses an altered, truncated, missing or
//! swapped object, or another platform's key, with a reason naming what is wrong, before it changes
//! anything.
pub mod agent;
pub mod archive;
mod backup_id;
pub mod clones;
pub mod controller;
pub mod crypto;
pub mod deleted;
pub mod job;
pub mod kind;
pub mod manifest;
pub mod restores;
pub mod retention;
pub mod safety_net;
pub mod schedule;
pub mod scheduler;
pub mod service;
pub mod settings;
pub mod store;
pub mod types;

pub use archive::{BackupWriter, open_manifest, read_part, verify};
pub use backup_id::BackupId;
pub use crypto::{KeyId, PlatformKey};
pub use manifest::{Manifest, PartName};
pub use store::{BackupStore, S3Credentials, S3Target, Target};
pub use types::{BackupPhase, StoreBackup, StoreBackupSpec, StoreBackupStatus};

/// Why a backup could not be written, or why one is refused. The messages are meant for the
/// operator reading a Job's log or a restore's status, so they name the part and the reason.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "`{0}` is not a backup id (expected `backup-YYYYMMDD-HHMMSS-` and 6 lowercase hex digits)"
    )]
    InvalidBackupId(String),
    #[error("the backup key must be 32 bytes, as 64 hex digits or base64")]
    InvalidKey,
    #[error("invalid backup prefix: {0}")]
    InvalidPrefix(String),

    #[error("the backup has no manifest at {0}: it does not exist or was never finished")]
    ManifestMissing(String),
    #[error("the backup's manifest is unreadable: {0}")]
    MalformedManifest(String),
    #[error(
        "the backup's manifest has format version {0}; this Storefleet reads version 1 (a newer Storefleet wrote it)"
    )]
    NewerFormat(u32),
    #[error(
        "the manifest stored for backup {expected} describes backup {found}: it was swapped, refusing"
    )]
    ManifestOfAnotherBackup { expected: String, found: String },
    #[error(
        "the backup was sealed with another platform key (key id {backup}; this platform's key has id {platform})"
    )]
    OtherKey { backup: KeyId, platform: KeyId },
    #[error(
        "the backup's manifest was altered or swapped: its seal does not match this platform's key, store and backup"
    )]
    ManifestNotAuthentic,

    #[error("the manifest lists no {0} part; this store's backups need one")]
    PartNotInManifest(PartName),
    #[error("the backup's {part} part is missing (expected at {object})")]
    PartMissing { part: PartName, object: String },
    #[error(
        "the backup's {part} part is {found} bytes but the manifest records {recorded}: it was truncated or altered"
    )]
    PartSizeMismatch {
        part: PartName,
        found: u64,
        recorded: u64,
    },
    #[error(
        "the backup's {part} part was altered: its SHA-256 is {found}, the manifest records {recorded}"
    )]
    PartAltered {
        part: PartName,
        found: manifest::Sha256Digest,
        recorded: manifest::Sha256Digest,
    },
    #[error("the backup's {0} part ends early: its last chunk is missing (truncated)")]
    PartTruncated(PartName),
    #[error(
        "the backup's {part} part failed authentication at chunk {chunk}: altered, reordered, or not from this backup"
    )]
    PartNotAuthentic { part: PartName, chunk: u64 },
    #[error("the backup's {part} part is not a Storefleet backup part: {why}")]
    MalformedPart { part: PartName, why: &'static str },

    #[error("the {0} part was already written to this backup")]
    PartWrittenTwice(PartName),
    #[error("the backup cannot be finished without its {0} part")]
    PartNotWritten(PartName),
    #[error("encryption: {0}")]
    Crypto(&'static str),
    #[error("{what}: {source}")]
    Storage {
        what: String,
        source: object_store::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

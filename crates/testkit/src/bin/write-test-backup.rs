//! Writes a whole, sealed backup of a store on a filesystem backup target with the product's own
//! archive writer, standing in for the backup agent, which the kubelet stand-in never runs. The
//! dashboard's browser test (tests/ui/backups.test.mjs) uses it to get a backup that the controller
//! itself then verifies and marks Succeeded; `crates/storefleet/tests/support/backups.rs` does the
//! same for the Rust tests. Test-only: not part of the `storefleet` binary or image.
//!
//!   write-test-backup --dir <target> --key-file <key> --store <store-id> [--backup-id <id>]
//!
//! Prints the backup id (a fresh one, as the API would make it, unless `--backup-id` is given).
//! Its parts: a 32-byte "dump" and 1 KiB of "wp-content".
use std::path::PathBuf;

use anyhow::{Context, bail};
use storefleet::backups::{BackupId, BackupStore, BackupWriter, PartName, PlatformKey, Target};
use storefleet::domain::{Engine, StoreId};

struct Args {
    dir: PathBuf,
    key_file: PathBuf,
    store: String,
    backup_id: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let (mut dir, mut key_file, mut store, mut backup_id) = (None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--dir" => &mut dir,
            "--key-file" => &mut key_file,
            "--store" => &mut store,
            "--backup-id" => &mut backup_id,
            other => bail!("unknown argument {other:?}"),
        };
        *slot = Some(it.next().with_context(|| format!("{flag} needs a value"))?);
    }
    let usage = "usage: write-test-backup --dir <target> --key-file <key> --store <store-id> [--backup-id <id>]";
    Ok(Args {
        dir: dir.context(usage)?.into(),
        key_file: key_file.context(usage)?.into(),
        store: store.context(usage)?,
        backup_id,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let key_text = std::fs::read_to_string(&args.key_file)
        .with_context(|| format!("reading {}", args.key_file.display()))?;
    let key = PlatformKey::parse(&key_text)?;
    let store = StoreId::parse(&args.store)?;
    let id = match &args.backup_id {
        Some(raw) => BackupId::parse(raw)?,
        None => BackupId::new(chrono::Utc::now()),
    };
    let objects = BackupStore::open(&Target::Filesystem { root: args.dir }, "")?;
    let mut w = BackupWriter::begin_as(
        &objects,
        &key,
        store,
        id.clone(),
        Engine::Woocommerce,
        "0.1.0".into(),
    );
    w.write_part(
        PartName::Database,
        &b"CREATE TABLE wp_posts (ID INT);\n"[..],
    )
    .await?;
    w.write_part(PartName::Files, &[0u8; 1024][..]).await?;
    w.finish().await?;
    println!("{id}");
    Ok(())
}

//! A whole, sealed backup written on a filesystem target with the archive's own writer, standing in
//! for the agent (which the kubelet stand-in never runs; `tests/backups_agent.rs` runs it for real
//! against MariaDB). Its parts: a 32-byte "dump" and 1 KiB of "wp-content".
use std::path::Path;

use storefleet::backups::{BackupId, BackupStore, BackupWriter, PartName, PlatformKey, Target};
use storefleet::domain::{Engine, StoreId};

/// The backup `id` of `store` at `target`, as the agent would write it.
pub async fn write_backup(target: &Path, key: &PlatformKey, store: &str, id: &BackupId) {
    let objects = BackupStore::open(
        &Target::Filesystem {
            root: target.into(),
        },
        "",
    )
    .unwrap();
    let mut w = BackupWriter::begin_as(
        &objects,
        key,
        StoreId::parse(store).unwrap(),
        id.clone(),
        Engine::Woocommerce,
        "0.1.0".into(),
    );
    w.write_part(
        PartName::Database,
        &b"CREATE TABLE wp_posts (ID INT);\n"[..],
    )
    .await
    .unwrap();
    w.write_part(PartName::Files, &[0u8; 1024][..])
        .await
        .unwrap();
    w.finish().await.unwrap();
}

//! A whole, sealed backup written on a filesystem target with the archive's own writer, standing in
//! for the agent (which the kubelet stand-in never runs; `tests/backups_agent.rs` runs it for real
//! against MariaDB). Its parts: a 32-byte "dump" and 1 KiB of "wp-content".
use std::path::Path;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use kube::api::PostParams;
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

/// The claim a filesystem target's backup Jobs mount in `namespace` (`--backup-job-claim`'s
/// default), as the platform's operator would make it; the stand-in provisions any claim.
pub async fn create_job_claim(client: &kube::Client, namespace: &str) {
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "storefleet-backups" },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "standard",
            "resources": { "requests": { "storage": "1Gi" } }
        }
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &claim)
        .await
        .unwrap();
}

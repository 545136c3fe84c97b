//! The manifest: what a backup holds and how to check it. Stored as `manifest.json`, readable by a
//! person, sealed with the platform key (see [`super::crypto::seal_manifest`]) so that an altered or
//! swapped manifest is refused before any part is trusted.
//!
//! The file is an envelope `{"manifest": {...}, "seal": {...}}`; the seal covers the exact bytes of the
//! `manifest` value as stored (kept through `serde_json::value::RawValue`), so no canonical JSON form
//! is needed.
use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::crypto::{self, KeyId, PlatformKey, Seal};
use super::{BackupError, BackupId};
use crate::domain::{Engine, StoreId};

/// The manifest format this code writes and reads. A higher one is refused (a newer Storefleet wrote it).
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Always `storefleet-backup`: says what this file is to someone who finds it in a bucket.
    pub format: Format,
    pub version: u32,
    pub store_id: StoreId,
    pub backup_id: BackupId,
    pub engine: Engine,
    /// The store chart's version the store ran when it was backed up.
    pub chart_version: String,
    /// The Storefleet that wrote the backup.
    pub storefleet_version: String,
    /// Which platform key sealed the backup (a fingerprint, not the key).
    pub key_id: KeyId,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    #[serde(deserialize_with = "unique_parts")]
    pub parts: Vec<PartRecord>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    #[serde(rename = "storefleet-backup")]
    StorefleetBackup,
}

/// The parts of a WooCommerce store's backup. The enum is where another engine's parts would go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartName {
    /// `mariadb-dump --single-transaction --routines --triggers` of the store's database.
    Database,
    /// A tar of WordPress's `wp-content` (uploads, themes, plugins).
    Files,
}

impl PartName {
    pub const ALL: [PartName; 2] = [PartName::Database, PartName::Files];

    pub fn as_str(self) -> &'static str {
        match self {
            PartName::Database => "database",
            PartName::Files => "files",
        }
    }

    /// The object's name inside the backup's folder: what it holds, then how it is packed.
    pub fn object_name(self) -> &'static str {
        match self {
            PartName::Database => "database.sql.zst.enc",
            PartName::Files => "files.tar.zst.enc",
        }
    }
}

impl fmt::Display for PartName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartRecord {
    pub name: PartName,
    pub compression: Compression,
    pub encryption: Encryption,
    /// Bytes read from the source (the dump, the tar) before compression.
    pub plain_bytes: u64,
    /// Bytes of the stored object (header and sealed chunks).
    pub stored_bytes: u64,
    /// SHA-256 of the stored object: a restore compares it before decrypting anything.
    pub sha256: Sha256Digest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    #[serde(rename = "zstd")]
    Zstd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encryption {
    /// XChaCha20-Poly1305, STREAM with a big-endian 32-bit counter, 64 KiB chunks.
    #[serde(rename = "xchacha20poly1305-stream-be32-64k")]
    XChaCha20Poly1305StreamBe32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&raw, &mut out)
            .map_err(|_| serde::de::Error::custom("sha256 must be 64 hex digits"))?;
        Ok(Self(out))
    }
}

fn unique_parts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PartRecord>, D::Error> {
    let parts = Vec::<PartRecord>::deserialize(d)?;
    for (i, p) in parts.iter().enumerate() {
        if parts[..i].iter().any(|q| q.name == p.name) {
            return Err(serde::de::Error::custom(format!(
                "part `{}` is listed twice",
                p.name
            )));
        }
    }
    Ok(parts)
}

impl Manifest {
    pub fn part(&self, name: PartName) -> Option<&PartRecord> {
        self.parts.iter().find(|p| p.name == name)
    }

    /// The bytes of `manifest.json`: the manifest and its seal.
    pub fn seal(&self, key: &PlatformKey) -> Vec<u8> {
        let body = serde_json::to_string_pretty(self).expect("a manifest always serializes");
        let seal = crypto::seal_manifest(key, &self.store_id, &self.backup_id, body.as_bytes());
        let body = RawValue::from_string(body).expect("serde_json wrote valid JSON");
        let envelope = Envelope {
            manifest: &body,
            seal: SealJson::from(&seal),
        };
        let mut out = serde_json::to_vec_pretty(&envelope).expect("an envelope always serializes");
        out.push(b'\n');
        out
    }

    /// Reads `manifest.json` found where backup `backup` of store `store` should be, and accepts it only
    /// if this platform's key sealed it for exactly that store and backup.
    pub fn open(
        bytes: &[u8],
        key: &PlatformKey,
        store: &StoreId,
        backup: &BackupId,
    ) -> Result<Manifest, BackupError> {
        let malformed = |e: serde_json::Error| BackupError::MalformedManifest(e.to_string());
        let envelope: Envelope<'_> = serde_json::from_slice(bytes).map_err(malformed)?;
        let body = envelope.manifest.get().as_bytes();

        // Not yet authenticated: read only to give a precise reason for a refusal, never to accept.
        let claims: Claims = serde_json::from_slice(body).map_err(malformed)?;
        if claims.version > MANIFEST_VERSION {
            return Err(BackupError::NewerFormat(claims.version));
        }
        if claims.store_id != store.as_str() || claims.backup_id != backup.as_str() {
            return Err(BackupError::ManifestOfAnotherBackup {
                expected: format!("{store}/{backup}"),
                found: format!("{}/{}", claims.store_id, claims.backup_id),
            });
        }
        if claims.key_id != key.id() {
            return Err(BackupError::OtherKey {
                backup: claims.key_id,
                platform: key.id(),
            });
        }

        let seal = envelope
            .seal
            .parse()
            .map_err(BackupError::MalformedManifest)?;
        if !crypto::manifest_seal_holds(key, store, backup, body, &seal) {
            return Err(BackupError::ManifestNotAuthentic);
        }
        let manifest: Manifest = serde_json::from_slice(body).map_err(malformed)?;
        // The seal binds the location's ids; these hold unless the key itself sealed a lie.
        if &manifest.store_id != store || &manifest.backup_id != backup {
            return Err(BackupError::ManifestNotAuthentic);
        }
        Ok(manifest)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    manifest: &'a RawValue,
    seal: SealJson,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealJson {
    /// The manifest's bytes are the associated data of an empty XChaCha20-Poly1305 message.
    algorithm: String,
    nonce: String,
    tag: String,
}

const SEAL_ALGORITHM: &str = "xchacha20poly1305-aad";

impl From<&Seal> for SealJson {
    fn from(s: &Seal) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        Self {
            algorithm: SEAL_ALGORITHM.to_owned(),
            nonce: b64.encode(s.nonce),
            tag: b64.encode(s.tag),
        }
    }
}

impl SealJson {
    fn parse(&self) -> Result<Seal, String> {
        if self.algorithm != SEAL_ALGORITHM {
            return Err(format!("unknown seal algorithm `{}`", self.algorithm));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce = b64.decode(&self.nonce).ok().and_then(|n| n.try_into().ok());
        let tag = b64.decode(&self.tag).ok().and_then(|t| t.try_into().ok());
        match (nonce, tag) {
            (Some(nonce), Some(tag)) => Ok(Seal { nonce, tag }),
            _ => Err("the seal's nonce or tag has the wrong length".to_owned()),
        }
    }
}

/// The few fields read before the seal is checked, to explain a refusal.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Claims {
    version: u32,
    store_id: String,
    backup_id: String,
    key_id: KeyId,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(store: &StoreId, backup: &BackupId, key: &PlatformKey) -> Manifest {
        Manifest {
            format: Format::StorefleetBackup,
            version: MANIFEST_VERSION,
            store_id: store.clone(),
            backup_id: backup.clone(),
            engine: Engine::Woocommerce,
            chart_version: "0.1.0".into(),
            storefleet_version: "0.1.0".into(),
            key_id: key.id(),
            started_at: "2026-01-02T03:04:05Z".parse().unwrap(),
            finished_at: "2026-01-02T03:05:00Z".parse().unwrap(),
            parts: vec![PartRecord {
                name: PartName::Database,
                compression: Compression::Zstd,
                encryption: Encryption::XChaCha20Poly1305StreamBe32,
                plain_bytes: 10,
                stored_bytes: 80,
                sha256: Sha256Digest([0xab; 32]),
            }],
        }
    }

    fn ids() -> (StoreId, BackupId) {
        (
            StoreId::parse("store-00aa11").unwrap(),
            BackupId::parse("backup-20260102-030405-abcdef").unwrap(),
        )
    }

    #[test]
    fn sealed_manifests_open_with_the_same_key_and_location() {
        let (store, backup) = ids();
        let key = PlatformKey::generate();
        let m = sample(&store, &backup, &key);
        let bytes = m.seal(&key);
        assert_eq!(Manifest::open(&bytes, &key, &store, &backup).unwrap(), m);
        // Readable by a person: the manifest's fields are plain JSON.
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"storeId\": \"store-00aa11\""), "{text}");
    }

    #[test]
    fn an_edited_manifest_is_refused() {
        let (store, backup) = ids();
        let key = PlatformKey::generate();
        let text = String::from_utf8(sample(&store, &backup, &key).seal(&key)).unwrap();
        let edited = text.replace("\"plainBytes\": 10", "\"plainBytes\": 11");
        assert_ne!(edited, text);
        assert!(matches!(
            Manifest::open(edited.as_bytes(), &key, &store, &backup),
            Err(BackupError::ManifestNotAuthentic)
        ));
    }

    #[test]
    fn another_backups_manifest_or_another_key_is_refused_with_its_reason() {
        let (store, backup) = ids();
        let key = PlatformKey::generate();
        let other = BackupId::parse("backup-20260102-030405-000000").unwrap();
        let theirs = sample(&store, &other, &key).seal(&key);
        let err = Manifest::open(&theirs, &key, &store, &backup).unwrap_err();
        assert!(matches!(err, BackupError::ManifestOfAnotherBackup { .. }));
        assert!(err.to_string().contains(other.as_str()), "{err}");

        let mine = sample(&store, &backup, &key).seal(&key);
        let err = Manifest::open(&mine, &PlatformKey::generate(), &store, &backup).unwrap_err();
        assert!(matches!(err, BackupError::OtherKey { .. }), "{err}");
    }

    #[test]
    fn newer_formats_and_duplicate_parts_are_refused() {
        let (store, backup) = ids();
        let key = PlatformKey::generate();
        let mut m = sample(&store, &backup, &key);
        m.version = 2;
        assert!(matches!(
            Manifest::open(&m.seal(&key), &key, &store, &backup),
            Err(BackupError::NewerFormat(2))
        ));
        let mut m = sample(&store, &backup, &key);
        m.parts.push(m.parts[0].clone());
        assert!(matches!(
            Manifest::open(&m.seal(&key), &key, &store, &backup),
            Err(BackupError::MalformedManifest(e)) if e.contains("listed twice")
        ));
    }
}

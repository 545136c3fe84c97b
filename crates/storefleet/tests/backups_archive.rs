//! The backup archive (issue 14, its core) against the filesystem backend in a temporary folder: a
//! round trip gives back the same bytes, and every kind of damage to what is stored is refused, with
//! a reason naming what is wrong, by `verify` (what a restore runs before changing anything). Needs no
//! cluster.
use std::path::{Path, PathBuf};

use storefleet::backups::{
    BackupError, BackupId, BackupStore, BackupWriter, Manifest, PartName, PlatformKey, Target,
    open_manifest, read_part, verify,
};
use storefleet::domain::{Engine, StoreId};

mod generated {
    //! Deterministic test input, produced lazily so that size costs no memory.
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, ReadBuf};

    pub struct Generated {
        state: u64,
        left: u64,
    }

    impl Generated {
        pub fn new(seed: u64, len: u64) -> Self {
            Self {
                state: seed | 1,
                left: len,
            }
        }
    }

    impl AsyncRead for Generated {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = (buf.remaining() as u64).min(self.left) as usize;
            let mut out = vec![0u8; n];
            for b in out.iter_mut() {
                // xorshift64: SQL-ish text is compressible, this is not, which is the harder case.
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                *b = self.state as u8;
            }
            buf.put_slice(&out);
            self.left -= n as u64;
            Poll::Ready(Ok(()))
        }
    }

    pub async fn bytes(seed: u64, len: u64) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut v = Vec::new();
        Generated::new(seed, len).read_to_end(&mut v).await.unwrap();
        v
    }
}
use generated::Generated;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: BackupStore,
    key: PlatformKey,
    store_id: StoreId,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("backups");
        let store =
            BackupStore::open(&Target::Filesystem { root: root.clone() }, "prefix").unwrap();
        Self {
            _dir: dir,
            root,
            store,
            key: PlatformKey::generate(),
            store_id: StoreId::parse("store-0a1b2c").unwrap(),
        }
    }

    /// A finished backup of `db_len` generated database bytes and `files_len` generated file bytes.
    async fn backup(&self, db_len: u64, files_len: u64) -> Manifest {
        let mut w = BackupWriter::begin(
            &self.store,
            &self.key,
            self.store_id.clone(),
            Engine::Woocommerce,
            "0.1.0".into(),
        );
        w.write_part(PartName::Database, Generated::new(1, db_len))
            .await
            .unwrap();
        w.write_part(PartName::Files, Generated::new(2, files_len))
            .await
            .unwrap();
        w.finish().await.unwrap()
    }

    fn file(&self, backup: &BackupId, name: &str) -> PathBuf {
        self.root
            .join("prefix")
            .join(self.store_id.as_str())
            .join(backup.as_str())
            .join(name)
    }

    fn part_file(&self, backup: &BackupId, part: PartName) -> PathBuf {
        self.file(backup, part.object_name())
    }

    async fn open(&self, backup: &BackupId) -> Result<Manifest, BackupError> {
        open_manifest(&self.store, &self.key, &self.store_id, backup).await
    }

    /// What a restore does first: read the manifest, check every part.
    async fn verify(&self, backup: &BackupId) -> Result<Manifest, BackupError> {
        let m = self.open(backup).await?;
        verify(&self.store, &self.key, &m).await?;
        Ok(m)
    }
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_round_trip_gives_back_the_same_bytes() {
    let f = Fixture::new();
    let db_len = 6 * 1024 * 1024 + 123;
    let files_len = 64 * 1024; // exactly one chunk of plaintext before compression
    let m = f.backup(db_len, files_len).await;

    let db = m.part(PartName::Database).unwrap();
    assert_eq!(db.plain_bytes, db_len);
    assert_eq!(
        db.stored_bytes,
        std::fs::metadata(f.part_file(&m.backup_id, PartName::Database))
            .unwrap()
            .len()
    );
    assert_eq!(
        f.store.list(&f.store_id).await.unwrap(),
        vec![m.backup_id.clone()]
    );

    let m = f.verify(&m.backup_id).await.unwrap();
    for (part, seed, len) in [
        (PartName::Database, 1, db_len),
        (PartName::Files, 2, files_len),
    ] {
        let mut out = Vec::new();
        read_part(&f.store, &f.key, &m, part, &mut out)
            .await
            .unwrap();
        assert!(out == generated::bytes(seed, len).await, "{part} differs");
    }

    // What is stored is ciphertext: the input's first bytes appear nowhere in it.
    let stored = std::fs::read(f.part_file(&m.backup_id, PartName::Database)).unwrap();
    let plain = generated::bytes(1, 64).await;
    assert!(!stored.windows(32).any(|w| w == &plain[..32]));
}

#[tokio::test]
async fn empty_parts_round_trip() {
    let f = Fixture::new();
    let m = f.backup(0, 0).await;
    let m = f.verify(&m.backup_id).await.unwrap();
    let mut out = Vec::new();
    read_part(&f.store, &f.key, &m, PartName::Files, &mut out)
        .await
        .unwrap();
    assert!(out.is_empty());
}

#[tokio::test]
async fn one_flipped_byte_in_a_part_is_refused_naming_the_part() {
    let f = Fixture::new();
    let m = f.backup(300 * 1024, 200 * 1024).await;
    let path = f.part_file(&m.backup_id, PartName::Files);
    let len = std::fs::metadata(&path).unwrap().len();
    flip_byte(&path, len / 2);

    let err = f.verify(&m.backup_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::PartAltered {
                part: PartName::Files,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("files part was altered"), "{err}");

    // A restore that skipped verify would still be stopped by read_part.
    let mut out = Vec::new();
    let err = read_part(&f.store, &f.key, &m, PartName::Files, &mut out)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::PartAltered { .. }), "{err:?}");
    // Nothing past the altered chunk came out: at most the chunks before it.
    assert!((out.len() as u64) < len / 2 + 64 * 1024, "{}", out.len());
}

#[tokio::test]
async fn a_flipped_byte_in_a_parts_header_is_refused() {
    let f = Fixture::new();
    let m = f.backup(1000, 1000).await;
    flip_byte(&f.part_file(&m.backup_id, PartName::Database), 20);
    let err = f.verify(&m.backup_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::PartAltered {
                part: PartName::Database,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_missing_part_is_refused_before_any_part_is_read() {
    let f = Fixture::new();
    let m = f.backup(1000, 1000).await;
    std::fs::remove_file(f.part_file(&m.backup_id, PartName::Files)).unwrap();
    // The database part is damaged too, but the missing part is what is reported: presence and
    // size of every part are checked before anything is downloaded.
    flip_byte(&f.part_file(&m.backup_id, PartName::Database), 40);
    let err = f.verify(&m.backup_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::PartMissing {
                part: PartName::Files,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("files part is missing"), "{err}");
}

#[tokio::test]
async fn a_truncated_part_is_refused() {
    let f = Fixture::new();
    let m = f.backup(200 * 1024, 1000).await;
    let path = f.part_file(&m.backup_id, PartName::Database);
    let bytes = std::fs::read(&path).unwrap();
    // Cut on a chunk boundary (header + one sealed chunk), the cleanest truncation there is.
    std::fs::write(&path, &bytes[..32 + 64 * 1024 + 16]).unwrap();
    let err = f.verify(&m.backup_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::PartSizeMismatch {
                part: PartName::Database,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[tokio::test]
async fn another_key_is_refused() {
    let f = Fixture::new();
    let m = f.backup(1000, 1000).await;
    let other = PlatformKey::generate();
    let err = open_manifest(&f.store, &other, &f.store_id, &m.backup_id)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::OtherKey { .. }), "{err:?}");
    assert!(err.to_string().contains(&f.key.id().to_string()), "{err}");

    // Even handed the manifest, the parts do not open under another key.
    let err = verify(&f.store, &other, &m).await.unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::PartNotAuthentic {
                part: PartName::Database,
                chunk: 1
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_swapped_manifest_or_part_is_refused() {
    let f = Fixture::new();
    let a = f.backup(1000, 1000).await;
    let b = f.backup(2000, 1000).await;
    assert_ne!(a.backup_id, b.backup_id);

    // B's manifest put in A's place, as is.
    std::fs::copy(
        f.file(&b.backup_id, "manifest.json"),
        f.file(&a.backup_id, "manifest.json"),
    )
    .unwrap();
    let err = f.open(&a.backup_id).await.unwrap_err();
    assert!(
        matches!(err, BackupError::ManifestOfAnotherBackup { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(b.backup_id.as_str()), "{err}");

    // B's manifest edited to claim A's id: the seal no longer holds.
    let forged = std::fs::read_to_string(f.file(&b.backup_id, "manifest.json"))
        .unwrap()
        .replace(b.backup_id.as_str(), a.backup_id.as_str());
    std::fs::write(f.file(&a.backup_id, "manifest.json"), forged).unwrap();
    let err = f.open(&a.backup_id).await.unwrap_err();
    assert!(matches!(err, BackupError::ManifestNotAuthentic), "{err:?}");

    // B's files part (same size as A's) put in A's folder.
    std::fs::copy(
        f.part_file(&b.backup_id, PartName::Files),
        f.part_file(&a.backup_id, PartName::Files),
    )
    .unwrap();
    let err = verify(&f.store, &f.key, &a).await.unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::PartAltered {
                part: PartName::Files,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unfinished_backup_does_not_exist() {
    let f = Fixture::new();
    let mut w = BackupWriter::begin(
        &f.store,
        &f.key,
        f.store_id.clone(),
        Engine::Woocommerce,
        "0.1.0".into(),
    );
    w.write_part(PartName::Database, Generated::new(1, 1000))
        .await
        .unwrap();
    let id = w.backup_id().clone();
    assert!(matches!(
        w.finish().await,
        Err(BackupError::PartNotWritten(PartName::Files))
    ));
    assert!(matches!(
        f.open(&id).await,
        Err(BackupError::ManifestMissing(_))
    ));
    assert!(f.store.list(&f.store_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_source_leaves_no_part_behind() {
    struct Failing;
    impl tokio::io::AsyncRead for Failing {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::Error::other("mariadb-dump exited with 2")))
        }
    }
    let f = Fixture::new();
    let mut w = BackupWriter::begin(
        &f.store,
        &f.key,
        f.store_id.clone(),
        Engine::Woocommerce,
        "0.1.0".into(),
    );
    let err = w.write_part(PartName::Database, Failing).await.unwrap_err();
    assert!(
        err.to_string().contains("mariadb-dump exited with 2"),
        "{err}"
    );
    assert!(!f.part_file(w.backup_id(), PartName::Database).exists());
}

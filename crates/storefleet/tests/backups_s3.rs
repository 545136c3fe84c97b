//! The backup archive against a **real S3-compatible server**: Garage 2.5.0 (a production object
//! store, built once from crates.io by `scripts/garage` and cached), one node started by this test on
//! loopback. What the filesystem tests (`backups_archive.rs`) show for a folder holds over S3 too:
//! multipart uploads of several parts, the round trip, a flipped byte or a missing part refused before
//! anything is restored, unfinished backups not listed; and an unreachable server is a clear error
//! within bounded time, not a hang.
//!
//! `scripts/test` exports `STOREFLEET_GARAGE`; run by hand, the test looks in the cache and says how
//! to build Garage when it is not there.
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use storefleet::backups::{
    BackupError, BackupStore, BackupWriter, Manifest, PartName, PlatformKey, S3Credentials,
    S3Target, Target, open_manifest, read_part, verify,
};
use storefleet::domain::{Engine, StoreId};

const BUCKET: &str = "storefleet-backups";
// Garage's key ids are `GK` + 24 hex digits, secrets 64 hex digits (`garage key import`).
const KEY_ID: &str = "GK0123456789abcdef01234567";
const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn garage_binary() -> PathBuf {
    if let Ok(p) = std::env::var("STOREFLEET_GARAGE") {
        return PathBuf::from(p);
    }
    let cached = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/storefleet/garage-2.5.0/bin/garage");
    assert!(
        cached.exists(),
        "no Garage: run `export STOREFLEET_GARAGE=$(scripts/garage)` first (builds it once, about 25 CPU-minutes)"
    );
    cached
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One Garage node in a temporary folder, killed on drop.
struct Garage {
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Child,
    s3_port: u16,
}

impl Garage {
    fn start() -> Self {
        let bin = garage_binary();
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3) = (free_port(), free_port());
        let secret: String = (0..32).map(|i| format!("{:02x}", i * 7 + 3)).collect();
        let config = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
"#,
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(dir.path().join("garage.toml"))
            .arg("server")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut g = Self {
            dir,
            bin,
            child,
            s3_port: s3,
        };
        g.configure();
        g
    }

    /// `garage <args>` against this node; its stdout.
    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "garage {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// A one-node layout, a bucket and a key allowed on it: what an operator does once.
    fn configure(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let node = loop {
            match self.cli(&["node", "id", "-q"]) {
                Ok(id) => break id.trim().split('@').next().unwrap().to_string(),
                Err(e) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("garage exited ({status}): {}", self.log());
                    }
                    assert!(Instant::now() < deadline, "{e}\n{}", self.log());
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        for args in [
            vec!["layout", "assign", "-z", "dc1", "-c", "1G", node.as_str()],
            vec!["layout", "apply", "--version", "1"],
            vec!["bucket", "create", BUCKET],
            vec!["key", "import", "--yes", "-n", "storefleet", KEY_ID, SECRET],
            vec![
                "bucket", "allow", "--read", "--write", BUCKET, "--key", KEY_ID,
            ],
        ] {
            // `node id` reads the key from disk and can answer before the RPC listener is up, which
            // the other commands go through: "Connection refused" until it is, under load.
            loop {
                match self.cli(&args) {
                    Ok(_) => break,
                    Err(e) if e.contains("Connection refused") && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => panic!("{e}\n{}", self.log()),
                }
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    fn target(&self) -> Target {
        target_at(&format!("http://127.0.0.1:{}", self.s3_port))
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn target_at(endpoint: &str) -> Target {
    Target::S3(S3Target {
        endpoint: Some(endpoint.to_string()),
        bucket: BUCKET.into(),
        region: "garage".into(),
        path_style: true,
        allow_http: true,
        credentials: Some(S3Credentials {
            access_key_id: KEY_ID.into(),
            secret_access_key: SECRET.into(),
        }),
    })
}

/// Deterministic, incompressible bytes (xorshift): the parts really are several MiB on the wire.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

async fn backup(
    store: &BackupStore,
    key: &PlatformKey,
    id: &StoreId,
    db: &[u8],
    files: &[u8],
) -> Result<Manifest, BackupError> {
    let mut w = BackupWriter::begin(store, key, id.clone(), Engine::Woocommerce, "0.1.0".into());
    w.write_part(PartName::Database, db).await?;
    w.write_part(PartName::Files, files).await?;
    w.finish().await
}

async fn restore_part(
    store: &BackupStore,
    key: &PlatformKey,
    m: &Manifest,
    part: PartName,
) -> Vec<u8> {
    let mut out = Vec::new();
    read_part(store, key, m, part, &mut out).await.unwrap();
    out
}

#[tokio::test]
async fn backups_round_trip_through_garage_and_damage_is_refused() {
    let garage = Garage::start();
    let store = BackupStore::open(&garage.target(), "prod/backups").unwrap();
    let key = PlatformKey::generate();
    let id = StoreId::parse("store-5a3c01").unwrap();

    // 12 MiB: three multipart-upload parts of 5 MiB, so the multipart path is what is tested.
    let db = bytes(1, 12 * 1024 * 1024 + 17);
    let files = bytes(2, 300 * 1024);
    let m = backup(&store, &key, &id, &db, &files).await.unwrap();
    assert_eq!(store.list(&id).await.unwrap(), vec![m.backup_id.clone()]);

    // Restore: the manifest and every part are checked, then the bytes come back the same.
    let opened = open_manifest(&store, &key, &id, &m.backup_id)
        .await
        .unwrap();
    verify(&store, &key, &opened).await.unwrap();
    assert!(restore_part(&store, &key, &opened, PartName::Database).await == db);
    assert!(restore_part(&store, &key, &opened, PartName::Files).await == files);

    // One flipped byte in the stored files part, written back through S3: refused, naming the part.
    let path = store.part_path(&id, &m.backup_id, PartName::Files);
    let mut stored = store.get_small(&path).await.unwrap().unwrap().to_vec();
    let at = stored.len() / 2;
    stored[at] ^= 0x01;
    store.put(&path, stored.clone()).await.unwrap();
    let err = verify(&store, &key, &opened).await.unwrap_err();
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

    // Put right again, it verifies: the check reads what is stored, not a cached verdict.
    stored[at] ^= 0x01;
    store.put(&path, stored).await.unwrap();
    verify(&store, &key, &opened).await.unwrap();

    // A second backup missing its database part (deleted behind Storefleet's back): refused.
    let m2 = backup(&store, &key, &id, b"-- dump", b"tar").await.unwrap();
    garage
        .cli(&[
            "bucket", "info",
            BUCKET, // the bucket exists and is the one we write to (guards a misconfigured test)
        ])
        .unwrap();
    delete_object(
        &garage,
        &store.part_path(&id, &m2.backup_id, PartName::Database),
    )
    .await;
    let opened2 = open_manifest(&store, &key, &id, &m2.backup_id)
        .await
        .unwrap();
    let err = verify(&store, &key, &opened2).await.unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::PartMissing {
                part: PartName::Database,
                ..
            }
        ),
        "{err:?}"
    );
    // The first backup is untouched by what happened to the second.
    verify(&store, &key, &opened).await.unwrap();
}

#[tokio::test]
async fn a_failed_source_leaves_no_listed_backup_in_garage() {
    let garage = Garage::start();
    let store = BackupStore::open(&garage.target(), "").unwrap();
    let key = PlatformKey::generate();
    let id = StoreId::parse("store-77aa01").unwrap();

    // The database part is fine, the files source fails half-way (as a tar of a vanished folder
    // would): the writer reports it, no manifest is written, the backup is not listed.
    let mut w = BackupWriter::begin(
        &store,
        &key,
        id.clone(),
        Engine::Woocommerce,
        "0.1.0".into(),
    );
    w.write_part(PartName::Database, &bytes(3, 6 * 1024 * 1024)[..])
        .await
        .unwrap();
    let err = w
        .write_part(
            PartName::Files,
            FailingReader {
                left: 7 * 1024 * 1024,
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("source broke"), "{err}");
    assert!(store.list(&id).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_not_a_hang() {
    // A port nobody listens on: the object store's retries are bounded.
    let port = free_port();
    let store = BackupStore::open(&target_at(&format!("http://127.0.0.1:{port}")), "").unwrap();
    let key = PlatformKey::generate();
    let id = StoreId::parse("store-0ff11e").unwrap();
    let started = Instant::now();
    let err = backup(&store, &key, &id, b"dump", b"files")
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(90),
        "took {took:?} to give up: {err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("127.0.0.1") || msg.to_lowercase().contains("connect"),
        "the reason should say the server could not be reached: {msg}"
    );
}

/// Deletes one object through S3, as someone with the bucket's key could.
async fn delete_object(garage: &Garage, path: &object_store::path::Path) {
    use object_store::ObjectStoreExt;
    let Target::S3(t) = garage.target() else {
        unreachable!()
    };
    let c = t.credentials.unwrap();
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(t.endpoint.unwrap())
        .with_bucket_name(t.bucket)
        .with_region(t.region)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_access_key_id(c.access_key_id)
        .with_secret_access_key(c.secret_access_key)
        .build()
        .unwrap();
    s3.delete(path).await.unwrap();
}

/// A source that yields `left` bytes and then fails.
struct FailingReader {
    left: usize,
}

impl tokio::io::AsyncRead for FailingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("source broke")));
        }
        let n = buf.remaining().min(self.left).min(64 * 1024);
        buf.put_slice(&vec![b'x'; n]);
        self.left -= n;
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_in_bounded_time() {
    // Accepts connections and never answers (a hung proxy, a black-holed route): each request runs
    // into the client's 30 s timeout, and the bounded retries (`backups/store.rs`) stop there, where
    // object_store's defaults would retry for three minutes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let store = BackupStore::open(&target_at(&format!("http://127.0.0.1:{port}")), "").unwrap();
    let key = PlatformKey::generate();
    let id = StoreId::parse("store-b1ac40").unwrap();
    let started = Instant::now();
    let err = backup(&store, &key, &id, b"dump", b"files")
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(75),
        "took {took:?} to give up: {err}"
    );
    // The reason names the server that did not answer (the operator's first question).
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

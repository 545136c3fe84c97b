//! The backup agent (`storefleet backup-agent`), the real binary against a real MariaDB server
//! (Debian's `mariadbd`, started here on loopback in a temp folder; `scripts/test` installs
//! `mariadb-server` when it is missing) and a real wp-content folder, with the filesystem target.
//! Nothing is mocked: the agent runs `mariadb-dump` and `mariadb` as the Job does.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use storefleet::backups::{BackupId, BackupStore, PartName, PlatformKey, Target};
use storefleet::domain::StoreId;

const STORE: &str = "store-0a1b2c";
const USER: &str = "wp_store";
const PASSWORD: &str = "s3cret pass'word\"with;shell$chars";
const DATABASE: &str = "wordpress";

fn find(program: &str) -> PathBuf {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed: `apt-get install mariadb-server mariadb-client` (scripts/test does this)"
            )
        })
}

/// A private MariaDB server: its own data folder, socket and loopback port; killed on drop.
struct MariaDb {
    dir: tempfile::TempDir,
    port: u16,
    server: Child,
}

impl MariaDb {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // A temporary folder of its own: at start a server deletes every `#sql*` file in its tmpdir
        // (default $TMPDIR or /tmp), so servers started in parallel on the shared /tmp delete each
        // other's temporary tables ("Unknown table 'mysql.tmp_user_sys'" from mariadb-install-db).
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let install = Command::new(find("mariadb-install-db"))
            .env("TMPDIR", &tmp)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .output()
            .unwrap();
        assert!(
            install.status.success(),
            "mariadb-install-db: {}\n{}\n{}",
            install.status,
            String::from_utf8_lossy(&install.stdout),
            String::from_utf8_lossy(&install.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Command::new(find("mariadbd"))
            .env("TMPDIR", &tmp)
            .arg("--no-defaults")
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!(
                "--log-error={}",
                dir.path().join("error.log").display()
            ))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                "--skip-name-resolve",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let db = Self { dir, port, server };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !db.root(&["-e", "SELECT 1"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start: {}",
                std::fs::read_to_string(db.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        db.setup(&format!(
            "CREATE DATABASE {DATABASE}; \
             CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{}'; \
             GRANT ALL ON {DATABASE}.* TO '{USER}'@'127.0.0.1';",
            PASSWORD.replace('\\', "\\\\").replace('\'', "\\'")
        ));
        db
    }

    fn root(&self, args: &[&str]) -> Output {
        Command::new(find("mariadb"))
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .args(["-uroot", "-N", "-B"])
            .args(args)
            .output()
            .unwrap()
    }

    fn setup(&self, sql: &str) {
        let out = self.root(&["-e", sql]);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn sql_ok(&self, sql: &str) -> String {
        let out = self.root(&["-D", DATABASE, "-e", sql]);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// What a restore must bring back, or leave alone: the posts and the order, and a digest of
    /// the bulk table.
    fn state(&self) -> String {
        self.sql_ok(
            "SELECT ID, post_type, post_title FROM wp_posts ORDER BY ID; \
             SELECT COUNT(*), SUM(CRC32(meta_value)) FROM wp_postmeta;",
        )
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// A store: its database with posts, an order and enough rows that the dump spans several 64 KiB
/// chunks (random text, so it does not compress away), and its wp-content folder.
struct Shop {
    db: MariaDb,
    work: tempfile::TempDir,
}

impl Shop {
    fn new() -> Self {
        let db = MariaDb::start();
        db.sql_ok(
            "CREATE TABLE wp_posts (ID BIGINT PRIMARY KEY, post_type VARCHAR(20), post_title TEXT) ENGINE=InnoDB; \
             INSERT INTO wp_posts VALUES (1, 'post', 'Hello world'), (2, 'product', 'Blue mug'), \
               (3, 'shop_order', 'Order #3 — Ada Lovelace, 12 Analytical St'); \
             CREATE TABLE wp_postmeta (meta_id BIGINT PRIMARY KEY, meta_value TEXT) ENGINE=InnoDB; \
             INSERT INTO wp_postmeta SELECT seq, SHA2(CONCAT(seq, RAND()), 512) FROM seq_1_to_4000;",
        );
        let work = tempfile::tempdir().unwrap();
        let wp = work.path().join("html/wp-content");
        for (path, bytes) in [
            (
                "uploads/2026/12/mug.jpg",
                vec![0xffu8, 0xd8, 0xff, 0xe0, 1, 2, 3],
            ),
            (
                "plugins/woocommerce/woocommerce.php",
                b"<?php // WooCommerce".to_vec(),
            ),
            (
                "themes/storefront/style.css",
                b"body { color: teal }".to_vec(),
            ),
        ] {
            let p = wp.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        std::os::unix::fs::symlink("uploads/2026", wp.join("latest-uploads")).unwrap();
        std::fs::write(work.path().join("key"), key_text()).unwrap();
        Self { db, work }
    }

    fn wp_content(&self) -> PathBuf {
        self.work.path().join("html/wp-content")
    }

    fn backups(&self) -> PathBuf {
        self.work.path().join("backups")
    }

    fn agent(&self, action: &str, backup: Option<&BackupId>, password: &str) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_storefleet"));
        c.args(["backup-agent", action, "--store-id", STORE])
            .arg("--wp-content")
            .arg(self.wp_content())
            .args([
                "--db-host",
                "127.0.0.1",
                "--db-port",
                &self.db.port.to_string(),
            ])
            .args(["--db-user", USER, "--db-name", DATABASE])
            .arg("--backup-dir")
            .arg(self.backups())
            .arg("--backup-key-file")
            .arg(self.work.path().join("key"))
            .args(["--chart-version", "0.1.0"])
            .env("STOREFLEET_DB_PASSWORD", password)
            .env_remove("STOREFLEET_BACKUP_KEY");
        if let Some(b) = backup {
            c.args(["--backup-id", b.as_str()]);
        }
        c.output().unwrap()
    }

    fn back_up(&self) -> BackupId {
        let out = self.agent("backup", None, PASSWORD);
        assert!(out.status.success(), "backup: {}", stderr(&out));
        let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(manifest["storeId"], STORE);
        BackupId::parse(manifest["backupId"].as_str().unwrap()).unwrap()
    }

    fn store(&self) -> BackupStore {
        BackupStore::open(
            &Target::Filesystem {
                root: self.backups(),
            },
            "",
        )
        .unwrap()
    }

    fn part_file(&self, backup: &BackupId, part: PartName) -> PathBuf {
        self.backups()
            .join(STORE)
            .join(backup.as_str())
            .join(part.object_name())
    }

    /// Every file and link under wp-content with its content, and whatever lies beside it.
    fn files(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk(&self.work.path().join("html"), Path::new(""), &mut out);
        out
    }
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(root.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let rel = rel.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        let key = rel.display().to_string();
        if kind.is_symlink() {
            let target = std::fs::read_link(root.join(&rel)).unwrap();
            out.insert(key, format!("-> {}", target.display()));
        } else if kind.is_dir() {
            out.insert(key, "dir".into());
            walk(root, &rel, out);
        } else {
            let bytes = std::fs::read(root.join(&rel)).unwrap();
            out.insert(key, format!("{bytes:02x?}"));
        }
    }
}

/// A fresh platform key as the Secret holds it: 64 hex digits.
fn key_text() -> String {
    let mut bytes = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    PlatformKey::parse(&text).unwrap();
    text
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_restore_brings_back_the_deleted_post_order_and_file() {
    let shop = Shop::new();
    let (db_before, files_before) = (shop.db.state(), shop.files());
    let backup = shop.back_up();

    shop.db.sql_ok(
        "DELETE FROM wp_posts WHERE ID IN (1, 3); DELETE FROM wp_postmeta WHERE meta_id > 100;",
    );
    std::fs::remove_file(shop.wp_content().join("uploads/2026/12/mug.jpg")).unwrap();
    std::fs::write(shop.wp_content().join("uploads/added-after.txt"), "new").unwrap();
    assert_ne!(shop.db.state(), db_before);
    assert_ne!(shop.files(), files_before);

    let out = shop.agent("restore", Some(&backup), PASSWORD);
    assert!(out.status.success(), "restore: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(backup.as_str()));
    assert_eq!(shop.db.state(), db_before, "the rows are back");
    assert!(shop.db.state().contains("Ada Lovelace"));
    // The same files, links and nothing else: no staging or old folder is left beside wp-content.
    assert_eq!(shop.files(), files_before);
}

/// A clone: another store's backup restored into this one (`--source-store-id`), as the clone's
/// restore Job runs it: the other store's rows and files arrive whole, and without naming the
/// source the agent refuses (the backup is sealed to, and stored under, the store it is of).
#[test]
fn a_clone_restores_another_stores_backup_and_only_when_named() {
    const CLONE: &str = "store-c10e01";
    let source = Shop::new();
    let backup = source.back_up();
    let (source_db, source_files) = (source.db.state(), source.files());
    let clone = Shop::new();
    clone.db.sql_ok(
        "DELETE FROM wp_posts; INSERT INTO wp_posts VALUES (9, 'post', 'A fresh store'); \
         DELETE FROM wp_postmeta WHERE meta_id > 10;",
    );
    let (fresh_db, fresh_files) = (clone.db.state(), clone.files());
    assert_ne!(fresh_db, source_db);
    let restore = |source_store: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_storefleet"));
        c.args(["backup-agent", "restore", "--store-id", CLONE])
            .args(["--backup-id", backup.as_str()])
            .arg("--wp-content")
            .arg(clone.wp_content())
            .args([
                "--db-host",
                "127.0.0.1",
                "--db-port",
                &clone.db.port.to_string(),
            ])
            .args(["--db-user", USER, "--db-name", DATABASE])
            .arg("--backup-dir")
            .arg(source.backups())
            .arg("--backup-key-file")
            .arg(source.work.path().join("key"))
            .env("STOREFLEET_DB_PASSWORD", PASSWORD)
            .env_remove("STOREFLEET_BACKUP_KEY")
            .env_remove("STOREFLEET_SOURCE_STORE_ID");
        if let Some(s) = source_store {
            c.args(["--source-store-id", s]);
        }
        c.output().unwrap()
    };

    let out = restore(None);
    assert!(
        !out.status.success(),
        "a restore of another store's backup without naming it"
    );
    assert!(stderr(&out).contains("no manifest"), "{}", stderr(&out));
    assert_eq!(
        (clone.db.state(), clone.files()),
        (fresh_db, fresh_files.clone())
    );

    let out = restore(Some(STORE));
    assert!(out.status.success(), "clone: {}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    // The words the restore controller waits for (restores/controller.rs).
    assert!(
        said.starts_with(&format!(
            "restored backup {backup} of store {STORE} into store {CLONE} "
        )),
        "{said}"
    );
    assert_eq!(
        clone.db.state(),
        source_db,
        "the source's rows, order included"
    );
    assert_eq!(clone.files(), source_files);
    assert_eq!(source.db.state(), source_db, "the source is untouched");
}

#[test]
fn a_damaged_backup_is_refused_and_nothing_changes() {
    let shop = Shop::new();
    let backup = shop.back_up();
    let database = shop.part_file(&backup, PartName::Database);
    assert!(
        std::fs::metadata(&database).unwrap().len() > 3 * 65552,
        "the dump spans several chunks"
    );
    // The store moves on after the backup; a refused restore must leave it exactly so.
    shop.db.sql_ok("DELETE FROM wp_posts WHERE ID = 2; UPDATE wp_postmeta SET meta_value = 'x' WHERE meta_id = 7;");
    std::fs::remove_file(shop.wp_content().join("themes/storefront/style.css")).unwrap();
    let (db_now, files_now) = (shop.db.state(), shop.files());

    // One byte flipped near the end of the dump: its first chunks are authentic, so only checking
    // the whole backup first keeps them out of the database.
    let original = std::fs::read(&database).unwrap();
    let mut flipped = original.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x01;
    std::fs::write(&database, &flipped).unwrap();
    let out = shop.agent("restore", Some(&backup), PASSWORD);
    assert!(!out.status.success());
    assert_eq!(shop.db.state(), db_now, "the database is as it was");
    assert_eq!(shop.files(), files_now);
    let why = stderr(&out);
    assert!(why.contains("refusing to restore"), "{why}");
    assert!(why.contains("database part was altered"), "{why}");
    // Refused before anything changed: its own exit status (and, in a Job, its own words), so the
    // controller has nothing to put back.
    assert_eq!(out.status.code(), Some(3), "{why}");
    assert!(why.contains("refused, nothing was changed"), "{why}");

    // A missing part.
    std::fs::write(&database, &original).unwrap();
    std::fs::remove_file(shop.part_file(&backup, PartName::Files)).unwrap();
    let out = shop.agent("restore", Some(&backup), PASSWORD);
    assert!(!out.status.success());
    let why = stderr(&out);
    assert!(why.contains("files part is missing"), "{why}");
    assert_eq!(out.status.code(), Some(3), "{why}");
    assert_eq!(shop.db.state(), db_now);
    assert_eq!(shop.files(), files_now);

    // A backup that does not exist.
    let unknown = BackupId::parse("backup-20200101-000000-000000").unwrap();
    let out = shop.agent("restore", Some(&unknown), PASSWORD);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no manifest"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(shop.db.state(), db_now);

    // A whole backup the database refuses (the wrong password): past the checks, so not "refused"
    // but failed, with the plain failure status: the controller then puts the safety backup back.
    std::fs::write(&database, &original).unwrap();
    let good = shop.back_up();
    let out = shop.agent("restore", Some(&good), "wrong password");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("refused, nothing was changed"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_failing_dump_leaves_no_backup() {
    let shop = Shop::new();
    let out = shop.agent("backup", None, "wrong password");
    assert!(!out.status.success());
    let why = stderr(&out);
    assert!(why.contains("mariadb-dump failed"), "{why}");
    assert!(why.contains("Access denied"), "{why}");
    assert!(out.stdout.is_empty(), "no manifest printed");
    let store = StoreId::parse(STORE).unwrap();
    assert_eq!(shop.store().list(&store).await.unwrap(), vec![]);
    // Not even an unfinished part: the aborted upload and the clean-up leave nothing.
    let left: Vec<_> = walkdir_files(&shop.backups());
    assert!(left.is_empty(), "left behind: {left:?}");
    // A given id that already holds a finished backup is never overwritten.
    let backup = shop.back_up();
    let again = shop.agent("backup", Some(&backup), PASSWORD);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(shop.store().list(&store).await.unwrap(), vec![backup]);
}

fn walkdir_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

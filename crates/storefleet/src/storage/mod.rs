//! Storage of the audit log, idempotency keys, users, tokens and dashboard sessions, in SQLite (the
//! zero-setup default of one replica: a file) or PostgreSQL (shared by every replica). Both run the same
//! queries through sqlx's Any driver, with `$1`-style parameters (sqlx's SQLite driver reads them too),
//! and each has its own migrations (`migrations/sqlite`, `migrations/postgres`). The little that
//! differs between them is here and in `lock.rs`.
mod audit;
mod housekeeping;
mod idempotency;
mod lock;
mod sessions;
mod stamp;
mod users;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

pub use audit::{Action, AuditEntry, AuditLog, AuditRecord, BUILT_IN_ACTORS, DETAIL_MAX};
pub use housekeeping::{Housekeeping, Retention};
pub use idempotency::{IdempotencyStore, StoredAnswer};
pub use lock::{Exclusive, LockName};
pub use sessions::SessionStore;
pub use stamp::Stamp;
pub use users::{AuthFailure, Authenticated, Bootstrap, TokenInfo, User, UserError, Users};

/// Which server holds the data: it decides the migrations, how a writing transaction begins, and how
/// replicas take a lock (`lock.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> anyhow::Result<Self> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            _ => anyhow::bail!(
                "--database-url: expected sqlite://<file> or postgres://<user>@<host>/<database>"
            ),
        }
    }
}

#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    /// One process's side of every lock (`lock.rs`).
    local: lock::Local,
}

impl Database {
    /// Opens (creating a SQLite file if missing) the database and runs the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let backend = Backend::of(url)?;
        // The URL may hold a password: errors name the backend, never the URL.
        let what = match backend {
            Backend::Sqlite => format!("the SQLite database {url}"),
            Backend::Postgres => "the PostgreSQL database of --database-url".to_owned(),
        };
        sqlx::any::install_default_drivers();
        let options = match backend {
            Backend::Sqlite => {
                // What the Any driver cannot say in a URL, once per file: create it, and WAL (which the
                // file keeps), so that readers do not wait for the writer.
                SqliteConnectOptions::from_str(url)
                    .with_context(|| format!("--database-url {url:?}"))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .connect()
                    .await
                    .with_context(|| format!("opening {what}"))?
                    .close()
                    .await?;
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // A writer waits its turn rather than failing with "database is locked".
                            conn.execute("PRAGMA busy_timeout = 10000").await.map(drop)
                        })
                    })
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(10)),
        };
        let pool = options
            .connect(url)
            .await
            .with_context(|| format!("connecting to {what}"))?;
        // Two processes may migrate one new database at once (the API and controller containers on
        // one SQLite file; PostgreSQL's migrator takes a lock, but a first `CREATE TABLE
        // _sqlx_migrations` may still collide): a moment later the second finds the work done.
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        let mut attempt = 0;
        loop {
            match migrator.run(&pool).await {
                Ok(()) => break,
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    tracing::debug!("database migrations, attempt {attempt}: {e}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => return Err(e).context("running database migrations"),
            }
        }
        Ok(Self {
            pool,
            backend,
            local: lock::Local::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// `name`, held by this process alone among every replica on this database until the answer is
    /// dropped (`lock.rs`).
    pub async fn exclusive(&self, name: LockName<'_>) -> Result<Exclusive, sqlx::Error> {
        lock::take(&self.pool, self.backend, &self.local, name).await
    }

    pub fn audit(&self) -> AuditLog {
        AuditLog::new(self.pool.clone())
    }

    /// Idempotency keys that are remembered for `ttl`.
    pub fn idempotency(&self, ttl: Duration) -> IdempotencyStore {
        IdempotencyStore::new(self.pool.clone(), ttl)
    }

    /// Dashboard sessions (`api/session.rs`).
    pub fn sessions(&self) -> SessionStore {
        SessionStore::new(self.pool.clone())
    }

    pub fn users(&self) -> Users {
        Users::new(self.pool.clone(), self.backend)
    }
}

/// A transaction that reads, then writes, and must not interleave with another such one.
/// SQLite: `BEGIN IMMEDIATE` (a deferred one that must upgrade while another connection writes fails
/// at once with "database is locked"; an immediate one waits its turn). PostgreSQL: a transaction that
/// first takes a transaction-scoped advisory lock, released at commit or rollback.
async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('storefleet:writes'))")
                .execute(&mut *tx)
                .await?;
            Ok(tx)
        }
    }
}

/// A flag column: BOOLEAN on PostgreSQL, 0/1 INTEGER on SQLite (the Any driver converts neither into
/// the other).
fn flag(row: &sqlx::any::AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    row.try_get::<bool, _>(column)
        .or_else(|_| row.try_get::<i64, _>(column).map(|n| n != 0))
}

/// Every storage test runs on both backends: a SQLite file, and a fresh database on the test
/// PostgreSQL server (`testkit::postgres`).
#[cfg(test)]
pub(crate) mod testing {
    use super::Database;

    pub struct TestDb {
        pub db: Database,
        /// To connect again, as a restart does.
        pub url: String,
        _dir: Option<tempfile::TempDir>,
    }

    impl TestDb {
        pub async fn sqlite() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            let db = Database::connect(&url).await.unwrap();
            Self {
                db,
                url,
                _dir: Some(dir),
            }
        }

        pub async fn postgres() -> Self {
            let url = testkit::postgres::fresh_database().await;
            let db = Database::connect(&url).await.unwrap();
            Self {
                db,
                url,
                _dir: None,
            }
        }

        pub async fn each_backend() -> [Self; 2] {
            [Self::sqlite().await, Self::postgres().await]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestDb;
    use super::*;
    use crate::domain::{Role, UserId, UserName};
    use chrono::Utc;

    fn entry(action: Action, store_id: Option<&str>) -> AuditEntry {
        AuditEntry {
            actor: "admin".into(),
            action,
            store_id: store_id.map(str::to_owned),
            store_owner: store_id.map(|_| "admin".to_owned()),
            outcome: "ok".into(),
            detail: String::new(),
            remote_addr: Some("127.0.0.1:1".into()),
        }
    }

    #[tokio::test]
    async fn audit_is_newest_first_and_filters_by_store() {
        for TestDb { db, .. } in TestDb::each_backend().await {
            let audit = db.audit();
            audit
                .record(entry(Action::Create, Some("store-000001")))
                .await;
            audit.record(entry(Action::Denied, None)).await;
            audit
                .record(entry(Action::Ready, Some("store-000001")))
                .await;
            let all = audit.list(10, None, None).await.unwrap();
            let actions: Vec<&str> = all.iter().map(|r| r.action.as_str()).collect();
            assert_eq!(actions, ["ready", "denied", "create"]);
            let one = audit.list(10, Some("store-000001"), None).await.unwrap();
            assert_eq!(one.len(), 2);
            assert_eq!(audit.list(1, None, None).await.unwrap().len(), 1);
            // Older than the second entry: only the first, whatever was written since.
            audit.record(entry(Action::Delete, None)).await;
            let older = audit
                .list_before(10, None, None, Some(all[1].id))
                .await
                .unwrap();
            let actions: Vec<&str> = older.iter().map(|r| r.action.as_str()).collect();
            assert_eq!(actions, ["create"]);
            db.ping().await.unwrap();
        }
    }

    #[tokio::test]
    async fn idempotency_keeps_the_first_answer_per_owner() {
        for TestDb { db, url, .. } in TestDb::each_backend().await {
            let keys = db.idempotency(Duration::from_secs(3600));
            let first = StoredAnswer {
                request_hash: "h1".into(),
                status: 202,
                body: "{}".into(),
            };
            let second = StoredAnswer {
                request_hash: "h2".into(),
                status: 200,
                body: "[]".into(),
            };
            keys.save("admin", "k", &first, Some("store-000001"))
                .await
                .unwrap();
            keys.save("admin", "k", &second, None).await.unwrap();
            assert_eq!(keys.find("admin", "k").await.unwrap(), Some(first.clone()));
            assert_eq!(keys.find("someone-else", "k").await.unwrap(), None);
            // Survives a reconnect (migrations run again, idempotently).
            drop(db);
            let again = Database::connect(&url).await.unwrap();
            assert_eq!(
                again
                    .idempotency(Duration::from_secs(3600))
                    .find("admin", "k")
                    .await
                    .unwrap(),
                Some(first)
            );
        }
    }

    #[tokio::test]
    async fn members_read_entries_about_their_stores_and_their_own() {
        for TestDb { db, .. } in TestDb::each_backend().await {
            let audit = db.audit();
            let at = |actor: &str, store: Option<(&str, &str)>| AuditEntry {
                actor: actor.into(),
                // The controller reports on stores; users' entries here are refusals.
                action: if actor == "controller" {
                    Action::Failed
                } else {
                    Action::Denied
                },
                store_id: store.map(|(id, _)| id.to_owned()),
                store_owner: store.map(|(_, owner)| owner.to_owned()),
                outcome: "x".into(),
                detail: format!("{actor} {store:?}"),
                remote_addr: None,
            };
            // Distinct outcomes: repeated refusals by one caller would otherwise count in one entry.
            let mut n = 0;
            let mut at = |actor: &str, store: Option<(&str, &str)>| {
                n += 1;
                AuditEntry {
                    outcome: format!("x{n}"),
                    ..at(actor, store)
                }
            };
            audit
                .record(at("alice", Some(("store-00000a", "alice"))))
                .await;
            audit
                .record(at("controller", Some(("store-00000a", "alice"))))
                .await;
            audit.record(at("alice", None)).await;
            // Bob's attempt on alice's store: neither bob (it would tell him the store exists) nor alice
            // (she can do nothing about it, and bob could fill her view) sees it; admins do.
            audit
                .record(at("bob", Some(("store-00000a", "alice"))))
                .await;
            // The control plane's own entries about no store are nobody's, even a user's called so.
            audit.record(at("anonymous", None)).await;
            audit.record(at("bob", None)).await;
            audit.record(at("admin", None)).await;
            let details = |records: Vec<AuditRecord>| -> Vec<String> {
                records.into_iter().map(|r| r.detail).collect()
            };
            let alice = details(audit.list(100, None, Some("alice")).await.unwrap());
            assert_eq!(alice.len(), 3, "{alice:?}");
            assert!(
                alice
                    .iter()
                    .all(|d| !d.starts_with("admin") && !d.starts_with("bob"))
            );
            assert!(
                audit
                    .list(100, None, Some("anonymous"))
                    .await
                    .unwrap()
                    .is_empty(),
                "a user called anonymous reads no anonymous denial"
            );
            let bob = details(audit.list(100, None, Some("bob")).await.unwrap());
            assert_eq!(bob, ["bob None"]);
            let bob_about = audit
                .list(100, Some("store-00000a"), Some("bob"))
                .await
                .unwrap();
            assert!(bob_about.is_empty());
            assert_eq!(audit.list(100, None, None).await.unwrap().len(), 7);
        }
    }

    #[tokio::test]
    async fn refusals_repeated_by_one_caller_are_one_entry_with_a_count() {
        for TestDb { db, .. } in TestDb::each_backend().await {
            let audit = db.audit();
            let refusal = |port: u16, detail: &str| AuditEntry {
                remote_addr: Some(format!("192.0.2.1:{port}")),
                detail: detail.into(),
                ..AuditEntry::anonymous_denial("unauthorized", String::new(), None)
            };
            for port in 0..50 {
                audit
                    .record(refusal(1000 + port, "GET /stores/{store_id}"))
                    .await;
            }
            audit
                .record(AuditEntry {
                    remote_addr: Some("192.0.2.2:1".into()),
                    ..refusal(1, "x")
                })
                .await;
            let rows = audit.list(100, None, None).await.unwrap();
            assert_eq!(rows.len(), 2, "{rows:?}");
            assert_eq!(rows[1].count, 50);
            assert_eq!(rows[0].count, 1);
            // Not refusals: every one is its own entry.
            for _ in 0..3 {
                audit
                    .record(entry(Action::Create, Some("store-000001")))
                    .await;
            }
            assert_eq!(audit.entries().await.unwrap(), 5);
        }
    }

    #[tokio::test]
    async fn every_field_is_capped() {
        for TestDb { db, .. } in TestDb::each_backend().await {
            let audit = db.audit();
            audit
                .record(AuditEntry {
                    detail: "é".repeat(30_000),
                    outcome: "o".repeat(10_000),
                    ..entry(Action::Create, Some("store-000001"))
                })
                .await;
            let row = &audit.list(1, None, None).await.unwrap()[0];
            assert!(row.detail.len() <= DETAIL_MAX, "{}", row.detail.len());
            assert!(row.detail.ends_with('…'));
            assert!(row.outcome.len() <= 128);
        }
    }

    #[tokio::test]
    async fn retention_keeps_the_newest_entries() {
        for TestDb { db, .. } in TestDb::each_backend().await {
            let audit = db.audit();
            for n in 0..10 {
                audit
                    .record(AuditEntry {
                        detail: format!("{n}"),
                        ..entry(Action::Create, None)
                    })
                    .await;
            }
            assert_eq!(audit.prune(None, Some(4)).await.unwrap(), 6);
            let left: Vec<String> = audit
                .list(100, None, None)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.detail)
                .collect();
            assert_eq!(left, ["9", "8", "7", "6"]);
            assert_eq!(
                audit
                    .prune(Some(Duration::from_secs(3600)), None)
                    .await
                    .unwrap(),
                0
            );
            assert_eq!(audit.prune(Some(Duration::ZERO), None).await.unwrap(), 4);
        }
    }

    #[tokio::test]
    async fn idempotency_keys_expire() {
        for TestDb { db, .. } in TestDb::each_backend().await {
            let answer = |hash: &str| StoredAnswer {
                request_hash: hash.into(),
                status: 202,
                body: "{}".into(),
            };
            let expired = db.idempotency(Duration::ZERO);
            expired
                .save("admin", "k", &answer("h1"), None)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(expired.find("admin", "k").await.unwrap(), None);
            // An expired key is free: the next request's answer is kept.
            expired
                .save("admin", "k", &answer("h2"), None)
                .await
                .unwrap();
            let live = db.idempotency(Duration::from_secs(3600));
            assert_eq!(live.find("admin", "k").await.unwrap(), Some(answer("h2")));
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(expired.prune().await.unwrap(), 1);
            assert_eq!(live.find("admin", "k").await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn users_tokens_and_authentication() {
        for TestDb { db, .. } in TestDb::each_backend().await {
            let users = db.users();
            let alice = UserName::parse("alice").unwrap();
            let (user, token, info) = users.create(&alice, Role::Member, 3, None).await.unwrap();
            assert_eq!(
                (user.role, user.max_stores, user.disabled),
                (Role::Member, 3, false)
            );
            assert!(matches!(
                users.create(&alice, Role::Admin, 1, None).await,
                Err(UserError::NameTaken(_))
            ));
            let ok = users.authenticate(token.expose()).await.unwrap().unwrap();
            assert_eq!(
                (ok.user.name.as_str(), &ok.token_id),
                ("alice", &info.token_id)
            );
            assert_eq!(
                users.authenticate("sf_nope").await.unwrap().unwrap_err(),
                AuthFailure::Unknown
            );
            // Only the digest is stored.
            let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
                .fetch_all(&db.pool)
                .await
                .unwrap();
            assert!(
                stored
                    .iter()
                    .all(|h| h.len() == 32 && h != token.expose().as_bytes())
            );

            // A second token; revoking it leaves the first working, and is idempotent.
            let (second, second_info) = users.issue_token(&user.user_id, None).await.unwrap();
            let revoked = users
                .revoke_token(&user.user_id, &second_info.token_id)
                .await
                .unwrap()
                .unwrap();
            assert!(revoked.revoked_at.is_some());
            assert_eq!(
                users
                    .revoke_token(&user.user_id, &second_info.token_id)
                    .await
                    .unwrap()
                    .unwrap()
                    .revoked_at,
                revoked.revoked_at
            );
            assert_eq!(
                users
                    .authenticate(second.expose())
                    .await
                    .unwrap()
                    .unwrap_err(),
                AuthFailure::Revoked(second_info.token_id.clone())
            );
            assert!(users.authenticate(token.expose()).await.unwrap().is_ok());
            // Another user's token id is not this user's to revoke.
            let (bob, _, bob_token) = users
                .create(&UserName::parse("bob").unwrap(), Role::Member, 1, None)
                .await
                .unwrap();
            assert_eq!(
                users
                    .revoke_token(&user.user_id, &bob_token.token_id)
                    .await
                    .unwrap(),
                None
            );
            assert!(
                users
                    .authenticate_token_id(&bob_token.token_id)
                    .await
                    .unwrap()
                    .is_ok()
            );

            // Expired.
            let past = Utc::now() - chrono::Duration::seconds(1);
            let (old, old_info) = users.issue_token(&user.user_id, Some(past)).await.unwrap();
            assert_eq!(
                users.authenticate(old.expose()).await.unwrap().unwrap_err(),
                AuthFailure::Expired(old_info.token_id)
            );

            // Disabled: every token refused, sessions too; enabling again restores them.
            let disabled = users
                .update(&user.user_id, Some(7), Some(true))
                .await
                .unwrap()
                .unwrap();
            assert_eq!((disabled.max_stores, disabled.disabled), (7, true));
            assert_eq!(
                users
                    .authenticate(token.expose())
                    .await
                    .unwrap()
                    .unwrap_err(),
                AuthFailure::Disabled(info.token_id.clone())
            );
            assert!(
                users
                    .authenticate_token_id(&info.token_id)
                    .await
                    .unwrap()
                    .is_err()
            );
            let enabled = users
                .update(&user.user_id, None, Some(false))
                .await
                .unwrap()
                .unwrap();
            assert_eq!((enabled.max_stores, enabled.disabled), (7, false));
            assert!(users.authenticate(token.expose()).await.unwrap().is_ok());
            assert_eq!(
                users
                    .update(&UserId::random(), Some(1), None)
                    .await
                    .unwrap(),
                None
            );

            let listed: Vec<String> = users
                .list()
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.name.to_string())
                .collect();
            assert_eq!(listed, ["alice", "bob"]);
            assert_eq!(users.tokens(Some(&user.user_id)).await.unwrap().len(), 3);
            assert_eq!(users.tokens(Some(&bob.user_id)).await.unwrap().len(), 1);
            assert_eq!(users.tokens(None).await.unwrap().len(), 4);
        }
    }

    #[tokio::test]
    async fn bootstrap_admin_token() {
        for TestDb { db, url, .. } in TestDb::each_backend().await {
            let users = db.users();
            // No flag, first start: one token generated, and only once.
            let Bootstrap::Generated(secret, _) = users.bootstrap(None, 5).await.unwrap() else {
                panic!("expected a generated token");
            };
            let admin = users.authenticate(secret.expose()).await.unwrap().unwrap();
            assert_eq!(
                (
                    admin.user.name.as_str(),
                    admin.user.role,
                    admin.user.max_stores
                ),
                ("admin", Role::Admin, 5)
            );
            assert!(matches!(
                users.bootstrap(None, 5).await.unwrap(),
                Bootstrap::Kept
            ));

            // With the flag: that token works, across restarts, and replaces the generated one.
            assert!(matches!(
                users.bootstrap(Some("flag-one"), 9).await.unwrap(),
                Bootstrap::FromFlag
            ));
            assert!(matches!(
                users.bootstrap(Some("flag-one"), 9).await.unwrap(),
                Bootstrap::FromFlag
            ));
            let by_flag = users.authenticate("flag-one").await.unwrap().unwrap();
            assert_eq!(
                (by_flag.user.user_id.clone(), by_flag.user.max_stores),
                (admin.user.user_id.clone(), 9)
            );
            assert!(users.authenticate(secret.expose()).await.unwrap().is_err());
            // The flag changes: the old one stops working.
            users.bootstrap(Some("flag-two"), 9).await.unwrap();
            assert!(users.authenticate("flag-one").await.unwrap().is_err());
            assert!(users.authenticate("flag-two").await.unwrap().is_ok());
            // Without the flag later, the live flag token is kept: nothing is generated or printed.
            drop(db);
            let again = Database::connect(&url).await.unwrap().users();
            assert!(matches!(
                again.bootstrap(None, 9).await.unwrap(),
                Bootstrap::Kept
            ));
            assert_eq!(again.list().await.unwrap().len(), 1, "one built-in admin");
        }
    }
}

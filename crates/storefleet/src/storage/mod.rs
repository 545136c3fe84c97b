//! Storage of the audit log and idempotency keys. SQLite only for now; everything else talks to
//! [`Database`] and the two small stores below, so a PostgreSQL backend can come in behind them.
mod audit;
mod idempotency;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

pub use audit::{Action, AuditEntry, AuditLog, AuditRecord};
pub use idempotency::{IdempotencyStore, StoredAnswer};

#[derive(Clone)]
pub struct Database {
    pool: SqlitePool,
}

impl Database {
    /// Opens (creating if missing) the database and runs the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            url.starts_with("sqlite:"),
            "--database-url {url:?}: only sqlite: URLs are supported for now"
        );
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("--database-url {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening {url}"))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .context("running database migrations")?;
        Ok(Self { pool })
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    pub fn audit(&self) -> AuditLog {
        AuditLog::new(self.pool.clone())
    }

    pub fn idempotency(&self) -> IdempotencyStore {
        IdempotencyStore::new(self.pool.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn temp_db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Database::connect(&url).await.unwrap();
        (dir, db)
    }

    fn entry(action: Action, store_id: Option<&str>) -> AuditEntry {
        AuditEntry {
            actor: "admin".into(),
            action,
            store_id: store_id.map(str::to_owned),
            outcome: "ok".into(),
            detail: String::new(),
            remote_addr: Some("127.0.0.1:1".into()),
        }
    }

    #[tokio::test]
    async fn audit_is_newest_first_and_filters_by_store() {
        let (_dir, db) = temp_db().await;
        let audit = db.audit();
        audit
            .record(entry(Action::Create, Some("store-000001")))
            .await;
        audit.record(entry(Action::Denied, None)).await;
        audit
            .record(entry(Action::Ready, Some("store-000001")))
            .await;
        let all = audit.list(10, None).await.unwrap();
        let actions: Vec<&str> = all.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["ready", "denied", "create"]);
        let one = audit.list(10, Some("store-000001")).await.unwrap();
        assert_eq!(one.len(), 2);
        assert_eq!(audit.list(1, None).await.unwrap().len(), 1);
        db.ping().await.unwrap();
    }

    #[tokio::test]
    async fn idempotency_keeps_the_first_answer_per_owner() {
        let (dir, db) = temp_db().await;
        let keys = db.idempotency();
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
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let again = Database::connect(&url).await.unwrap();
        assert_eq!(
            again.idempotency().find("admin", "k").await.unwrap(),
            Some(first)
        );
    }
}

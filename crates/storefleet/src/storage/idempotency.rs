//! Idempotency keys of `POST /stores`: per (owner, key), the hash of the request and the first answer.
use chrono::Utc;
use sqlx::{Row, SqlitePool};

/// The answer given the first time a key was used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAnswer {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

#[derive(Clone)]
pub struct IdempotencyStore {
    pool: SqlitePool,
}

impl IdempotencyStore {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    pub async fn find(&self, owner: &str, key: &str) -> Result<Option<StoredAnswer>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE owner = ? AND key = ?",
        )
        .bind(owner)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(StoredAnswer {
                request_hash: row.try_get("request_hash")?,
                status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or(500),
                body: row.try_get("body")?,
            })
        })
        .transpose()
    }

    /// Keeps the first answer: a second save for the same (owner, key) changes nothing.
    pub async fn save(
        &self,
        owner: &str,
        key: &str,
        answer: &StoredAnswer,
        store_id: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO idempotency_keys (owner, key, request_hash, status, body, store_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, key) DO NOTHING",
        )
        .bind(owner)
        .bind(key)
        .bind(&answer.request_hash)
        .bind(i64::from(answer.status))
        .bind(&answer.body)
        .bind(store_id)
        .bind(Utc::now())
        .execute(&self.pool)
        .await
        .map(drop)
    }
}

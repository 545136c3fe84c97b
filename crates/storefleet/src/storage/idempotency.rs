//! Idempotency keys of `POST /stores`: per (owner, key), the hash of the request and the first answer,
//! for `--idempotency-ttl` (24 h by default, as Stripe's); after that the key is free again and
//! housekeeping deletes it.
use std::time::Duration;

use chrono::Utc;
use sqlx::{AnyPool, Row};

use super::Stamp;

/// The answer given the first time a key was used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAnswer {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

#[derive(Clone)]
pub struct IdempotencyStore {
    pool: AnyPool,
    ttl: Duration,
}

impl IdempotencyStore {
    pub(super) fn new(pool: AnyPool, ttl: Duration) -> Self {
        Self { pool, ttl }
    }

    /// Keys saved before this have expired.
    fn cutoff(&self) -> Stamp {
        Stamp(Utc::now() - chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX))
    }

    pub async fn find(&self, owner: &str, key: &str) -> Result<Option<StoredAnswer>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency_keys \
             WHERE owner = $1 AND key = $2 AND created_at >= $3",
        )
        .bind(owner)
        .bind(key)
        .bind(self.cutoff())
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

    /// Deletes expired keys; answers how many.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        Ok(
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(self.cutoff())
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Keeps the first answer: a second save for the same (owner, key) changes nothing, unless the
    /// first has expired.
    pub async fn save(
        &self,
        owner: &str,
        key: &str,
        answer: &StoredAnswer,
        store_id: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO idempotency_keys (owner, key, request_hash, status, body, store_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (owner, key) DO UPDATE SET \
             request_hash = excluded.request_hash, status = excluded.status, body = excluded.body, \
             store_id = excluded.store_id, created_at = excluded.created_at \
             WHERE idempotency_keys.created_at < $8",
        )
        .bind(owner)
        .bind(key)
        .bind(&answer.request_hash)
        .bind(i64::from(answer.status))
        .bind(&answer.body)
        .bind(store_id)
        .bind(Stamp::now())
        .bind(self.cutoff())
        .execute(&self.pool)
        .await
        .map(drop)
    }
}

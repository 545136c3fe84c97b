//! Dashboard sessions: the SHA-256 of each session id, the token it was opened with, and when it
//! expires (Unix seconds, wall clock: it must mean the same after a restart and on another replica).
//! The cookie handling is `api/session.rs`; this holds no usable credential.
use chrono::Utc;
use sqlx::{AnyPool, Row};

use crate::domain::TokenId;

#[derive(Clone)]
pub struct SessionStore {
    pool: AnyPool,
}

impl SessionStore {
    pub(super) fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Records a new session, and deletes the expired ones (no timer task needed).
    pub async fn open(
        &self,
        digest: &[u8; 32],
        token: &TokenId,
        ttl: std::time::Duration,
    ) -> Result<(), sqlx::Error> {
        let now = Utc::now().timestamp();
        let expires = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO sessions (digest, token_id, expires_at) VALUES ($1, $2, $3)")
            .bind(&digest[..])
            .bind(token.as_str())
            .bind(expires)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The token of an open, unexpired session.
    pub async fn find(&self, digest: &[u8; 32]) -> Result<Option<TokenId>, sqlx::Error> {
        let row =
            sqlx::query("SELECT token_id FROM sessions WHERE digest = $1 AND expires_at > $2")
                .bind(&digest[..])
                .bind(Utc::now().timestamp())
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let raw: String = row.try_get("token_id")?;
        // A row this code did not write is no session.
        Ok(TokenId::parse(&raw).ok())
    }

    pub async fn close(&self, digest: &[u8; 32]) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(&digest[..])
            .execute(&self.pool)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::storage::testing::TestDb;

    #[tokio::test]
    async fn open_find_close_and_expiry() {
        for TestDb { db, .. } in TestDb::each_backend().await {
            let sessions = db.sessions();
            let token = TokenId::parse("t-0123456789abcdef").unwrap();
            let (a, b) = ([1u8; 32], [2u8; 32]);
            sessions
                .open(&a, &token, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(sessions.find(&a).await.unwrap(), Some(token.clone()));
            assert_eq!(sessions.find(&b).await.unwrap(), None, "never opened");
            sessions.close(&a).await.unwrap();
            assert_eq!(sessions.find(&a).await.unwrap(), None, "closed");
            // A session whose time is up is not found, and the next open removes its row.
            sessions.open(&b, &token, Duration::ZERO).await.unwrap();
            assert_eq!(sessions.find(&b).await.unwrap(), None, "expired");
            sessions
                .open(&a, &token, Duration::from_secs(60))
                .await
                .unwrap();
            let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
                .fetch_one(&sessions.pool)
                .await
                .unwrap();
            assert_eq!(rows, 1, "the expired row went with the next open");
        }
    }
}

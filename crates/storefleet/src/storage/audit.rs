//! The audit log: who did what to which store, when, from where, and how it ended.
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Row, SqlitePool};
use utoipa::ToSchema;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Delete,
    Ready,
    Failed,
    Denied,
    CredentialsRevealed,
    UserCreated,
    UserUpdated,
    TokenCreated,
    TokenRevoked,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Delete => "delete",
            Action::Ready => "ready",
            Action::Failed => "failed",
            Action::Denied => "denied",
            Action::CredentialsRevealed => "credentials_revealed",
            Action::UserCreated => "user_created",
            Action::UserUpdated => "user_updated",
            Action::TokenCreated => "token_created",
            Action::TokenRevoked => "token_revoked",
        }
    }
}

/// A new audit entry.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub actor: String,
    pub action: Action,
    pub store_id: Option<String>,
    /// The owner of that store: members see entries about their stores (and the ones they made
    /// about no store).
    pub store_owner: Option<String>,
    pub outcome: String,
    pub detail: String,
    pub remote_addr: Option<String>,
}

impl AuditEntry {
    /// A refused request from nobody known (no or bad credentials), about no store.
    pub fn anonymous_denial(outcome: &str, detail: String, remote_addr: Option<String>) -> Self {
        Self {
            actor: "anonymous".into(),
            action: Action::Denied,
            store_id: None,
            store_owner: None,
            outcome: outcome.into(),
            detail,
            remote_addr,
        }
    }
}

/// A stored audit entry, as `GET /audit` answers it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// A user's name, `controller`, `storefleet` (start-up), or `anonymous` for unauthenticated requests.
    pub actor: String,
    /// create, delete, ready, failed, denied, credentials_revealed, user_created, user_updated,
    /// token_created or token_revoked.
    pub action: String,
    pub store_id: Option<String>,
    /// The owner of that store.
    pub store_owner: Option<String>,
    pub outcome: String,
    pub detail: String,
    pub remote_addr: Option<String>,
}

#[derive(Clone)]
pub struct AuditLog {
    pool: SqlitePool,
}

impl AuditLog {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Records an entry. A failure is logged, not returned: losing an audit line must not fail the
    /// action it describes (the action already happened in the cluster).
    pub async fn record(&self, entry: AuditEntry) {
        let result = sqlx::query(
            "INSERT INTO audit_log (at, actor, action, store_id, store_owner, outcome, detail, remote_addr) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(Utc::now())
        .bind(&entry.actor)
        .bind(entry.action.as_str())
        .bind(&entry.store_id)
        .bind(&entry.store_owner)
        .bind(&entry.outcome)
        .bind(&entry.detail)
        .bind(&entry.remote_addr)
        .execute(&self.pool)
        .await;
        if let Err(e) = result {
            tracing::error!(
                store_id = entry.store_id.as_deref().unwrap_or(""),
                action = entry.action.as_str(),
                "could not write the audit log: {e}"
            );
        }
    }

    /// Newest first. `member`: only what that user may read: entries about their stores, and the ones
    /// they made about no store (an attempt on another user's store is about that user's store).
    pub async fn list(
        &self,
        limit: u32,
        store_id: Option<&str>,
        member: Option<&str>,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, store_id, store_owner, outcome, detail, remote_addr \
             FROM audit_log WHERE (?1 IS NULL OR store_id = ?1) \
             AND (?3 IS NULL OR store_owner = ?3 OR (store_owner IS NULL AND actor = ?3)) \
             ORDER BY id DESC LIMIT ?2",
        )
        .bind(store_id)
        .bind(i64::from(limit))
        .bind(member)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    store_id: row.try_get("store_id")?,
                    store_owner: row.try_get("store_owner")?,
                    outcome: row.try_get("outcome")?,
                    detail: row.try_get("detail")?,
                    remote_addr: row.try_get("remote_addr")?,
                })
            })
            .collect()
    }
}

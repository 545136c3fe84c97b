//! The audit log: who did what to which store, when, from where, and how it ended.
//!
//! Nothing a caller sends can make an entry large or the log long: every field has a byte cap, and a
//! refusal (`denied`) repeated by one caller within a minute is one entry with a `count`. Retention
//! (`housekeeping.rs`) bounds the log's age and length.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AnyPool, Row};

use super::Stamp;
use utoipa::ToSchema;

/// Caps in bytes: a detail says what happened in a sentence; an actor is a user name or a built-in.
pub const DETAIL_MAX: usize = 512;
const FIELD_MAX: usize = 128;

/// Refusals by one caller within this window are counted in one entry.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);
/// Callers whose refusals are being counted at once; beyond this, windows are forgotten early.
const REFUSAL_KEYS_MAX: usize = 4096;

/// Actor names the control plane writes itself: no user may be called so (`UserName::parse`), and a
/// member's view of the log never includes them as "their own" entries.
pub const BUILT_IN_ACTORS: [&str; 4] = ["anonymous", "controller", "storefleet", "system"];

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    /// A change of a store's spec (`PATCH /stores/{id}`).
    Update,
    Delete,
    Ready,
    Failed,
    Denied,
    CredentialsRevealed,
    UserCreated,
    UserUpdated,
    TokenCreated,
    TokenRevoked,
    /// A fleet rollout: created, paused, resumed, aborted, a store rolled back, completed.
    Rollout,
    /// A store's backup: requested, deleted.
    Backup,
    /// A restore of a store from one of its backups: requested.
    Restore,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Ready => "ready",
            Action::Failed => "failed",
            Action::Denied => "denied",
            Action::CredentialsRevealed => "credentials_revealed",
            Action::UserCreated => "user_created",
            Action::UserUpdated => "user_updated",
            Action::TokenCreated => "token_created",
            Action::TokenRevoked => "token_revoked",
            Action::Rollout => "rollout",
            Action::Backup => "backup",
            Action::Restore => "restore",
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
    /// Every field within its cap (on a character boundary, marked `…`).
    fn capped(mut self) -> Self {
        self.detail = cap(self.detail, DETAIL_MAX);
        self.actor = cap(self.actor, FIELD_MAX);
        self.outcome = cap(self.outcome, FIELD_MAX);
        self.store_id = self.store_id.map(|s| cap(s, FIELD_MAX));
        self.store_owner = self.store_owner.map(|s| cap(s, FIELD_MAX));
        self.remote_addr = self.remote_addr.map(|s| cap(s, FIELD_MAX));
        self
    }

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

fn cap(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max - '…'.len_utf8();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// `203.0.113.7:51234` → `203.0.113.7`; `[2001:db8::1]:443` → `[2001:db8::1]`.
fn without_port(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(socket) => socket.ip().to_string(),
        Err(_) => addr.to_owned(),
    }
}

/// A stored audit entry, as `GET /audit` answers it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// A user's name, `controller`, `storefleet` (start-up), or `anonymous` for unauthenticated requests.
    pub actor: String,
    /// create, update, delete, ready, failed, denied, credentials_revealed, user_created, user_updated,
    /// token_created or token_revoked.
    pub action: String,
    pub store_id: Option<String>,
    /// The owner of that store.
    pub store_owner: Option<String>,
    pub outcome: String,
    pub detail: String,
    pub remote_addr: Option<String>,
    /// How many times this happened (a refusal repeated within a minute by one caller).
    pub count: i64,
}

/// Who is refused, for counting repeats: the caller (name, client address without its port) and what.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct RefusalKey {
    actor: String,
    outcome: String,
    store_id: Option<String>,
    address: Option<String>,
}

#[derive(Default)]
struct Refusals {
    /// The entry counting a key's refusals, and when its window opened.
    open: HashMap<RefusalKey, (i64, Instant)>,
}

#[derive(Clone)]
pub struct AuditLog {
    pool: AnyPool,
    /// Held across the write: two first refusals of one caller at once must not make two entries.
    refusals: Arc<tokio::sync::Mutex<Refusals>>,
}

impl AuditLog {
    pub(super) fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            refusals: Arc::default(),
        }
    }

    /// Records an entry. A failure is logged, not returned: losing an audit line must not fail the
    /// action it describes (the action already happened in the cluster).
    pub async fn record(&self, entry: AuditEntry) {
        let entry = entry.capped();
        let result = if entry.action == Action::Denied {
            self.record_refusal(&entry).await
        } else {
            self.insert(&entry).await.map(drop)
        };
        if let Err(e) = result {
            tracing::error!(
                store_id = entry.store_id.as_deref().unwrap_or(""),
                action = entry.action.as_str(),
                "could not write the audit log: {e}"
            );
        }
    }

    async fn insert(&self, entry: &AuditEntry) -> Result<i64, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO audit_log (at, actor, action, store_id, store_owner, outcome, detail, remote_addr) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(Stamp::now())
        .bind(&entry.actor)
        .bind(entry.action.as_str())
        .bind(&entry.store_id)
        .bind(&entry.store_owner)
        .bind(&entry.outcome)
        .bind(&entry.detail)
        .bind(&entry.remote_addr)
        .fetch_one(&self.pool)
        .await?;
        done.try_get("id")
    }

    /// The first refusal of a caller in a window is an entry; the repeats count in it.
    async fn record_refusal(&self, entry: &AuditEntry) -> Result<(), sqlx::Error> {
        let key = RefusalKey {
            actor: entry.actor.clone(),
            outcome: entry.outcome.clone(),
            store_id: entry.store_id.clone(),
            address: entry.remote_addr.as_deref().map(without_port),
        };
        let now = Instant::now();
        let mut refusals = self.refusals.lock().await;
        let counting = refusals
            .open
            .get(&key)
            .filter(|(_, since)| now.duration_since(*since) < REFUSAL_WINDOW)
            .map(|(id, _)| *id);
        if let Some(id) = counting {
            let updated = sqlx::query("UPDATE audit_log SET count = count + 1 WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?;
            // Gone (retention, a test's reset): start a new entry.
            if updated.rows_affected() == 1 {
                return Ok(());
            }
        }
        let id = self.insert(entry).await?;
        if refusals.open.len() >= REFUSAL_KEYS_MAX {
            refusals
                .open
                .retain(|_, (_, since)| now.duration_since(*since) < REFUSAL_WINDOW);
            if refusals.open.len() >= REFUSAL_KEYS_MAX {
                refusals.open.clear();
            }
        }
        refusals.open.insert(key, (id, now));
        Ok(())
    }

    /// Entries in the log.
    pub async fn entries(&self) -> Result<u64, sqlx::Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes entries older than `max_age` and, beyond `max_entries`, the oldest. Answers how many.
    pub async fn prune(
        &self,
        max_age: Option<Duration>,
        max_entries: Option<u64>,
    ) -> Result<u64, sqlx::Error> {
        let mut deleted = 0;
        if let Some(age) = max_age {
            let cutoff =
                Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
            deleted += sqlx::query("DELETE FROM audit_log WHERE at < $1")
                .bind(Stamp(cutoff))
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        if let Some(max) = max_entries {
            deleted += sqlx::query(
                "DELETE FROM audit_log WHERE id <= (SELECT id FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET $1)",
            )
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(deleted)
    }

    /// Newest first. `member`: only what that user may read: entries about their stores, and the ones
    /// they made about no store. Refusals of *other* callers about a member's store (someone probing
    /// store ids) are for admins only: the owner can do nothing about them, and they would let any
    /// member write into another member's view. Built-in actors' entries about no store are never
    /// a member's own, whatever a user is called.
    pub async fn list(
        &self,
        limit: u32,
        store_id: Option<&str>,
        member: Option<&str>,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        self.list_before(limit, store_id, member, None).await
    }

    /// As [`AuditLog::list`], only entries older than the entry `before_id` (ids only grow, so
    /// paging by id is stable while entries are written; retention only removes the oldest).
    pub async fn list_before(
        &self,
        limit: u32,
        store_id: Option<&str>,
        member: Option<&str>,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, store_id, store_owner, outcome, detail, remote_addr, count \
             FROM audit_log WHERE ($1 IS NULL OR store_id = $1) \
             AND ($3 IS NULL \
                  OR (store_owner = $3 AND (action != 'denied' OR actor = $3)) \
                  OR (store_owner IS NULL AND actor = $3 \
                      AND actor NOT IN ('anonymous', 'controller', 'storefleet', 'system'))) \
             AND ($4 IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(store_id)
        .bind(i64::from(limit))
        .bind(member)
        .bind(before_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    id: row.try_get("id")?,
                    at: row.try_get::<Stamp, _>("at")?.0,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    store_id: row.try_get("store_id")?,
                    store_owner: row.try_get("store_owner")?,
                    outcome: row.try_get("outcome")?,
                    detail: row.try_get("detail")?,
                    remote_addr: row.try_get("remote_addr")?,
                    count: row.try_get("count")?,
                })
            })
            .collect()
    }
}

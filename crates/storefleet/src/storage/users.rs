//! Users and their API tokens (SQLite, the same pool as the audit log). Tokens are kept as SHA-256
//! digests only (see `domain::token`); nothing here ever holds a usable token after handing it out.
use anyhow::bail;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Backend, Stamp, begin_write, flag};

use crate::domain::{Role, TokenHash, TokenId, TokenSecret, UserId, UserName};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub user_id: UserId,
    pub name: UserName,
    pub role: Role,
    /// Stores this user may have at once (the global `--max-stores` applies too).
    pub max_stores: u32,
    /// A disabled user's tokens and sessions are refused; their stores stay.
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A token's metadata (never the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub token_id: TokenId,
    pub user_id: UserId,
    /// The built-in admin's token from `--admin-token` or generated at first start.
    pub bootstrap: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenInfo {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A valid token (or session) and whose it is.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub user: User,
    pub token_id: TokenId,
}

/// Why a token was refused: for the audit log only; the caller always hears a plain 401.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    Unknown,
    Revoked(TokenId),
    Expired(TokenId),
    Disabled(TokenId),
}

impl AuthFailure {
    pub fn describe(&self) -> String {
        match self {
            AuthFailure::Unknown => "the token is not valid".into(),
            AuthFailure::Revoked(id) => format!("token {id} is revoked"),
            AuthFailure::Expired(id) => format!("token {id} has expired"),
            AuthFailure::Disabled(id) => format!("the user of token {id} is disabled"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("there is already a user named {0}")]
    NameTaken(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What the start-up bootstrap did about the built-in admin's token.
#[derive(Debug)]
pub enum Bootstrap {
    /// `--admin-token` is the admin's bootstrap token (again, or now instead of an older one).
    FromFlag,
    /// No flag, and an admin already has a live token: nothing to do, nothing to print.
    Kept,
    /// No flag and no live admin token: this one was made; it is printed once and only its hash kept.
    Generated(TokenSecret, TokenId),
}

#[derive(Clone)]
pub struct Users {
    pool: AnyPool,
    backend: Backend,
}

const USER_COLUMNS: &str = "user_id, name, role, max_stores, disabled, created_at";
const TOKEN_COLUMNS: &str = "token_id, user_id, bootstrap, created_at, expires_at, revoked_at";

impl Users {
    /// A transaction that reads, then writes, one at a time (`begin_write`): the other container's
    /// process, or another replica, may be writing users and tokens too.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        begin_write(&self.pool, self.backend).await
    }

    pub(super) fn new(pool: AnyPool, backend: Backend) -> Self {
        Self { pool, backend }
    }

    /// A new user and their first token, in one transaction.
    pub async fn create(
        &self,
        name: &UserName,
        role: Role,
        max_stores: u32,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(User, TokenSecret, TokenInfo), UserError> {
        let user = User {
            user_id: UserId::random(),
            name: name.clone(),
            role,
            max_stores,
            disabled: false,
            created_at: Utc::now(),
        };
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (user_id, name, role, max_stores, disabled, created_at) \
             VALUES ($1, $2, $3, $4, FALSE, $5)",
        )
        .bind(user.user_id.as_str())
        .bind(user.name.as_str())
        .bind(role.as_str())
        .bind(i64::from(max_stores))
        .bind(Stamp(user.created_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(UserError::NameTaken(name.to_string()));
            }
            other => other?,
        };
        let (secret, info) = insert_token(&mut tx, &user.user_id, expires_at, false).await?;
        tx.commit().await?;
        Ok((user, secret, info))
    }

    /// Every user, oldest first.
    pub async fn list(&self) -> Result<Vec<User>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, name"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(user_from)
        .collect()
    }

    pub async fn get(&self, id: &UserId) -> Result<Option<User>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE user_id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(user_from)
        .transpose()
    }

    /// Changes the quota and/or the disabled flag; `None`: no such user.
    pub async fn update(
        &self,
        id: &UserId,
        max_stores: Option<u32>,
        disabled: Option<bool>,
    ) -> Result<Option<User>, sqlx::Error> {
        sqlx::query(
            "UPDATE users SET max_stores = COALESCE($1, max_stores), disabled = COALESCE($2, disabled) \
             WHERE user_id = $3",
        )
        .bind(max_stores.map(i64::from))
        .bind(disabled)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        self.get(id).await
    }

    /// Tokens of one user, or of everybody; oldest first.
    pub async fn tokens(&self, of: Option<&UserId>) -> Result<Vec<TokenInfo>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE ($1 IS NULL OR user_id = $1) \
             ORDER BY created_at, token_id"
        ))
        .bind(of.map(UserId::as_str))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(token_from)
        .collect()
    }

    /// A new token for an existing user (the caller checked that the user exists).
    pub async fn issue_token(
        &self,
        user: &UserId,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(TokenSecret, TokenInfo), sqlx::Error> {
        let mut tx = self.write().await?;
        let issued = insert_token(&mut tx, user, expires_at, false).await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// Revokes a token of `user` (revoking twice keeps the first time). `None`: no such token of theirs.
    pub async fn revoke_token(
        &self,
        user: &UserId,
        token: &TokenId,
    ) -> Result<Option<TokenInfo>, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE token_id = $2 AND user_id = $3",
        )
        .bind(Stamp::now())
        .bind(token.as_str())
        .bind(user.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.token(token).await
    }

    async fn token(&self, token: &TokenId) -> Result<Option<TokenInfo>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_id = $1"
        ))
        .bind(token.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(token_from)
        .transpose()
    }

    /// Who a presented bearer token belongs to, if it is live and its user enabled.
    pub async fn authenticate(
        &self,
        presented: &str,
    ) -> Result<Result<Authenticated, AuthFailure>, sqlx::Error> {
        let presented = TokenHash::of(presented);
        let row = sqlx::query(&format!(
            "SELECT token_hash, {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"
        ))
        .bind(presented.as_bytes())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Err(AuthFailure::Unknown));
        };
        // The index lookup found it; the constant-time comparison is the check that counts.
        let stored: Vec<u8> = row.try_get("token_hash")?;
        if !TokenHash::from_slice(&stored).is_some_and(|h| h.matches(&presented)) {
            return Ok(Err(AuthFailure::Unknown));
        }
        self.check(token_from(&row)?).await
    }

    /// Who a dashboard session (opened with token `token`) belongs to, if the token is still live and
    /// its user enabled: revoking the token or disabling the user ends their sessions too.
    pub async fn authenticate_token_id(
        &self,
        token: &TokenId,
    ) -> Result<Result<Authenticated, AuthFailure>, sqlx::Error> {
        match self.token(token).await? {
            Some(info) => self.check(info).await,
            None => Ok(Err(AuthFailure::Unknown)),
        }
    }

    async fn check(
        &self,
        info: TokenInfo,
    ) -> Result<Result<Authenticated, AuthFailure>, sqlx::Error> {
        let id = info.token_id.clone();
        if info.revoked_at.is_some() {
            return Ok(Err(AuthFailure::Revoked(id)));
        }
        if !info.is_live(Utc::now()) {
            return Ok(Err(AuthFailure::Expired(id)));
        }
        let Some(user) = self.get(&info.user_id).await? else {
            return Ok(Err(AuthFailure::Unknown));
        };
        if user.disabled {
            return Ok(Err(AuthFailure::Disabled(id)));
        }
        Ok(Ok(Authenticated {
            user,
            token_id: info.token_id,
        }))
    }

    /// At start: makes sure the built-in `admin` user exists (role admin, quota `max_stores`) and can
    /// sign in. With `--admin-token`, that token becomes its bootstrap token (replacing an older one);
    /// without, a token is generated only if no admin has a live token.
    pub async fn bootstrap(
        &self,
        flag_token: Option<&str>,
        max_stores: u32,
    ) -> anyhow::Result<Bootstrap> {
        let now = Utc::now();
        let mut tx = self.write().await?;
        let existing = sqlx::query("SELECT user_id FROM users WHERE name = $1")
            .bind(UserName::ADMIN)
            .fetch_optional(&mut *tx)
            .await?;
        let admin = match existing {
            Some(row) => {
                let id = UserId::parse(&row.try_get::<String, _>("user_id")?)?;
                sqlx::query("UPDATE users SET role = 'admin', max_stores = $1 WHERE user_id = $2")
                    .bind(i64::from(max_stores))
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => {
                let id = UserId::random();
                sqlx::query(
                    "INSERT INTO users (user_id, name, role, max_stores, disabled, created_at) \
                     VALUES ($1, $2, 'admin', $3, FALSE, $4)",
                )
                .bind(id.as_str())
                .bind(UserName::ADMIN)
                .bind(i64::from(max_stores))
                .bind(Stamp(now))
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        let outcome = match flag_token {
            Some(token) => {
                let hash = TokenHash::of(token);
                // Whoever holds the flag is the root of trust: the built-in admin is enabled again.
                sqlx::query("UPDATE users SET disabled = FALSE WHERE user_id = $1")
                    .bind(admin.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 \
                     WHERE user_id = $2 AND bootstrap = TRUE AND revoked_at IS NULL AND token_hash != $3",
                )
                .bind(Stamp(now))
                .bind(admin.as_str())
                .bind(hash.as_bytes())
                .execute(&mut *tx)
                .await?;
                let holder = sqlx::query("SELECT user_id FROM api_tokens WHERE token_hash = $1")
                    .bind(hash.as_bytes())
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get::<String, _>("user_id"))
                    .transpose()?;
                match holder {
                    Some(holder) if holder == admin.as_str() => {
                        sqlx::query(
                            "UPDATE api_tokens SET bootstrap = TRUE, revoked_at = NULL, expires_at = NULL \
                             WHERE token_hash = $1",
                        )
                        .bind(hash.as_bytes())
                        .execute(&mut *tx)
                        .await?;
                    }
                    Some(_) => {
                        bail!("--admin-token is the token of another user; choose another one")
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO api_tokens (token_id, user_id, token_hash, bootstrap, created_at) \
                             VALUES ($1, $2, $3, TRUE, $4)",
                        )
                        .bind(TokenId::random().as_str())
                        .bind(admin.as_str())
                        .bind(hash.as_bytes())
                        .bind(Stamp(now))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Bootstrap::FromFlag
            }
            None => {
                let live: Vec<TokenInfo> = sqlx::query(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE revoked_at IS NULL AND user_id IN \
                     (SELECT user_id FROM users WHERE role = 'admin' AND disabled = FALSE)"
                ))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(token_from)
                .collect::<Result<_, _>>()?;
                if live.iter().any(|t| t.is_live(now)) {
                    Bootstrap::Kept
                } else {
                    sqlx::query("UPDATE users SET disabled = FALSE WHERE user_id = $1")
                        .bind(admin.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let (secret, info) = insert_token(&mut tx, &admin, None, true).await?;
                    Bootstrap::Generated(secret, info.token_id)
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

async fn insert_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user: &UserId,
    expires_at: Option<DateTime<Utc>>,
    bootstrap: bool,
) -> Result<(TokenSecret, TokenInfo), sqlx::Error> {
    let secret = TokenSecret::generate();
    let info = TokenInfo {
        token_id: TokenId::random(),
        user_id: user.clone(),
        bootstrap,
        created_at: Utc::now(),
        expires_at,
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO api_tokens (token_id, user_id, token_hash, bootstrap, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(info.token_id.as_str())
    .bind(user.as_str())
    .bind(secret.hash().as_bytes())
    .bind(bootstrap)
    .bind(Stamp(info.created_at))
    .bind(info.expires_at.map(Stamp))
    .execute(&mut **tx)
    .await?;
    Ok((secret, info))
}

fn decode<T>(
    column: &str,
    parsed: Result<T, crate::domain::DomainError>,
) -> Result<T, sqlx::Error> {
    parsed.map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(e),
    })
}

fn user_from(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        user_id: decode("user_id", UserId::parse(row.try_get("user_id")?))?,
        name: decode("name", UserName::from_stored(row.try_get("name")?))?,
        role: decode("role", Role::parse(row.try_get("role")?))?,
        max_stores: u32::try_from(row.try_get::<i64, _>("max_stores")?).unwrap_or(0),
        disabled: flag(row, "disabled")?,
        created_at: row.try_get::<Stamp, _>("created_at")?.0,
    })
}

fn token_from(row: &AnyRow) -> Result<TokenInfo, sqlx::Error> {
    Ok(TokenInfo {
        token_id: decode("token_id", TokenId::parse(row.try_get("token_id")?))?,
        user_id: decode("user_id", UserId::parse(row.try_get("user_id")?))?,
        bootstrap: flag(row, "bootstrap")?,
        created_at: row.try_get::<Stamp, _>("created_at")?.0,
        expires_at: row.try_get::<Option<Stamp>, _>("expires_at")?.map(|s| s.0),
        revoked_at: row.try_get::<Option<Stamp>, _>("revoked_at")?.map(|s| s.0),
    })
}

//! The admin API for users and their tokens: `/users...`. Admins only: members get 403. A token is
//! shown once, in the answer that creates it; afterwards only its `token_id` appears (in lists and
//! the audit log).
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{Problem, ProblemBody};
use super::stores::json_object;
use super::{ApiPath, AppState};
use crate::domain::{Role, TokenId, TokenSecret, UserId, UserName};
use crate::storage::{Action, AuditEntry, TokenInfo, User, UserError};
use crate::stores::Caller;

/// The longest a token may be made to last.
const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 60 * 60;

/// Body of `POST /users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Unique and immutable; the `owner` of the user's stores. 1 to 64 ASCII letters, digits or `.-_@`.
    #[schema(
        example = "alice",
        max_length = 64,
        pattern = "^[A-Za-z0-9._@-]{1,64}$"
    )]
    pub name: String,
    /// Defaults to `member`.
    #[serde(default)]
    pub role: Option<Role>,
    /// Stores this user may have at once; defaults to the platform's `--max-stores`.
    #[serde(default)]
    #[schema(example = 3)]
    pub max_stores: Option<u32>,
    /// The token's lifetime in seconds from now (1 to ten years). At most one of this and
    /// `expires_at`; neither: the token does not expire.
    #[serde(default)]
    #[schema(example = 86400, minimum = 1, maximum = 315360000)]
    pub expires_in_seconds: Option<u64>,
    /// When the token stops working (RFC 3339, in the future).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Body of `POST /users/{user_id}/tokens` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// The token's lifetime in seconds from now (1 to ten years). At most one of this and
    /// `expires_at`; neither: the token does not expire.
    #[serde(default)]
    #[schema(example = 86400, minimum = 1, maximum = 315360000)]
    pub expires_in_seconds: Option<u64>,
    /// When the token stops working (RFC 3339, in the future).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Body of `PATCH /users/{user_id}`: only the fields to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// Lowering it below the stores the user has deletes nothing; it stops new ones.
    #[serde(default)]
    pub max_stores: Option<u32>,
    /// A disabled user's tokens and sessions answer 401; their stores stay.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// A user, with their tokens' metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    #[schema(example = "u-3f2c9a1e7b2d4e51")]
    pub user_id: String,
    #[schema(example = "alice")]
    pub name: String,
    pub role: Role,
    #[schema(example = 3)]
    pub max_stores: u32,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub tokens: Vec<TokenView>,
}

/// A token's metadata; the token itself is never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    #[schema(example = "t-9a0c1f6a2b3c4d5e")]
    pub token_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The built-in admin's token from `--admin-token` (or generated at first start).
    pub bootstrap: bool,
}

/// Answer of `POST /users`: the new user and their first token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewUser {
    #[schema(example = "u-3f2c9a1e7b2d4e51")]
    pub user_id: String,
    #[schema(example = "alice")]
    pub name: String,
    pub role: Role,
    #[schema(example = 3)]
    pub max_stores: u32,
    /// The bearer token; store it now, it cannot be shown again.
    pub token: String,
    #[schema(example = "t-9a0c1f6a2b3c4d5e")]
    pub token_id: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Answer of `POST /users/{user_id}/tokens`: the token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewToken {
    #[schema(example = "t-9a0c1f6a2b3c4d5e")]
    pub token_id: String,
    #[schema(example = "u-3f2c9a1e7b2d4e51")]
    pub user_id: String,
    /// The bearer token; store it now, it cannot be shown again.
    pub token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Create a user (and their first token).
#[utoipa::path(
    post, path = "/users", tag = "users",
    request_body(content = CreateUserRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the token is shown this once", body = NewUser, headers(("Location" = String))),
        (status = 400, description = "Invalid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values or unknown fields", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn create_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    admin_only(&state, &caller, "POST /users").await?;
    let bytes = body.map_err(Problem::from)?;
    let request: CreateUserRequest = json_object(&headers, &bytes)?
        .ok_or_else(|| Problem::invalid("send a JSON object with at least `name`"))?;
    let name = UserName::parse(&request.name)?;
    let role = request.role.unwrap_or_default();
    let max_stores = request.max_stores.unwrap_or(state.stores.max_stores());
    let expires_at = expiry(request.expires_in_seconds, request.expires_at)?;
    let (user, token, info) = state
        .users
        .create(&name, role, max_stores, expires_at)
        .await
        .map_err(|e| match e {
            UserError::NameTaken(_) => Problem::new(
                StatusCode::CONFLICT,
                "user-exists",
                "User exists",
                e.to_string(),
            ),
            UserError::Database(e) => database(e),
        })?;
    audit(
        &state,
        &caller,
        Action::UserCreated,
        "created",
        format!(
            "user {} ({}, {} store(s)) with token {}",
            user.name,
            user.role.as_str(),
            user.max_stores,
            info.token_id
        ),
    )
    .await;
    tracing::info!(user = %user.name, user_id = %user.user_id, by = %caller.owner, "user created");
    let location = HeaderValue::from_str(&format!("/users/{}", user.user_id))
        .expect("user ids are header-safe");
    let body = NewUser {
        user_id: user.user_id.to_string(),
        name: user.name.to_string(),
        role: user.role,
        max_stores: user.max_stores,
        token: token.expose().to_owned(),
        token_id: info.token_id.to_string(),
        expires_at: info.expires_at,
    };
    Ok(shown_once(StatusCode::CREATED, Some(location), body))
}

/// List the users.
#[utoipa::path(
    get, path = "/users", tag = "users",
    responses(
        (status = 200, description = "Every user with their tokens' metadata, oldest first", body = Vec<UserView>),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn list_users(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<UserView>>, Problem> {
    admin_only(&state, &caller, "GET /users").await?;
    let users = state.users.list().await.map_err(database)?;
    let tokens = state.users.tokens(None).await.map_err(database)?;
    Ok(Json(
        users
            .iter()
            .map(|u| view(u, tokens.iter().filter(|t| t.user_id == u.user_id)))
            .collect(),
    ))
}

/// One user.
#[utoipa::path(
    get, path = "/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, example = "u-3f2c9a1e7b2d4e51")),
    responses(
        (status = 200, description = "The user, with their tokens' metadata", body = UserView),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn get_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<UserView>, Problem> {
    admin_only(&state, &caller, "GET /users/{user_id}").await?;
    let user = find(&state, &user_id).await?;
    let tokens = state
        .users
        .tokens(Some(&user.user_id))
        .await
        .map_err(database)?;
    Ok(Json(view(&user, tokens.iter())))
}

/// Change a user's quota, or disable/enable them.
#[utoipa::path(
    patch, path = "/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, example = "u-3f2c9a1e7b2d4e51")),
    request_body(content = UpdateUserRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The user as changed", body = UserView),
        (status = 400, description = "Invalid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "An admin cannot disable themselves", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values or unknown fields", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn update_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(user_id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<UserView>, Problem> {
    admin_only(&state, &caller, "PATCH /users/{user_id}").await?;
    let before = find(&state, &user_id).await?;
    let bytes = body.map_err(Problem::from)?;
    let change: UpdateUserRequest = json_object(&headers, &bytes)?.unwrap_or_default();
    if change.disabled == Some(true) && before.user_id == caller.user_id {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "cannot-disable-self",
            "Cannot disable yourself",
            "an admin cannot disable their own user; ask another admin",
        ));
    }
    let after = state
        .users
        .update(&before.user_id, change.max_stores, change.disabled)
        .await
        .map_err(database)?
        .ok_or_else(|| no_user(&user_id))?;
    audit(
        &state,
        &caller,
        Action::UserUpdated,
        "updated",
        format!(
            "user {}: max_stores {} -> {}, disabled {} -> {}",
            after.name, before.max_stores, after.max_stores, before.disabled, after.disabled
        ),
    )
    .await;
    let tokens = state
        .users
        .tokens(Some(&after.user_id))
        .await
        .map_err(database)?;
    Ok(Json(view(&after, tokens.iter())))
}

/// Give a user a new token.
#[utoipa::path(
    post, path = "/users/{user_id}/tokens", tag = "users",
    params(("user_id" = String, Path, example = "u-3f2c9a1e7b2d4e51")),
    request_body(content = Option<CreateTokenRequest>, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the token is shown this once", body = NewToken),
        (status = 400, description = "Invalid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values or unknown fields", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(user_id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    admin_only(&state, &caller, "POST /users/{user_id}/tokens").await?;
    let user = find(&state, &user_id).await?;
    let bytes = body.map_err(Problem::from)?;
    let request: CreateTokenRequest = json_object(&headers, &bytes)?.unwrap_or_default();
    let expires_at = expiry(request.expires_in_seconds, request.expires_at)?;
    let (token, info): (TokenSecret, TokenInfo) = state
        .users
        .issue_token(&user.user_id, expires_at)
        .await
        .map_err(database)?;
    audit(
        &state,
        &caller,
        Action::TokenCreated,
        "created",
        format!(
            "token {} for {}, expires {}",
            info.token_id,
            user.name,
            info.expires_at
                .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339())
        ),
    )
    .await;
    let body = NewToken {
        token_id: info.token_id.to_string(),
        user_id: user.user_id.to_string(),
        token: token.expose().to_owned(),
        created_at: info.created_at,
        expires_at: info.expires_at,
    };
    Ok(shown_once(StatusCode::CREATED, None, body))
}

/// Revoke a token (revoking it again is fine).
#[utoipa::path(
    delete, path = "/users/{user_id}/tokens/{token_id}", tag = "users",
    params(
        ("user_id" = String, Path, example = "u-3f2c9a1e7b2d4e51"),
        ("token_id" = String, Path, example = "t-9a0c1f6a2b3c4d5e"),
    ),
    responses(
        (status = 204, description = "Revoked; the token and the sessions opened with it stop working"),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user, or no such token of theirs", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((user_id, token_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    admin_only(&state, &caller, "DELETE /users/{user_id}/tokens/{token_id}").await?;
    let user = find(&state, &user_id).await?;
    let no_token = || Problem::not_found(format!("{} has no token {token_id}", user.name));
    let token = TokenId::parse(&token_id).map_err(|_| no_token())?;
    let revoked = state
        .users
        .revoke_token(&user.user_id, &token)
        .await
        .map_err(database)?
        .ok_or_else(no_token)?;
    audit(
        &state,
        &caller,
        Action::TokenRevoked,
        "revoked",
        format!(
            "token {} of {} (revoked at {})",
            token,
            user.name,
            revoked
                .revoked_at
                .map_or_else(String::new, |at| at.to_rfc3339())
        ),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Members get 403 (and the attempt is audited, as theirs).
async fn admin_only(state: &AppState, caller: &Caller, route: &str) -> Result<(), Problem> {
    super::auth::require_admin(state, caller, route, "only admins manage users and tokens").await
}

async fn find(state: &AppState, raw: &str) -> Result<User, Problem> {
    let id = UserId::parse(raw).map_err(|_| no_user(raw))?;
    state
        .users
        .get(&id)
        .await
        .map_err(database)?
        .ok_or_else(|| no_user(raw))
}

fn no_user(raw: &str) -> Problem {
    Problem::not_found(format!("there is no user {raw}"))
}

fn database(e: sqlx::Error) -> Problem {
    tracing::error!("users and tokens: {e}");
    super::health::unavailable("Database unavailable", format!("database: {e}"))
}

/// When a new token expires; refuses both forms at once, the past, and more than ten years.
fn expiry(
    in_seconds: Option<u64>,
    at: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, Problem> {
    let now = Utc::now();
    let latest = now + Duration::seconds(MAX_LIFETIME_SECONDS as i64);
    match (in_seconds, at) {
        (Some(_), Some(_)) => Err(Problem::invalid(
            "give `expires_in_seconds` or `expires_at`, not both",
        )),
        (Some(seconds), None) => {
            if !(1..=MAX_LIFETIME_SECONDS).contains(&seconds) {
                return Err(Problem::invalid(format!(
                    "`expires_in_seconds` must be between 1 and {MAX_LIFETIME_SECONDS}"
                )));
            }
            Ok(Some(now + Duration::seconds(seconds as i64)))
        }
        (None, Some(at)) if at <= now => {
            Err(Problem::invalid("`expires_at` must be in the future"))
        }
        (None, Some(at)) if at > latest => Err(Problem::invalid(
            "`expires_at` must be at most ten years from now",
        )),
        (None, at) => Ok(at),
    }
}

fn view<'a>(user: &User, tokens: impl Iterator<Item = &'a TokenInfo>) -> UserView {
    UserView {
        user_id: user.user_id.to_string(),
        name: user.name.to_string(),
        role: user.role,
        max_stores: user.max_stores,
        disabled: user.disabled,
        created_at: user.created_at,
        tokens: tokens
            .map(|t| TokenView {
                token_id: t.token_id.to_string(),
                created_at: t.created_at,
                expires_at: t.expires_at,
                revoked_at: t.revoked_at,
                bootstrap: t.bootstrap,
            })
            .collect(),
    }
}

/// An answer carrying a token: never cached.
fn shown_once(status: StatusCode, location: Option<HeaderValue>, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(location) = location {
        headers.insert(header::LOCATION, location);
    }
    response
}

async fn audit(state: &AppState, caller: &Caller, action: Action, outcome: &str, detail: String) {
    state
        .audit
        .record(AuditEntry {
            actor: caller.owner.to_string(),
            action,
            store_id: None,
            store_owner: None,
            outcome: outcome.into(),
            detail,
            remote_addr: caller.remote_addr.clone(),
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn bodies_refuse_unknown_fields() {
        let ok: CreateUserRequest = parse(
            r#"{"name": "alice", "role": "member", "max_stores": 3, "expires_in_seconds": 60}"#,
        )
        .unwrap();
        assert_eq!(
            (ok.name.as_str(), ok.role, ok.max_stores),
            ("alice", Some(Role::Member), Some(3))
        );
        assert_eq!(ok.expires_in_seconds, Some(60));
        assert!(parse::<CreateUserRequest>(r#"{"name": "a", "colour": "red"}"#).is_err());
        assert!(parse::<CreateUserRequest>(r#"{"name": "a", "role": "root"}"#).is_err());
        assert!(parse::<CreateUserRequest>(r#"{"name": "a", "max_stores": -1}"#).is_err());
        assert!(parse::<UpdateUserRequest>(r#"{"role": "admin"}"#).is_err());
        assert!(parse::<CreateTokenRequest>(r#"{"expires": 5}"#).is_err());
        let patch: UpdateUserRequest = parse(r#"{"disabled": true}"#).unwrap();
        assert_eq!((patch.max_stores, patch.disabled), (None, Some(true)));
    }

    #[test]
    fn expiry_is_checked() {
        let at = expiry(Some(60), None).unwrap().unwrap();
        assert!(at > Utc::now() + Duration::seconds(50));
        assert_eq!(expiry(None, None).unwrap(), None);
        let soon = Utc::now() + Duration::seconds(60);
        assert_eq!(expiry(None, Some(soon)).unwrap(), Some(soon));
        for (seconds, at) in [
            (None, Some(Utc::now() - Duration::seconds(1))),
            (None, Some(Utc::now() + Duration::days(20 * 365))),
            (Some(0), None),
            (Some(60), Some(soon)),
            (Some(u64::MAX), None),
        ] {
            assert_eq!(
                expiry(seconds, at).unwrap_err().status,
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
    }
}

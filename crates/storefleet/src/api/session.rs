//! Dashboard sign-in: `POST /session` trades a valid API token for an opaque session cookie, so the
//! browser never keeps the token (no `localStorage`, no script access: the cookie is HttpOnly).
//! Sessions live in the database as the SHA-256 of their id (no usable credential at rest), so a
//! restart or another replica signs nobody out. A session remembers the token it was opened with (by
//! id), and every request checks that token and its user again: revoking the token or disabling the
//! user ends the session.
//!
//! Over https the cookie is `__Host-storefleet_session` (`Secure`, `Path=/`, no `Domain`): a store on
//! a sibling host (`store-x.example.com` beside `storefleet.example.com`) cannot set or shadow a
//! `__Host-` cookie, so it can neither fix a session nor lock one out. Browsers refuse the prefix
//! without `Secure`, so plain http (a laptop) uses `storefleet_session`; there a request carrying two
//! session cookies is refused rather than guessed at.
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::AppState;
use super::auth::remote_addr;
use super::me::{self, Me};
use super::origin::{self, PublicOrigin};
use super::problem::{Problem, ProblemBody};
use crate::domain::TokenId;
use crate::storage::{AuditEntry, SessionStore};
use crate::stores::Caller;

/// The cookie's name over plain http.
pub const COOKIE: &str = "storefleet_session";
/// The cookie's name over https.
pub const SECURE_COOKIE: &str = "__Host-storefleet_session";

pub fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE } else { COOKIE }
}
/// A working day; after that the dashboard asks for the token again.
pub const TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Open sessions, in the database (`storage/sessions.rs`) keyed by the SHA-256 of the session id:
/// the table never holds a usable cookie, a restart signs nobody out, and every replica of the
/// control plane on one database knows every session.
pub struct Sessions {
    store: SessionStore,
    /// Adds `Secure` to the cookie (when the control plane is served over https).
    secure: bool,
}

impl Sessions {
    pub fn new(store: SessionStore, secure: bool) -> Self {
        Self { store, secure }
    }

    /// Opens a session for a (checked) token and answers the session's id (256 random bits, hex).
    pub async fn open(&self, token: TokenId) -> Result<String, sqlx::Error> {
        let bytes: [u8; 32] = rand::rng().random();
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.store.open(&digest(&id), &token, TTL).await?;
        Ok(id)
    }

    pub async fn find(&self, id: &str) -> Result<Option<TokenId>, sqlx::Error> {
        self.store.find(&digest(id)).await
    }

    pub async fn close(&self, id: &str) -> Result<(), sqlx::Error> {
        self.store.close(&digest(id)).await
    }

    /// Whether the session with this digest is still open (event streams check this to end when
    /// their session is signed out). A database that does not answer is `Err`: the caller decides.
    pub async fn is_open(&self, key: &[u8; 32]) -> Result<bool, sqlx::Error> {
        Ok(self.store.find(key).await?.is_some())
    }

    pub fn cookie_name(&self) -> &'static str {
        cookie_name(self.secure)
    }

    fn set_cookie(&self, id: &str) -> HeaderValue {
        self.cookie(id, TTL.as_secs())
    }

    fn clear_cookie(&self) -> HeaderValue {
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let name = self.cookie_name();
        HeaderValue::from_str(&format!(
            "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
        ))
        .expect("session cookies are header-safe")
    }
}

pub fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Two or more session cookies in one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwoCookies;

/// The session cookie(s) named `name` in the `Cookie` header(s): `Ok(None)` without one,
/// `Err(TwoCookies)` with two or more (ambiguous: which one the browser meant is unknowable).
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, TwoCookies> {
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, value)| value.trim());
    let first = values.next();
    if values.next().is_some() {
        return Err(TwoCookies);
    }
    Ok(first.filter(|value| !value.is_empty()))
}

/// How a request without a bearer token stands with respect to sessions.
pub enum CookieAuth {
    /// No session cookie at all.
    Absent,
    /// A live session, opened with this token (still to be checked), and the session's digest.
    Valid(TokenId, [u8; 32]),
    /// Unknown or expired session.
    Expired,
    /// A valid session, but an unsafe method from another origin.
    CrossOrigin,
    /// Two or more session cookies.
    Ambiguous,
}

/// `Err` when the database did not answer (503, not 401: the session may well be valid).
pub async fn authenticate(
    sessions: &Sessions,
    origin: &OriginCheck,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<CookieAuth, sqlx::Error> {
    // The parts, not the request: its body is not `Sync`, so no borrow of it may live across the
    // database call.
    let id = match cookie_value(headers, sessions.cookie_name()) {
        Ok(Some(id)) => id.to_owned(),
        Ok(None) => return Ok(CookieAuth::Absent),
        Err(TwoCookies) => return Ok(CookieAuth::Ambiguous),
    };
    let same_origin = origin.allows(method, uri, headers);
    Ok(match sessions.find(&id).await? {
        None => CookieAuth::Expired,
        Some(_) if !same_origin => CookieAuth::CrossOrigin,
        Some(token) => CookieAuth::Valid(token, digest(&id)),
    })
}

/// What the Origin check compares with (see `origin.rs`).
#[derive(Clone, Debug)]
pub struct OriginCheck {
    pub public: Option<PublicOrigin>,
    pub https: bool,
}

impl OriginCheck {
    pub fn allows(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        origin::same_origin(method, uri, headers, self.public.as_ref(), self.https)
    }
}

pub fn two_cookies() -> Problem {
    Problem::bad_request(
        "the request carries two session cookies; clear this site's cookies and sign in again",
    )
}

pub fn cross_origin() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "cross-origin",
        "Cross-origin request refused",
        "a request signed in with the session cookie must come from the dashboard's own origin",
    )
}

/// Body of `POST /session`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// An API token.
    pub token: String,
}

/// Sign in: check an API token and set the session cookie.
#[utoipa::path(
    post, path = "/session", tag = "session",
    request_body(content = SignIn, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in; `Set-Cookie: storefleet_session=...; HttpOnly; SameSite=Strict`", body = Me,
            headers(("Set-Cookie" = String))),
        (status = 400, description = "Invalid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "The token is not valid, revoked or expired, or its user disabled", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Sent from another origin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "No token field, or unknown fields", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn sign_in(State(state): State<AppState>, req: Request) -> Result<Response, Response> {
    let remote = remote_addr(&req);
    // Login CSRF: another site must not sign the browser in to an account of its choosing.
    if !state
        .guard
        .settings
        .origin
        .allows(req.method(), req.uri(), req.headers())
    {
        deny(
            &state,
            remote,
            "cross-origin",
            "POST /session from another origin",
        )
        .await;
        return Err(refused_sign_in(cross_origin()));
    }
    sign_in_checked(&state, remote, req)
        .await
        .map_err(|(problem, refused)| {
            if refused {
                refused_sign_in(problem)
            } else {
                problem.into_response()
            }
        })
}

/// The rest of `POST /session`; `(problem, true)` when the credentials were refused.
async fn sign_in_checked(
    state: &AppState,
    remote: Option<String>,
    req: Request,
) -> Result<Response, (Problem, bool)> {
    let body: Result<Json<SignIn>, JsonRejection> = Json::from_request(req, &()).await;
    let Json(SignIn { token }) = body.map_err(|r| (Problem::from(r), false))?;
    let found = state
        .users
        .authenticate(token.trim())
        .await
        .map_err(|e| (super::auth::database_problem(e), false))?;
    let found = match found {
        Ok(found) => found,
        Err(failure) => {
            let detail = format!("POST /session: {}", failure.describe());
            deny(state, remote, "unauthorized", &detail).await;
            return Err((Problem::unauthorized(super::auth::refusal(&failure)), true));
        }
    };
    let caller = Caller::new(&found.user, remote);
    let me = me::describe(state, &caller).await.map_err(|p| (p, false))?;
    let id = state
        .sessions
        .open(found.token_id)
        .await
        .map_err(|e| (super::auth::database_problem(e), false))?;
    let mut response = Json(me).into_response();
    let headers = response.headers_mut();
    headers.insert(header::SET_COOKIE, state.sessions.set_cookie(&id));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Sign out: forget the session and clear the cookie (also fine when not signed in).
#[utoipa::path(
    delete, path = "/session", tag = "session",
    responses(
        (status = 204, description = "Signed out; the cookie is cleared", headers(("Set-Cookie" = String))),
        (status = 403, description = "Sent from another origin", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn sign_out(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    if !state.guard.settings.origin.allows(&method, &uri, &headers) {
        return Err(refused_sign_in(cross_origin()));
    }
    // With two cookies neither is trusted; the cookie is cleared all the same.
    if let Ok(Some(id)) = cookie_value(&headers, state.sessions.cookie_name()) {
        state
            .sessions
            .close(id)
            .await
            .map_err(|e| super::auth::database_problem(e).into_response())?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, state.sessions.clear_cookie())],
    )
        .into_response())
}

/// A refused sign-in or cross-origin attempt counts against the client's address
/// (`guard/auth_failures.rs`).
fn refused_sign_in(problem: Problem) -> Response {
    let mut response = problem.into_response();
    response
        .extensions_mut()
        .insert(crate::api::guard::auth_failures::RefusedCredentials);
    response
}

async fn deny(state: &AppState, remote: Option<String>, outcome: &str, detail: &str) {
    state
        .audit
        .record(AuditEntry::anonymous_denial(outcome, detail.into(), remote))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        h
    }

    async fn sessions(secure: bool) -> (tempfile::TempDir, Sessions) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let db = crate::storage::Database::connect(&url).await.unwrap();
        (dir, Sessions::new(db.sessions(), secure))
    }

    #[tokio::test]
    async fn sessions_open_find_close() {
        let (_dir, sessions) = sessions(false).await;
        let token = TokenId::random();
        let id = sessions.open(token.clone()).await.unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(
            id,
            sessions.open(token.clone()).await.unwrap(),
            "ids are random"
        );
        assert_eq!(sessions.find(&id).await.unwrap(), Some(token));
        assert_eq!(sessions.find(&id[1..]).await.unwrap(), None);
        sessions.close(&id).await.unwrap();
        assert_eq!(sessions.find(&id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn cookie_flags() {
        let (_d1, plain_sessions) = sessions(false).await;
        let (_d2, secure_sessions) = sessions(true).await;
        let plain = plain_sessions.set_cookie("abc");
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("storefleet_session=abc;"), "{plain}");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(plain.contains(flag), "{flag} missing: {plain}");
        }
        assert!(!plain.contains("Secure"));
        assert!(
            secure_sessions
                .set_cookie("abc")
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert!(
            plain_sessions
                .clear_cookie()
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let h = headers(&[(header::COOKIE, "a=1; storefleet_session=xyz ; b=2")]);
        assert_eq!(cookie_value(&h, COOKIE), Ok(Some("xyz")));
        let h = headers(&[
            (header::COOKIE, "a=1"),
            (header::COOKIE, "storefleet_session=q"),
        ]);
        assert_eq!(cookie_value(&h, COOKIE), Ok(Some("q")));
        assert_eq!(
            cookie_value(&headers(&[(header::COOKIE, "storefleet_session=")]), COOKIE),
            Ok(None)
        );
        assert_eq!(
            cookie_value(
                &headers(&[(header::COOKIE, "xstorefleet_session=1")]),
                COOKIE
            ),
            Ok(None)
        );
        assert_eq!(cookie_value(&HeaderMap::new(), COOKIE), Ok(None));
    }

    #[test]
    fn two_session_cookies_are_ambiguous() {
        let one_header = headers(&[(header::COOKIE, "storefleet_session=a; storefleet_session=b")]);
        assert_eq!(cookie_value(&one_header, COOKIE), Err(TwoCookies));
        let two_headers = headers(&[
            (header::COOKIE, "storefleet_session=a"),
            (header::COOKIE, "storefleet_session=a"),
        ]);
        assert_eq!(cookie_value(&two_headers, COOKIE), Err(TwoCookies));
        // Over https only the `__Host-` cookie counts: a plain one tossed by a sibling host is ignored.
        let mixed = headers(&[(
            header::COOKIE,
            "storefleet_session=a; __Host-storefleet_session=b",
        )]);
        assert_eq!(cookie_value(&mixed, SECURE_COOKIE), Ok(Some("b")));
    }

    #[tokio::test]
    async fn secure_sessions_use_the_host_prefix() {
        let (_dir, secure) = sessions(true).await;
        let cookie = secure.set_cookie("abc");
        let cookie = cookie.to_str().unwrap();
        assert!(
            cookie.starts_with("__Host-storefleet_session=abc;"),
            "{cookie}"
        );
        assert!(
            cookie.contains("; Secure") && cookie.contains("Path=/") && !cookie.contains("Domain")
        );
    }
}

//! Dashboard sign-in: `POST /session` trades a valid API token for an opaque session cookie, so the
//! browser never keeps the token (no `localStorage`, no script access: the cookie is HttpOnly).
//! Sessions live in memory only: a restart signs everybody out, which is acceptable for a dashboard
//! and keeps no credential at rest. A session remembers the token it was opened with (by id), and
//! every request checks that token and its user again: revoking the token or disabling the user ends
//! the session.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::AppState;
use super::auth::remote_addr;
use super::me::{self, Me};
use super::problem::{Problem, ProblemBody};
use crate::domain::TokenId;
use crate::storage::AuditEntry;
use crate::stores::Caller;

pub const COOKIE: &str = "storefleet_session";
/// A working day; after that the dashboard asks for the token again.
pub const TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Open sessions, keyed by the SHA-256 of the session id: the map never holds a usable cookie, and
/// looking a digest up leaks nothing about the id through timing.
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], (TokenId, Instant)>>,
    /// Adds `Secure` to the cookie (when the control plane is served over https).
    secure: bool,
}

impl Sessions {
    pub fn new(secure: bool) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            secure,
        }
    }

    /// Opens a session for a (checked) token and answers the session's id (256 random bits, hex).
    pub fn open(&self, token: TokenId) -> String {
        let bytes: [u8; 32] = rand::rng().random();
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut open = self.open.lock().expect("sessions lock");
        // Expired sessions go whenever a new one opens: no timer task needed.
        open.retain(|_, (_, expires)| *expires > now);
        open.insert(digest(&id), (token, now + TTL));
        id
    }

    pub fn find(&self, id: &str) -> Option<TokenId> {
        let key = digest(id);
        let mut open = self.open.lock().expect("sessions lock");
        match open.get(&key) {
            Some((token, expires)) if *expires > Instant::now() => Some(token.clone()),
            Some(_) => {
                open.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        self.open.lock().expect("sessions lock").remove(&digest(id));
    }

    fn set_cookie(&self, id: &str) -> HeaderValue {
        self.cookie(id, TTL.as_secs())
    }

    fn clear_cookie(&self) -> HeaderValue {
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
        ))
        .expect("session cookies are header-safe")
    }
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The session id from the `Cookie` header(s), if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// CSRF defence in depth (SameSite=Strict is the first line): a cookie-authenticated request that
/// changes something must not come from another origin. Browsers send `Origin` on such requests;
/// clients that send none (curl, scripts) are not browsers and are let through.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// How a request without a bearer token stands with respect to sessions.
pub enum CookieAuth {
    /// No session cookie at all.
    Absent,
    /// A live session, opened with this token (still to be checked).
    Valid(TokenId),
    /// Unknown or expired session.
    Expired,
    /// A valid session, but an unsafe method from another origin.
    CrossOrigin,
}

pub fn authenticate(sessions: &Sessions, req: &Request) -> CookieAuth {
    let Some(id) = cookie_value(req.headers()) else {
        return CookieAuth::Absent;
    };
    match sessions.find(id) {
        None => CookieAuth::Expired,
        Some(_) if !same_origin(req.method(), req.headers()) => CookieAuth::CrossOrigin,
        Some(token) => CookieAuth::Valid(token),
    }
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
pub async fn sign_in(State(state): State<AppState>, req: Request) -> Result<Response, Problem> {
    let remote = remote_addr(&req);
    // Login CSRF: another site must not sign the browser in to an account of its choosing.
    if !same_origin(req.method(), req.headers()) {
        deny(
            &state,
            remote,
            "cross-origin",
            "POST /session from another origin",
        )
        .await;
        return Err(cross_origin());
    }
    let body: Result<Json<SignIn>, JsonRejection> = Json::from_request(req, &()).await;
    let Json(SignIn { token }) = body.map_err(Problem::from)?;
    let found = state
        .users
        .authenticate(token.trim())
        .await
        .map_err(|e| Problem::internal(format!("checking the token: {e}")))?;
    let found = match found {
        Ok(found) => found,
        Err(failure) => {
            let detail = format!("POST /session: {}", failure.describe());
            deny(&state, remote, "unauthorized", &detail).await;
            return Err(Problem::unauthorized(super::auth::refusal(&failure)));
        }
    };
    let caller = Caller::new(&found.user, remote);
    let me = me::describe(&state, &caller).await?;
    let id = state.sessions.open(found.token_id);
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
    headers: HeaderMap,
) -> Result<Response, Problem> {
    if !same_origin(&method, &headers) {
        return Err(cross_origin());
    }
    if let Some(id) = cookie_value(&headers) {
        state.sessions.close(id);
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, state.sessions.clear_cookie())],
    )
        .into_response())
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

    #[test]
    fn sessions_open_find_close() {
        let sessions = Sessions::new(false);
        let token = TokenId::random();
        let id = sessions.open(token.clone());
        assert_eq!(id.len(), 64);
        assert_ne!(id, sessions.open(token.clone()), "ids are random");
        assert_eq!(sessions.find(&id), Some(token));
        assert_eq!(sessions.find(&id[1..]), None);
        sessions.close(&id);
        assert_eq!(sessions.find(&id), None);
    }

    #[test]
    fn cookie_flags() {
        let plain = Sessions::new(false).set_cookie("abc");
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("storefleet_session=abc;"), "{plain}");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(plain.contains(flag), "{flag} missing: {plain}");
        }
        assert!(!plain.contains("Secure"));
        assert!(
            Sessions::new(true)
                .set_cookie("abc")
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert!(
            Sessions::new(false)
                .clear_cookie()
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let h = headers(&[(header::COOKIE, "a=1; storefleet_session=xyz ; b=2")]);
        assert_eq!(cookie_value(&h), Some("xyz"));
        let h = headers(&[
            (header::COOKIE, "a=1"),
            (header::COOKIE, "storefleet_session=q"),
        ]);
        assert_eq!(cookie_value(&h), Some("q"));
        assert_eq!(
            cookie_value(&headers(&[(header::COOKIE, "storefleet_session=")])),
            None
        );
        assert_eq!(
            cookie_value(&headers(&[(header::COOKIE, "xstorefleet_session=1")])),
            None
        );
        assert_eq!(cookie_value(&HeaderMap::new()), None);
    }

    #[test]
    fn origin_must_match_host_for_unsafe_methods() {
        let host = (header::HOST, "127.0.0.1:8080");
        let same = headers(&[host.clone(), (header::ORIGIN, "http://127.0.0.1:8080")]);
        let other = headers(&[host.clone(), (header::ORIGIN, "http://evil.example")]);
        let null = headers(&[host.clone(), (header::ORIGIN, "null")]);
        let none = headers(&[host]);
        assert!(same_origin(&Method::POST, &same));
        assert!(!same_origin(&Method::POST, &other));
        assert!(!same_origin(&Method::DELETE, &null));
        assert!(
            same_origin(&Method::DELETE, &none),
            "non-browser clients send no Origin"
        );
        assert!(
            same_origin(&Method::GET, &other),
            "safe methods change nothing"
        );
    }
}

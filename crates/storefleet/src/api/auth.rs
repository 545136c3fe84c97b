//! Authentication: a bearer token, or the dashboard's session cookie (see `session.rs`), resolved to a
//! user on every request (so revoking a token or disabling a user takes effect at once). The caller
//! becomes a [`Caller`] in the request's extensions.
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::guard::auth_failures::RefusedCredentials;
use super::guard::rate_limit::{client_address, too_many_requests};
use super::problem::Problem;
use super::session::{self, CookieAuth};
use crate::storage::{AuditEntry, AuthFailure, Authenticated};
use crate::stores::Caller;
use crate::telemetry;

/// The bearer token of a request, as authentication reads it (`Some("")` for two `Authorization`
/// headers). The rate limits key by this too, so spellings of one token share one bucket.
pub fn bearer(req: &Request) -> Option<&str> {
    bearer_in(req.headers())
}

pub fn bearer_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    // Two Authorization headers are ambiguous: which one a proxy checked is unknowable. Refuse both.
    if values.next().is_some() {
        return Some("");
    }
    // RFC 9110: the scheme and the credentials are separated by spaces (not tabs).
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub fn remote_addr(req: &Request) -> Option<String> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.to_string())
}

/// What the client hears about a refused token (the audit log names the token id as well).
pub fn refusal(failure: &AuthFailure) -> &'static str {
    match failure {
        AuthFailure::Unknown => "the bearer token is not valid",
        AuthFailure::Revoked(_) => "this token has been revoked",
        AuthFailure::Expired(_) => "this token has expired",
        AuthFailure::Disabled(_) => "this user is disabled",
    }
}

/// Why a request was not let through: (outcome, detail for the client, detail for the audit log).
struct Refused(&'static str, &'static str, String);

/// Which credential a request came with: event streams end when it stops being valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Token(crate::domain::TokenId),
    /// A dashboard session (by its digest), opened with that token.
    Session(crate::domain::TokenId, [u8; 32]),
}

impl Refused {
    fn token(failure: &AuthFailure, via: &str) -> Self {
        Self(
            "unauthorized",
            refusal(failure),
            format!("{via}: {}", failure.describe()),
        )
    }

    fn plain(detail: &'static str) -> Self {
        Self("unauthorized", detail, detail.to_owned())
    }
}

/// Lets the request through with a [`Caller`] in its extensions, or answers 401 (and audits it).
/// A bearer token wins; without one, the dashboard's session cookie is accepted. An address over the
/// refused-sign-in limit gets 429 before anything is checked or written.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let remote = remote_addr(&req);
    let address = client_address(&req, state.guard.settings.trust_forwarded_for);
    if let Some(address) = address
        && let Some(wait) = state.guard.auth_failures.blocked_for(address)
    {
        return too_many_requests(
            wait,
            "too many refused requests from this address; wait before trying again",
        );
    }
    let identified: Result<(Authenticated, Credential), Refused> = match bearer(&req) {
        Some(token) => match state.users.authenticate(token).await {
            Ok(found) => found
                .map(|a| {
                    let credential = Credential::Token(a.token_id.clone());
                    (a, credential)
                })
                .map_err(|f| Refused::token(&f, "bearer token")),
            Err(e) => return database_problem(e).into_response(),
        },
        None => match session::authenticate(
            &state.sessions,
            &state.guard.settings.origin,
            req.method(),
            req.uri(),
            req.headers(),
        )
        .await
        {
            Err(e) => return database_problem(e).into_response(),
            Ok(cookie) => match cookie {
                CookieAuth::Valid(token_id, session) => {
                    match state.users.authenticate_token_id(&token_id).await {
                        Ok(found) => found
                            .map(|a| (a, Credential::Session(token_id, session)))
                            .map_err(|f| {
                                Refused(
                                    "unauthorized",
                                    "the session has ended; sign in again",
                                    format!("session: {}", f.describe()),
                                )
                            }),
                        Err(e) => return database_problem(e).into_response(),
                    }
                }
                CookieAuth::Absent => Err(Refused::plain("send `Authorization: Bearer <token>`")),
                CookieAuth::Expired => Err(Refused::plain("the session has ended; sign in again")),
                CookieAuth::CrossOrigin => Err(Refused(
                    "cross-origin",
                    "a session-cookie request from another origin",
                    "a session-cookie request from another origin".into(),
                )),
                CookieAuth::Ambiguous => Err(Refused(
                    "two-session-cookies",
                    "two session cookies",
                    "two session cookies".into(),
                )),
            },
        },
    };
    match identified {
        Ok((found, credential)) => {
            req.extensions_mut()
                .insert(Caller::new(&found.user, remote).with_credential(credential));
            next.run(req).await
        }
        Err(Refused(outcome, client, audited)) => {
            // The route template, never the raw path: a path is the caller's to make as long as it likes.
            let detail = format!("{} {}: {audited}", req.method(), telemetry::route(&req));
            state
                .audit
                .record(AuditEntry::anonymous_denial(outcome, detail, remote))
                .await;
            let mut response = match outcome {
                "cross-origin" => session::cross_origin().into_response(),
                "two-session-cookies" => session::two_cookies().into_response(),
                _ => Problem::unauthorized(client).into_response(),
            };
            response.extensions_mut().insert(RefusedCredentials);
            response
        }
    }
}

/// The user table could not be read: the database is a dependency that is away, not a bug here.
pub fn database_problem(e: sqlx::Error) -> Problem {
    tracing::error!("reading users and tokens: {e}");
    Problem::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Database unavailable",
        "could not check the token: the database did not answer; retry in a few seconds",
    )
}

/// Admin-only routes: members get 403 saying `why`, and the attempt is audited as theirs.
pub(super) async fn require_admin(
    state: &AppState,
    caller: &Caller,
    route: &str,
    why: &str,
) -> Result<(), Problem> {
    if caller.is_admin() {
        return Ok(());
    }
    state
        .stores
        .deny(caller, "forbidden", format!("{route}: admins only"))
        .await;
    Err(Problem::new(
        axum::http::StatusCode::FORBIDDEN,
        "forbidden",
        "Forbidden",
        why,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn with_auth(value: &str) -> Request {
        Request::builder()
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn reads_only_bearer_tokens() {
        assert_eq!(bearer(&with_auth("Bearer sf_abc")), Some("sf_abc"));
        assert_eq!(bearer(&with_auth("bearer  sf_abc ")), Some("sf_abc"));
        assert_eq!(bearer(&with_auth("Basic YWRtaW46eA==")), None);
        assert_eq!(bearer(&with_auth("sf_abc")), None);
        assert_eq!(bearer(&with_auth("Bearer\tsf_abc")), None);
        assert_eq!(bearer(&Request::new(Body::empty())), None);
    }
}

//! Authentication: a bearer token, or the dashboard's session cookie (see `session.rs`), resolved to a
//! user on every request (so revoking a token or disabling a user takes effect at once). The caller
//! becomes a [`Caller`] in the request's extensions.
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::Problem;
use super::session::{self, CookieAuth};
use crate::storage::{AuditEntry, AuthFailure, Authenticated};
use crate::stores::Caller;

fn bearer(req: &Request) -> Option<&str> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    // Two Authorization headers are ambiguous: which one a proxy checked is unknowable. Refuse both.
    if values.next().is_some() {
        return Some("");
    }
    let (scheme, token) = value.split_once(' ')?;
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
/// A bearer token wins; without one, the dashboard's session cookie is accepted.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let remote = remote_addr(&req);
    let identified: Result<Authenticated, Refused> = match bearer(&req) {
        Some(token) => match state.users.authenticate(token).await {
            Ok(found) => found.map_err(|f| Refused::token(&f, "bearer token")),
            Err(e) => return database_error(e),
        },
        None => match session::authenticate(&state.sessions, &req) {
            CookieAuth::Valid(token_id) => match state.users.authenticate_token_id(&token_id).await
            {
                Ok(found) => found.map_err(|f| {
                    Refused(
                        "unauthorized",
                        "the session has ended; sign in again",
                        format!("session: {}", f.describe()),
                    )
                }),
                Err(e) => return database_error(e),
            },
            CookieAuth::Absent => Err(Refused::plain("send `Authorization: Bearer <token>`")),
            CookieAuth::Expired => Err(Refused::plain("the session has ended; sign in again")),
            CookieAuth::CrossOrigin => Err(Refused(
                "cross-origin",
                "a session-cookie request from another origin",
                "a session-cookie request from another origin".into(),
            )),
        },
    };
    match identified {
        Ok(found) => {
            req.extensions_mut()
                .insert(Caller::new(&found.user, remote));
            next.run(req).await
        }
        Err(Refused(outcome, client, audited)) => {
            let detail = format!("{} {}: {audited}", req.method(), req.uri().path());
            state
                .audit
                .record(AuditEntry::anonymous_denial(outcome, detail, remote))
                .await;
            if outcome == "cross-origin" {
                session::cross_origin().into_response()
            } else {
                Problem::unauthorized(client).into_response()
            }
        }
    }
}

fn database_error(e: sqlx::Error) -> Response {
    tracing::error!("reading users and tokens: {e}");
    Problem::internal("could not check the token").into_response()
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
        assert_eq!(bearer(&Request::new(Body::empty())), None);
    }
}

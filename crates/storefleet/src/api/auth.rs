//! Authentication: a bearer token, or the dashboard's session cookie (see `session.rs`). One admin
//! token for now; the caller becomes the owner `admin`.
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::problem::Problem;
use super::session::{self, CookieAuth};
use crate::domain::Owner;
use crate::storage::{Action, AuditEntry};
use crate::stores::Caller;

/// The admin token, kept only as a digest: comparing digests in constant time leaks neither the
/// token's content nor its length through timing.
pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    pub fn verify(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub fn remote_addr(req: &Request) -> Option<String> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.to_string())
}

/// Who a token belongs to. One admin token for now; user tokens (issue 6) resolve here too.
pub fn identify(state: &AppState, token: &str) -> Option<Owner> {
    state.admin_token.verify(token).then(Owner::admin)
}

/// Lets the request through with a [`Caller`] in its extensions, or answers 401 (and audits it).
/// A bearer token wins; without one, the dashboard's session cookie is accepted.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let remote = remote_addr(&req);
    let identified = match bearer(&req) {
        Some(token) => identify(&state, token).ok_or("the bearer token is not valid"),
        None => match session::authenticate(&state.sessions, &req) {
            CookieAuth::Valid(owner) => Ok(owner),
            CookieAuth::Absent => Err("send `Authorization: Bearer <token>`"),
            CookieAuth::Expired => Err("the session has ended; sign in again"),
            CookieAuth::CrossOrigin => Err(CROSS_ORIGIN),
        },
    };
    match identified {
        Ok(owner) => {
            req.extensions_mut().insert(Caller {
                owner,
                remote_addr: remote,
            });
            next.run(req).await
        }
        Err(detail) => {
            let cross_origin = detail == CROSS_ORIGIN;
            state
                .audit
                .record(AuditEntry {
                    actor: "anonymous".into(),
                    action: Action::Denied,
                    store_id: None,
                    outcome: if cross_origin {
                        "cross-origin"
                    } else {
                        "unauthorized"
                    }
                    .into(),
                    detail: format!("{} {}: {detail}", req.method(), req.uri().path()),
                    remote_addr: remote,
                })
                .await;
            if cross_origin {
                session::cross_origin().into_response()
            } else {
                Problem::unauthorized(detail).into_response()
            }
        }
    }
}

const CROSS_ORIGIN: &str = "a session-cookie request from another origin";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_exactly_the_token() {
        let t = AdminToken::new("s3cret-token");
        assert!(t.verify("s3cret-token"));
        assert!(!t.verify("s3cret-tokeN"));
        assert!(!t.verify("s3cret-token "));
        assert!(!t.verify(""));
    }
}

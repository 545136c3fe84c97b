//! Bearer token authentication. One admin token for now; the caller becomes the owner `admin`.
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::problem::Problem;
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

/// Lets the request through with a [`Caller`] in its extensions, or answers 401 (and audits it).
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let remote = remote_addr(&req);
    match bearer(&req) {
        Some(token) if state.admin_token.verify(token) => {
            req.extensions_mut().insert(Caller {
                owner: Owner::admin(),
                remote_addr: remote,
            });
            next.run(req).await
        }
        presented => {
            let detail = if presented.is_some() {
                "the bearer token is not valid"
            } else {
                "send `Authorization: Bearer <token>`"
            };
            state
                .audit
                .record(AuditEntry {
                    actor: "anonymous".into(),
                    action: Action::Denied,
                    store_id: None,
                    outcome: "unauthorized".into(),
                    detail: format!("{} {}: {detail}", req.method(), req.uri().path()),
                    remote_addr: remote,
                })
                .await;
            Problem::unauthorized(detail).into_response()
        }
    }
}

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

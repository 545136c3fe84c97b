//! `GET /stores/{id}/credentials`: the WordPress admin login of a store, read from the Secret the store
//! chart generates (`<id>-credentials` in namespace `<id>`). Owner or admin only, and every reveal is
//! audited: this is the one endpoint that hands out a secret.
use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{Problem, ProblemBody};
use super::{ApiPath, AppState};
use crate::crd::Phase;
use crate::domain::StoreId;
use crate::storage::{Action, AuditEntry};
use crate::stores::Caller;

const USER_KEY: &str = "wordpress-admin-user";
const PASSWORD_KEY: &str = "wordpress-admin-password";
const EMAIL_KEY: &str = "wordpress-admin-email";

/// The store's WordPress admin login.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct Credentials {
    #[schema(example = "http://store-7016ff.localhost/wp-admin/")]
    pub admin_url: String,
    #[schema(example = "admin")]
    pub username: String,
    pub password: String,
    #[schema(example = "admin@store-7016ff.localhost")]
    pub email: String,
}

/// Reveal a store's admin credentials.
#[utoipa::path(
    get, path = "/stores/{store_id}/credentials", tag = "stores",
    params(("store_id" = String, Path, example = "store-7016ff")),
    responses(
        (status = 200, description = "The admin login (never cached)", body = Credentials),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or not yours)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Not available yet (the release is not installed) or the store is being deleted", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn reveal(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
) -> Result<Response, Problem> {
    let id = StoreId::parse(&store_id)?;
    // Another user's store answers (and is audited) exactly as one that does not exist.
    let view = state.stores.get(&caller, &id).await?;
    if view.status == Phase::Deleting {
        return Err(not_available(&id, "the store is being deleted"));
    }
    let secrets = Api::<Secret>::namespaced(state.client.clone(), id.as_str());
    let secret = secrets
        .get_opt(&format!("{id}-credentials"))
        .await
        .map_err(|e| {
            super::health::unavailable(
                "Kubernetes unavailable",
                format!("reading the credentials of {id}: {e}"),
            )
        })?;
    let data = secret.and_then(|s| s.data).unwrap_or_default();
    let credentials = from_secret(&data, view.admin_url)
        .ok_or_else(|| not_available(&id, "the credentials are not available yet; they appear once the store's release is installed"))?;
    tracing::info!(store_id = %id, owner = %caller.owner, "credentials revealed");
    state
        .audit
        .record(AuditEntry {
            actor: caller.owner.to_string(),
            action: Action::CredentialsRevealed,
            store_id: Some(id.to_string()),
            store_owner: Some(view.owner.clone()),
            outcome: "revealed".into(),
            detail: format!("admin login {:?}", credentials.username),
            remote_addr: caller.remote_addr.clone(),
        })
        .await;
    let mut response = Json(credentials).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn not_available(id: &StoreId, detail: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "credentials-not-available",
        "Credentials not available",
        detail,
    )
    .with_store(id.to_string())
}

/// All three keys, as UTF-8, or nothing.
fn from_secret(data: &BTreeMap<String, ByteString>, admin_url: String) -> Option<Credentials> {
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|s| !s.is_empty())
    };
    Some(Credentials {
        admin_url,
        username: text(USER_KEY)?,
        password: text(PASSWORD_KEY)?,
        email: text(EMAIL_KEY)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn needs_all_three_keys() {
        let full = data(&[
            (USER_KEY, "admin"),
            (PASSWORD_KEY, "pw"),
            (EMAIL_KEY, "a@b.c"),
            ("other", "x"),
        ]);
        let c = from_secret(&full, "u".into()).unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str(), c.email.as_str()),
            ("admin", "pw", "a@b.c")
        );
        assert!(
            from_secret(
                &data(&[(USER_KEY, "admin"), (PASSWORD_KEY, "pw")]),
                "u".into()
            )
            .is_none()
        );
        assert!(
            from_secret(
                &data(&[(USER_KEY, "admin"), (PASSWORD_KEY, ""), (EMAIL_KEY, "e")]),
                "u".into()
            )
            .is_none()
        );
        assert!(from_secret(&BTreeMap::new(), "u".into()).is_none());
    }
}

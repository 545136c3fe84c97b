//! `/stores/{store_id}/domains` handlers: a store's own domains. Thin: the rules are in
//! `crate::domains`.
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::problem::{Problem, ProblemBody};
use super::stores::json_object;
use super::{ApiPath, AppState};
use crate::domain::StoreId;
use crate::domains::{DomainView, DomainsError, Put};
use crate::stores::Caller;

/// Body of `PUT /stores/{store_id}/domains/{domain}`; optional (absent: not primary).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDomainRequest {
    /// WordPress's `home`/`siteurl` switch to this domain; the platform host stays an alias. At
    /// most one domain is primary: this one being primary makes the others not.
    #[serde(default)]
    pub primary: bool,
}

/// The store's own domains with their state.
#[utoipa::path(
    get, path = "/stores/{store_id}/domains", tag = "domains",
    params(("store_id" = String, Path, example = "store-7016ff")),
    responses(
        (status = 200, description = "The store's domains, the primary one first", body = [DomainView]),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn list_domains(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
) -> Result<Json<Vec<DomainView>>, Problem> {
    let id = StoreId::parse(&store_id)?;
    Ok(Json(state.domains.list(&caller, &id).await?))
}

/// Add a domain to the store (or change its `primary` flag). The store answers on it once DNS
/// points at the platform (and, with TLS, its certificate is issued): see its `state`.
#[utoipa::path(
    put, path = "/stores/{store_id}/domains/{domain}", tag = "domains",
    params(
        ("store_id" = String, Path, example = "store-7016ff"),
        ("domain" = String, Path, description = "A DNS name under a public suffix, Unicode or punycode, any case; one trailing dot is dropped; no wildcard, not the platform's base domain or under it", example = "shop.example.com"),
    ),
    request_body(content = Option<PutDomainRequest>, content_type = "application/json"),
    responses(
        (status = 201, description = "Added", body = DomainView),
        (status = 200, description = "The store already had it (its `primary` flag now as asked)", body = DomainView),
        (status = 400, description = "Invalid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The store has the platform's limit of domains (`--max-domains-per-store`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Another store has this domain (which one is not said), or the store is being deleted", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid domain (the detail says why), or unknown fields", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn put_domain(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((store_id, domain)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let id = StoreId::parse(&store_id)?;
    let bytes = body.map_err(Problem::from)?;
    let request: PutDomainRequest = json_object(&headers, &bytes)?.unwrap_or_default();
    Ok(
        match state
            .domains
            .put(&caller, &id, &domain, request.primary)
            .await?
        {
            Put::Added(view) => (StatusCode::CREATED, Json(view)).into_response(),
            Put::Kept(view) => (StatusCode::OK, Json(view)).into_response(),
        },
    )
}

/// Remove a domain from the store: the route loses it at the next release, and another store may
/// claim it.
#[utoipa::path(
    delete, path = "/stores/{store_id}/domains/{domain}", tag = "domains",
    params(
        ("store_id" = String, Path, example = "store-7016ff"),
        ("domain" = String, Path, example = "shop.example.com"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's), or the store has no such domain", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The store is being deleted", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn delete_domain(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((store_id, domain)): ApiPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    let id = StoreId::parse(&store_id)?;
    state.domains.remove(&caller, &id, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<DomainsError> for Problem {
    fn from(e: DomainsError) -> Self {
        match e {
            DomainsError::Store(e) => e.into(),
            DomainsError::Invalid(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-domain",
                "Invalid domain",
                e.to_string(),
            ),
            DomainsError::Taken(_) => Problem::new(
                StatusCode::CONFLICT,
                "domain-taken",
                "Domain taken",
                e.to_string(),
            ),
            DomainsError::LimitReached { .. } => Problem::new(
                StatusCode::FORBIDDEN,
                "quota-exceeded",
                "Quota exceeded",
                e.to_string(),
            ),
            DomainsError::Busy(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Store busy",
                e.to_string(),
            ),
            DomainsError::NotFound { ref store, .. } => {
                let store = store.clone();
                Problem::not_found(e.to_string()).with_store(store)
            }
        }
    }
}

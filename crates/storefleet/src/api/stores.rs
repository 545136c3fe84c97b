//! `/stores` handlers: parse the request into domain values, call the stores service, shape the answer.
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{Problem, ProblemBody};
use super::{ApiPath, ApiQuery, AppState};
use crate::backups::BackupId;
use crate::crd::Phase;
use crate::domain::{Engine, IdempotencyKey, Owner, StoreId, StoreName};
use crate::plans::PlanTable;
use crate::store_list::{ListError, Listing, Search, StoreFilter, StoreQuery, parse_status};
use crate::stores::{Caller, Created, NewStore, StoreUpdate, StoreView};

/// Body of `POST /stores`; both fields are optional, unknown fields are refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStoreRequest {
    /// Defaults to `woocommerce`.
    #[serde(default)]
    pub engine: Option<Engine>,
    /// Display name, 1 to 64 characters, no control characters or bidi overrides. Defaults to the store id.
    #[serde(default)]
    #[schema(example = "My Shop", max_length = 64)]
    pub name: Option<String>,
    /// Size plan (`small`, `medium`, `large`, or the platform's own names). Defaults to the
    /// platform's default plan (`small`).
    #[serde(default)]
    #[schema(example = "small")]
    pub plan: Option<String>,
    /// Clone: make the store from this backup (of a store the caller can see, a deleted one's
    /// final backup included; `GET /deleted-stores` lists those). The new store shows `Restoring`
    /// until the backup is in and its site's URLs are moved to its own address (docs/backups.md).
    #[serde(default)]
    #[schema(example = "backup-20261201-221500-3fa2c1")]
    pub from_backup: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateParams {
    /// Answer only when the store is Ready (201) or Failed (500), or after the wait limit (202).
    #[serde(default)]
    pub wait: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteAccepted {
    #[schema(example = "store-7016ff")]
    pub store_id: String,
    pub status: Phase,
    /// The final backup the deletion waits for (platforms with a backup target, Ready stores):
    /// the store is deleted once it succeeded, and kept, with the reason, if it failed.
    /// Absent when the store is deleted at once.
    #[schema(example = "backup-20261202-101500-3fa2c1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_backup: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Admins only: delete at once, without the final backup (docs/backups.md).
    #[serde(default)]
    pub skip_final_backup: bool,
}

/// Create a store.
#[utoipa::path(
    post, path = "/stores", tag = "stores",
    params(CreateParams, ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe creation: the same key and body give the first answer again")),
    request_body(content = Option<CreateStoreRequest>, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted; provisioning", body = StoreView, headers(("Location" = String))),
        (status = 201, description = "Ready (with `?wait=true`)", body = StoreView, headers(("Location" = String))),
        (status = 200, description = "The owner already has a store of this name", body = StoreView, headers(("Location" = String))),
        (status = 400, description = "Invalid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Quota exceeded: the caller's own `max_stores` or the platform's `--max-stores` (the detail says which)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`from_backup`: no such backup, or one of a store the caller may not see", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`from_backup`: the backup did not succeed, records no site address, or the platform has no backup target", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values, unknown fields, an unknown plan (the detail lists the plans), a malformed `from_backup` or a backup of another engine, or an idempotency key reused with another body", body = ProblemBody, content_type = "application/problem+json"),
        (status = 500, description = "Failed (with `?wait=true`)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_store(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<CreateParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let parsed = body
        .map_err(Problem::from)
        .and_then(|bytes| parse_create(&headers, &bytes, state.stores.plans()))
        .and_then(|new| {
            let key = headers
                .get("idempotency-key")
                .map(|v| {
                    v.to_str()
                        .map_err(|_| crate::domain::DomainError::InvalidIdempotencyKey)
                        .and_then(IdempotencyKey::parse)
                })
                .transpose()?;
            Ok((new, key))
        });
    let ((mut new, from_backup), key) = audited(&state, &caller, "POST /stores", parsed).await?;
    if let Some(backup) = from_backup {
        let source = state
            .backups
            .clone_source(&caller, &backup, new.engine)
            .await
            .map_err(Problem::from);
        new.clone = Some(audited(&state, &caller, "POST /stores", source).await?);
    }
    let (view, created) = match state.stores.create(&caller, new, key).await? {
        Created::Replayed { status, body } => return Ok(replay(status, body)),
        Created::New(view) => (view, true),
        Created::Existing(view) => (view, false),
    };
    let settled = if params.wait && !matches!(view.status, Phase::Ready | Phase::Failed) {
        let id = StoreId::parse(&view.store_id).map_err(Problem::from)?;
        state
            .stores
            .wait_settled(&caller, &id, state.wait_limit)
            .await?
            .ok_or_else(|| {
                Problem::not_found("the store was deleted while waiting")
                    .with_store(view.store_id.clone())
            })?
    } else {
        view
    };
    let status = match (params.wait, settled.status, created) {
        (true, Phase::Failed, _) => {
            let reason = settled
                .message
                .clone()
                .unwrap_or_else(|| "provisioning failed".into());
            return Err(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store-failed",
                "Store failed",
                reason,
            )
            .with_store(settled.store_id));
        }
        (true, Phase::Ready, true) => StatusCode::CREATED,
        (_, _, true) => StatusCode::ACCEPTED,
        (_, _, false) => StatusCode::OK,
    };
    let location = location(&settled.store_id);
    Ok((status, [(header::LOCATION, location)], Json(settled)).into_response())
}

fn location(store_id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("/stores/{store_id}")).expect("store ids are header-safe")
}

/// The first answer to an idempotency key, byte for byte.
fn replay(status: u16, body: String) -> Response {
    let store_id = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["store_id"].as_str().map(str::to_owned));
    let mut response =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    if let Some(id) = store_id {
        headers.insert(header::LOCATION, location(&id));
    }
    response
}

/// A request refused for its input is audited (as `denied`, with the route and why) before the 4xx.
async fn audited<T>(
    state: &AppState,
    caller: &Caller,
    route: &str,
    parsed: Result<T, Problem>,
) -> Result<T, Problem> {
    if let Err(problem) = &parsed {
        state
            .stores
            .deny(caller, problem.slug, format!("{route}: {}", problem.detail))
            .await;
    }
    parsed
}

/// An absent body means "all defaults"; otherwise it must be a JSON object of known fields.
/// The store asked for, and the backup to clone it from (checked against the backups next).
fn parse_create(
    headers: &HeaderMap,
    bytes: &[u8],
    plans: &PlanTable,
) -> Result<(NewStore, Option<BackupId>), Problem> {
    let request: CreateStoreRequest = json_object(headers, bytes)?.unwrap_or_default();
    let from_backup = request
        .from_backup
        .as_deref()
        .map(BackupId::parse)
        .transpose()
        .map_err(|e| Problem::invalid(format!("from_backup: {e}")))?;
    let new = NewStore {
        engine: request.engine.unwrap_or_default(),
        name: request.name.as_deref().map(StoreName::parse).transpose()?,
        plan: parse_plan(request.plan.as_deref(), plans)?,
        clone: None,
    };
    Ok((new, from_backup))
}

/// A plan name of the platform's table: malformed and unknown names alike are a 422 that lists the
/// plans there are.
fn parse_plan(
    raw: Option<&str>,
    plans: &PlanTable,
) -> Result<Option<crate::plans::PlanName>, Problem> {
    Ok(raw
        .map(|raw| plans.lookup(raw).map(|(name, _)| name))
        .transpose()?)
}

/// A JSON object body of known fields, or `None` when there is no body at all (no bytes, no
/// `Content-Type`): 415 for another media type, 400 for broken JSON, 422 for anything but an object
/// of the expected fields.
pub(super) fn json_object<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Option<T>, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if bytes.is_empty() && content_type.is_none() {
        return Ok(None);
    }
    if !content_type.is_some_and(is_json) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as `Content-Type: application/json`",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-json",
            "Invalid JSON",
            e.to_string(),
        )
    })?;
    // serde would also read a struct from an array; only an object is a valid body.
    if !value.is_object() {
        return Err(Problem::invalid("the body must be a JSON object"));
    }
    // From the bytes, not the `Value`: a `Value` keeps the last of duplicate keys silently, the
    // derived `Deserialize` refuses them (parsers disagree on which one counts).
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| Problem::invalid(e.to_string()))
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Query of `GET /stores`. Without `limit` the answer is the whole list (an array, as before
/// paging existed); with it, one page. Unknown parameters are refused.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListStoresParams {
    /// Answer one page of at most this many stores (1 to 500), as `{"items", "next_cursor"}`.
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`, as it was (opaque; needs `limit`). Repeat the same filters.
    pub cursor: Option<String>,
    /// Only stores in this status, spelt as the views report it.
    #[param(value_type = Option<Phase>)]
    pub status: Option<String>,
    /// Only this owner's stores. A member may name only themselves (anyone else: 403).
    #[param(example = "alice")]
    pub owner: Option<String>,
    /// Only stores whose name or store id contains this, ignoring case (at most 100 characters;
    /// empty: no filter).
    #[param(max_length = 100, example = "shop")]
    pub q: Option<String>,
}

/// A page of `GET /stores?limit=`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorePage {
    /// The page's stores, in the list's order (creation time, then store id).
    pub items: Vec<StoreView>,
    /// Pass as `cursor` (with the same `limit` and filters) for the next page; `null` on the last.
    #[schema(example = "czE6MTc2NDY2NjQ0MjowOnN0b3JlLTcwMTZmZg", required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /stores` answers the whole list without `limit`, one page with it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StoreListing {
    All(Vec<StoreView>),
    Page(StorePage),
}

/// List the stores: all of them (oldest first), or one page with `limit`, optionally filtered.
#[utoipa::path(
    get, path = "/stores", tag = "stores",
    params(ListStoresParams),
    responses(
        (status = 200, description = "The caller's stores (an admin's: every store of this control plane) that the filters select, oldest first (creation time, then store id): an array without `limit`, a page `{\"items\", \"next_cursor\"}` with it", body = StoreListing),
        (status = 400, description = "Bad parameters (`bad-request`): `limit` not 1 to 500, a cursor this list did not answer or without `limit`, an unknown `status`, `q` over 100 characters, an unknown or repeated parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "A member's `owner` naming someone else (`admin-only`)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_stores(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<ListStoresParams>,
) -> Result<Response, Problem> {
    let query = parse_list(&caller, params)?;
    let json = state.stores.list_json(&caller, &query).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response())
}

/// The query as domain values. Members list only their own stores anyway; naming another owner is
/// refused rather than answered empty, so a mistaken filter does not look like "no stores".
fn parse_list(caller: &Caller, params: ListStoresParams) -> Result<StoreQuery, Problem> {
    let bad = |e: ListError| Problem::bad_request(e.to_string());
    let owner = params
        .owner
        .as_deref()
        .map(Owner::parse)
        .transpose()
        .map_err(|e| Problem::bad_request(format!("owner: {e}")))?;
    if let Some(owner) = &owner
        && !caller.may_see(owner.as_str())
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "admin-only",
            "Admins only",
            "a member lists only their own stores: leave `owner` out or name yourself",
        ));
    }
    Ok(StoreQuery {
        filter: StoreFilter {
            status: params
                .status
                .as_deref()
                .map(parse_status)
                .transpose()
                .map_err(bad)?,
            owner,
            search: params
                .q
                .as_deref()
                .map(Search::parse)
                .transpose()
                .map_err(bad)?
                .flatten(),
        },
        listing: Listing::parse(params.limit, params.cursor.as_deref()).map_err(bad)?,
    })
}

/// One store, with its conditions.
#[utoipa::path(
    get, path = "/stores/{store_id}", tag = "stores",
    params(("store_id" = String, Path, example = "store-7016ff")),
    responses(
        (status = 200, description = "The store", body = StoreView),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_store(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
) -> Result<Json<StoreView>, Problem> {
    let id = StoreId::parse(&store_id)?;
    Ok(Json(state.stores.get(&caller, &id).await?))
}

/// Body of `PATCH /stores/{store_id}`: what to change (at least one field); unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStoreRequest {
    /// The new display name (the shop's title in WordPress), as for a create.
    #[serde(default)]
    #[schema(example = "My Renamed Shop", max_length = 64)]
    pub name: Option<String>,
    /// The new size plan: resources, namespace quota and volume sizes. Volumes grow, never shrink,
    /// and grow only where their StorageClass allows volume expansion.
    #[serde(default)]
    #[schema(example = "medium")]
    pub plan: Option<String>,
}

/// Change a store: its name (the title follows) and/or its size plan (resources, quota, volumes).
/// The controller upgrades the release.
#[utoipa::path(
    patch, path = "/stores/{store_id}", tag = "stores",
    params(("store_id" = String, Path, example = "store-7016ff")),
    request_body(content = UpdateStoreRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed (or already so): the store, whose release is upgraded next", body = StoreView),
        (status = 400, description = "Invalid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Another of the owner's stores has this name, or the store is being deleted", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, nothing to change, unknown fields, an unknown plan (the detail lists the plans), or a plan that would shrink a volume or grow one whose StorageClass cannot expand (the detail names the volume, both sizes, or the class)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn update_store(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StoreView>, Problem> {
    let id = StoreId::parse(&store_id)?;
    let parsed = body
        .map_err(Problem::from)
        .and_then(|bytes| parse_update(&headers, &bytes, state.stores.plans()));
    let update = audited(&state, &caller, "PATCH /stores/{store_id}", parsed).await?;
    Ok(Json(state.stores.update(&caller, &id, update).await?))
}

fn parse_update(
    headers: &HeaderMap,
    bytes: &[u8],
    plans: &PlanTable,
) -> Result<StoreUpdate, Problem> {
    let request: UpdateStoreRequest = json_object(headers, bytes)?
        .filter(|r: &UpdateStoreRequest| r.name.is_some() || r.plan.is_some())
        .ok_or_else(|| {
            Problem::invalid(
                "send the change as a JSON object with `name` and/or `plan`, e.g. {\"plan\": \"medium\"}",
            )
        })?;
    Ok(StoreUpdate {
        name: request.name.as_deref().map(StoreName::parse).transpose()?,
        plan: parse_plan(request.plan.as_deref(), plans)?,
    })
}

/// Delete a store: uninstall, delete its namespace, then forget it. With a backup target, a Ready
/// store is backed up first (its final backup, kept for the platform's window and listed by
/// `GET /deleted-stores`); if that backup fails, the store is not deleted and says why.
#[utoipa::path(
    delete, path = "/stores/{store_id}", tag = "stores",
    params(("store_id" = String, Path, example = "store-7016ff"), DeleteParams),
    responses(
        (status = 202, description = "Deletion under way, or its final backup (also when asked again)", body = DeleteAccepted),
        (status = 400, description = "A query parameter not understood (`skip_final_backup` other than true or false)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "`skip_final_backup` asked for by a member (`admin-only`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Another request changed the store meanwhile (`store-deleting`)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_store(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> Result<(StatusCode, Json<DeleteAccepted>), Problem> {
    let id = StoreId::parse(&store_id)?;
    if params.skip_final_backup && !caller.is_admin() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "admin-only",
            "Admins only",
            "only an admin may delete a store without its final backup",
        ));
    }
    let safety_net = state.backups.enabled().then_some(state.backups.as_ref());
    let final_backup = state
        .stores
        .delete(&caller, &id, safety_net, params.skip_final_backup)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeleteAccepted {
            store_id: id.to_string(),
            status: Phase::Deleting,
            final_backup: final_backup.map(|b| b.to_string()),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        h
    }

    fn plans() -> PlanTable {
        PlanTable::builtin()
    }

    #[test]
    fn plans_are_parsed_against_the_table() {
        let (new, _) = parse_create(&json_headers(), br#"{"plan": "medium"}"#, &plans()).unwrap();
        assert_eq!(new.plan.unwrap().as_str(), "medium");
        assert_eq!(
            parse_create(&HeaderMap::new(), b"", &plans())
                .unwrap()
                .0
                .plan,
            None
        );
        for body in [&br#"{"plan": "huge"}"#[..], br#"{"plan": "Medium"}"#] {
            let problem = parse_create(&json_headers(), body, &plans()).unwrap_err();
            assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(
                problem.detail.contains("large, medium, small"),
                "{}",
                problem.detail
            );
        }
        let update = parse_update(&json_headers(), br#"{"plan": "large"}"#, &plans()).unwrap();
        assert_eq!(
            (update.name, update.plan.unwrap().as_str()),
            (None, "large")
        );
        let both = parse_update(
            &json_headers(),
            br#"{"name": "A", "plan": "small"}"#,
            &plans(),
        );
        assert!(both.is_ok());
        for body in [
            &b"{}"[..],
            br#"{"name": null}"#,
            br#"{"plan": "huge"}"#,
            br#"{"plan": 3}"#,
        ] {
            let problem = parse_update(&json_headers(), body, &plans()).unwrap_err();
            assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
        }
    }

    #[test]
    fn parses_and_defaults() {
        let (new, from) = parse_create(&HeaderMap::new(), b"", &plans()).unwrap();
        assert_eq!(
            (new.engine, new.name, from),
            (Engine::Woocommerce, None, None)
        );
        let (new, _) = parse_create(&json_headers(), br#"{"name": " Shop "}"#, &plans()).unwrap();
        assert_eq!(new.name.unwrap().as_str(), "Shop");
        let (new, _) = parse_create(
            &json_headers(),
            br#"{"engine": "woocommerce", "name": null}"#,
            &plans(),
        )
        .unwrap();
        assert_eq!(new.name, None);
        let (_, from) = parse_create(
            &json_headers(),
            br#"{"from_backup": "backup-20261201-221500-3fa2c1"}"#,
            &plans(),
        )
        .unwrap();
        assert_eq!(from.unwrap().as_str(), "backup-20261201-221500-3fa2c1");
        for bad in [
            &br#"{"from_backup": "store-abc123"}"#[..],
            br#"{"from_backup": 7}"#,
        ] {
            let problem = parse_create(&json_headers(), bad, &plans()).unwrap_err();
            assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        }
    }

    #[test]
    fn rejects_with_the_right_status() {
        let status = |h: &HeaderMap, b: &[u8]| parse_create(h, b, &plans()).unwrap_err().status;
        assert_eq!(status(&json_headers(), b"{"), StatusCode::BAD_REQUEST);
        assert_eq!(status(&json_headers(), b""), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(&json_headers(), br#"{"nme": "x"}"#),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(&json_headers(), br#"{"engine": "shopify"}"#),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(&json_headers(), br#"{"name": 5}"#),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(&json_headers(), br#"[]"#),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(
                &json_headers(),
                format!(r#"{{"name": "{}"}}"#, "x".repeat(65)).as_bytes()
            ),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(&json_headers(), br#"{"name": "a\u0007b"}"#),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(&HeaderMap::new(), br#"{"name": "x"}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let mut text = HeaderMap::new();
        text.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(
            status(&text, br#"{"name": "x"}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}

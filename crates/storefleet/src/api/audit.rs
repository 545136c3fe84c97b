//! `GET /audit`: the audit log, newest first. Admins read all of it; members the entries about their
//! stores and the ones they made about no store.
//!
//! The answer is the plain array it always was, unless the caller asks for pages (`page=true`, or a
//! `cursor` from a page): then `{"items", "next_cursor"}`, continuing below the last entry's id.
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{Problem, ProblemBody};
use super::{ApiQuery, AppState};
use crate::domain::StoreId;
use crate::paging::{AuditCursor, Limit};
use crate::storage::AuditRecord;
use crate::stores::Caller;

/// The largest `limit`, also of a page.
const LIMIT_MAX: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only entries about this store.
    pub store_id: Option<String>,
    /// Answer a page, `{"items", "next_cursor"}`, instead of the plain array.
    pub page: Option<bool>,
    /// The previous page's `next_cursor`, as it was (opaque): the entries older than that page's
    /// last. Implies `page=true`; repeat the same `store_id`.
    pub cursor: Option<String>,
}

/// A page of `GET /audit?page=true` (or `?cursor=`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditRecord>,
    /// Pass as `cursor` for the next (older) page; `null` on the last.
    #[schema(example = "YTE6MTIzNA", required = true)]
    pub next_cursor: Option<String>,
}

/// The plain array, or a page when one is asked for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AuditListing {
    All(Vec<AuditRecord>),
    Page(AuditPage),
}

/// Read the audit log.
#[utoipa::path(
    get, path = "/audit", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "Entries the caller may read, newest first: an array, or a page `{\"items\", \"next_cursor\"}` with `page=true` or a `cursor`", body = AuditListing),
        (status = 400, description = "Bad parameters (`bad-request`): `limit` not 1 to 1000, a malformed `store_id`, a cursor this list did not answer, `page=false` with a cursor, a repeated parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Response, Problem> {
    let limit = Limit::parse(params.limit.unwrap_or(100), LIMIT_MAX)
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let store_id = params
        .store_id
        .as_deref()
        .map(StoreId::parse)
        .transpose()
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let cursor = params
        .cursor
        .as_deref()
        .map(AuditCursor::parse)
        .transpose()
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let paged = match (params.page, &cursor) {
        (Some(false), Some(_)) => {
            return Err(Problem::bad_request(
                "a cursor continues a page: leave out page=false",
            ));
        }
        (page, cursor) => page == Some(true) || cursor.is_some(),
    };
    let member = (!caller.is_admin()).then(|| caller.owner.as_str());
    // One more than the page: whether there is a next page, without counting the log.
    let asked = if paged { limit.get() + 1 } else { limit.get() };
    let mut records = state
        .audit
        .list_before(
            asked,
            store_id.as_ref().map(StoreId::as_str),
            member,
            cursor.map(|c| c.before_id),
        )
        .await
        .map_err(|e| {
            super::health::unavailable(
                "Database unavailable",
                format!("reading the audit log: {e}"),
            )
        })?;
    if !paged {
        return Ok(Json(records).into_response());
    }
    let more = records.len() > limit.as_usize();
    records.truncate(limit.as_usize());
    let next_cursor = more
        .then(|| records.last())
        .flatten()
        .map(|last| AuditCursor { before_id: last.id }.encode());
    Ok(Json(AuditPage {
        items: records,
        next_cursor,
    })
    .into_response())
}

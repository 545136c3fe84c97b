//! `GET /stores/{id}/events`: Server-Sent Events. First the store as it is, then one `store` event per
//! change, and a `deleted` event when it is gone (the stream ends there).
use std::convert::Infallible;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};

use super::problem::{Problem, ProblemBody};
use super::{ApiPath, AppState};
use crate::domain::StoreId;
use crate::stores::{Caller, StoreChange};

/// Follow a store's state.
#[utoipa::path(
    get, path = "/stores/{store_id}/events", tag = "stores",
    params(("store_id" = String, Path, example = "store-7016ff")),
    responses(
        (status = 200, description = "`text/event-stream`: `store` events carrying the store (as in `GET /stores/{store_id}`), then `deleted`", content_type = "text/event-stream", body = String),
        (status = 401, description = "No or bad token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or another user's)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many event streams open (yours, or the server's)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The Store CRD is not installed, or Kubernetes is unreachable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn store_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(store_id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let id = StoreId::parse(&store_id).map_err(|e| Problem::from(e).into_response())?;
    let first = state
        .stores
        .get(&caller, &id)
        .await
        .map_err(|e| Problem::from(e).into_response())?;
    let ticket = state
        .streams
        .open(&caller)
        .map_err(super::live::streams_refused)?;
    let changes = state.stores.changes(&id);
    let stream = async_stream::stream! {
        yield Ok(store_event(&first));
        let mut last = first;
        let mut changes = std::pin::pin!(changes);
        while let Some(change) = changes.next().await {
            match change {
                StoreChange::Updated(view) if *view != last => {
                    yield Ok(store_event(&view));
                    last = *view;
                }
                StoreChange::Updated(_) => {}
                StoreChange::Deleted => {
                    yield Ok(Event::default().event("deleted").data(serde_json::json!({"store_id": last.store_id}).to_string()));
                    break;
                }
            }
        }
    };
    Ok(Sse::new(super::streams::bounded(ticket, stream)).keep_alive(KeepAlive::default()))
}

fn store_event(view: &crate::stores::StoreView) -> Event {
    Event::default()
        .event("store")
        .data(serde_json::to_string(view).expect("views serialise"))
}

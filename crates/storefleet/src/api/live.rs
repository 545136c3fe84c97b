//! `GET /events`: Server-Sent Events for the whole list of stores the caller may see, from the API's
//! one shared watch of Stores (`store_feed`). A `snapshot` event (every store, oldest first) starts
//! the stream and follows every re-list of the watch; then one `store` event per change and a
//! `deleted` event when a store is gone. The dashboard's list lives on this alone: no polling.
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use kube::ResourceExt;

use super::guard::rate_limit::too_many_requests;
use super::problem::ProblemBody;
use super::{AppState, streams};
use crate::crd::Store;
use crate::store_feed::FeedEvent;
use crate::stores::{Caller, StoreView};

/// Follow every store the caller may see (an admin: all; a member: their own).
#[utoipa::path(
    get, path = "/events", tag = "stores",
    responses(
        (status = 200, description = "`text/event-stream`: `snapshot` (a JSON array of stores, as in `GET /stores`), \
            then `store` (one store) and `deleted` (`{\"store_id\"}`) events. The stream ends after `--stream-max-lifetime` \
            and within seconds of its token being revoked, its user disabled or its session signed out", content_type = "text/event-stream", body = String),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many event streams open (yours, or the server's)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The Store CRD is not installed, or Kubernetes is unreachable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn all_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let ticket = state.streams.open(&caller).map_err(streams_refused)?;
    let service = state.stores.clone();
    let visible = move |s: &Store| service.is_ours(s) && caller.may_see(&s.spec.owner);
    let service = state.stores.clone();
    let feed = state.stores.feed().clone();
    let mut events = feed.subscribe();
    let cache = feed.cache();
    let stream = async_stream::stream! {
        // The first snapshot waits for this process's first list of Stores (briefly).
        let _ = tokio::time::timeout(Duration::from_secs(5), cache.wait_until_ready()).await;
        let snapshot_of = |cache: &kube::runtime::reflector::Store<Store>| -> BTreeMap<String, StoreView> {
            cache
                .state()
                .iter()
                .filter(|s| visible(s))
                .map(|s| (s.name_any(), service.view(s)))
                .collect()
        };
        let mut known = snapshot_of(&cache);
        yield Ok(snapshot(&known));
        while let Some(event) = events.next().await {
            match event {
                FeedEvent::Changed(s) => {
                    let id = s.name_any();
                    if visible(&s) {
                        let view = service.view(&s);
                        if known.get(&id) != Some(&view) {
                            yield Ok(store_event(&view));
                            known.insert(id, view);
                        }
                    } else if known.remove(&id).is_some() {
                        yield Ok(deleted_event(&id));
                    }
                }
                FeedEvent::Deleted(s) => {
                    let id = s.name_any();
                    if known.remove(&id).is_some() {
                        yield Ok(deleted_event(&id));
                    }
                }
                // A re-list (or this stream fell behind): the cache is the truth; send it whole.
                FeedEvent::Resynced => {
                    known = snapshot_of(&cache);
                    yield Ok(snapshot(&known));
                }
            }
        }
    };
    Ok(Sse::new(streams::bounded(ticket, stream)).keep_alive(KeepAlive::default()))
}

/// 429 with `Retry-After` when a stream cap is reached.
pub fn streams_refused(refused: streams::Refused) -> Response {
    too_many_requests(Duration::from_secs(5), &refused.to_string())
}

/// Oldest first, as `GET /stores` answers.
fn snapshot(known: &BTreeMap<String, StoreView>) -> Event {
    let mut views: Vec<&StoreView> = known.values().collect();
    views.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.store_id.cmp(&b.store_id))
    });
    Event::default()
        .event("snapshot")
        .data(serde_json::to_string(&views).expect("views serialise"))
}

fn store_event(view: &StoreView) -> Event {
    Event::default()
        .event("store")
        .data(serde_json::to_string(view).expect("views serialise"))
}

fn deleted_event(store_id: &str) -> Event {
    Event::default()
        .event("deleted")
        .data(serde_json::json!({ "store_id": store_id }).to_string())
}

//! `GET /events`: Server-Sent Events for the whole list of stores the caller may see, from a watch on
//! the `Store` objects. A `snapshot` event (every store, oldest first) starts the stream and follows
//! every re-list of the watch; then one `store` event per change and a `deleted` event when a store is
//! gone. The dashboard's list lives on this alone: no polling.
use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use super::AppState;
use super::problem::ProblemBody;
use crate::crd::Store;
use crate::stores::{Caller, StoreView};

/// Follow every store the caller may see (an admin: all; a member: their own).
#[utoipa::path(
    get, path = "/events", tag = "stores",
    responses(
        (status = 200, description = "`text/event-stream`: `snapshot` (a JSON array of stores, as in `GET /stores`), \
            then `store` (one store) and `deleted` (`{\"store_id\"}`) events", content_type = "text/event-stream", body = String),
        (status = 401, description = "No or bad token or session", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn all_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stores = state.stores.clone();
    let visible = move |s: &Store| stores.is_ours(s) && caller.may_see(&s.spec.owner);
    let service = state.stores.clone();
    let watch = watcher(
        Api::<Store>::all(state.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff();
    let stream = async_stream::stream! {
        let mut known: BTreeMap<String, StoreView> = BTreeMap::new();
        // Filled during a (re)list; replaces `known` when the list is complete.
        let mut listing: Option<BTreeMap<String, StoreView>> = None;
        let mut watch = std::pin::pin!(watch);
        while let Some(event) = watch.next().await {
            match event {
                Ok(watcher::Event::Init) => listing = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(s)) => {
                    if visible(&s) {
                        listing.get_or_insert_default().insert(s.name_any(), service.view(&s));
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    known = listing.take().unwrap_or_default();
                    yield Ok(snapshot(&known));
                }
                Ok(watcher::Event::Apply(s)) => {
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
                Ok(watcher::Event::Delete(s)) => {
                    let id = s.name_any();
                    if known.remove(&id).is_some() {
                        yield Ok(deleted_event(&id));
                    }
                }
                // The watcher backs off and re-lists by itself; the next snapshot repairs the list.
                Err(e) => tracing::warn!("watching stores for /events: {e}"),
            }
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::default())
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

//! The API's one watch of Stores: it fills the cache that `GET /stores` reads (`store_reads`) and
//! feeds every event stream and every `?wait=true` through one broadcast channel. However many
//! streams are open, the API server sees one LIST and one WATCH from this process.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Future, StreamExt};
use kube::runtime::reflector::{self, Store as StoreCache};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::broadcast;

use crate::controller::store_watcher_config;
use crate::crd::Store;
use crate::dependencies::Dependencies;

/// What subscribers hear. After `Resynced` (a re-list, or a subscriber that fell behind) the cache is
/// the truth: deletions during a watch gap arrive only that way.
#[derive(Clone, Debug)]
pub enum FeedEvent {
    Changed(Arc<Store>),
    Deleted(Arc<Store>),
    Resynced,
}

/// Events a slow subscriber may fall behind by before it is told to resync from the cache.
const BUFFER: usize = 1024;

/// Says whether the cache changed since it was last read, seqlock-style: odd while the watch applies
/// an event to the cache, even (and higher) once it has. `store_reads.rs` keeps the fleet sorted
/// between changes with it; a read while a change is under way sorts afresh.
#[derive(Clone, Default)]
pub struct CacheVersion(Arc<AtomicU64>);

impl CacheVersion {
    /// The version, if no change is under way.
    pub fn stable(&self) -> Option<u64> {
        let v = self.0.load(Ordering::SeqCst);
        v.is_multiple_of(2).then_some(v)
    }

    pub(crate) fn step(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone)]
pub struct StoreFeed {
    cache: StoreCache<Store>,
    version: CacheVersion,
    events: broadcast::Sender<FeedEvent>,
}

impl StoreFeed {
    /// The feed, and the future that runs its watch (after the CRD is served).
    pub fn start(
        client: Client,
        instance: &str,
        deps: Arc<Dependencies>,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (cache, writer) = reflector::store();
        let (events, _) = broadcast::channel(BUFFER);
        let version = CacheVersion::default();
        let feed = Self {
            cache,
            version: version.clone(),
            events: events.clone(),
        };
        let config = store_watcher_config(instance);
        let run = async move {
            // Before the CRD exists a watch would only fail, loudly, forever.
            deps.crd_served().await;
            // The controller's short backoff (250 ms to 1 s), not kube's default (up to 30 s): after an
            // API-server outage the API's view must come back as fast as the controller's.
            let entering = version.clone();
            let watch = watcher(Api::<Store>::all(client), config)
                .backoff(crate::controller::watch_backoff::WatchBackoff::default())
                // Who wrote which field is the API server's business: with ten thousand Stores
                // `managedFields` would be a good part of the cache's memory.
                .modify(|store| store.managed_fields_mut().clear())
                // Odd: the reflector applies this event to the cache right after.
                .map(move |event| {
                    entering.step();
                    event
                });
            let mut stream = std::pin::pin!(reflector::reflector(writer, watch));
            while let Some(event) = stream.next().await {
                // Even again: the cache holds the event.
                version.step();
                let out = match event {
                    Ok(watcher::Event::InitApply(s)) => Some(FeedEvent::Changed(Arc::new(s))),
                    // A change after an error: the watch resumed without a re-list, and is whole.
                    Ok(watcher::Event::Apply(s)) => {
                        deps.store_watch_synced();
                        Some(FeedEvent::Changed(Arc::new(s)))
                    }
                    Ok(watcher::Event::Delete(s)) => {
                        deps.store_watch_synced();
                        Some(FeedEvent::Deleted(Arc::new(s)))
                    }
                    Ok(watcher::Event::InitDone) => {
                        deps.store_watch_synced();
                        Some(FeedEvent::Resynced)
                    }
                    Ok(watcher::Event::Init) => None,
                    Err(e) => {
                        deps.store_watch_failed(e.to_string());
                        deps.recheck();
                        tracing::debug!("watching Stores: {e}");
                        None
                    }
                };
                if let Some(out) = out {
                    // No subscriber is fine.
                    let _ = events.send(out);
                }
            }
        };
        (feed, run)
    }

    pub fn cache(&self) -> StoreCache<Store> {
        self.cache.clone()
    }

    pub fn version(&self) -> CacheVersion {
        self.version.clone()
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription(self.events.subscribe())
    }
}

pub struct Subscription(broadcast::Receiver<FeedEvent>);

impl Subscription {
    /// The next event; a subscriber that fell behind hears `Resynced`. `None`: the feed is gone.
    pub async fn next(&mut self) -> Option<FeedEvent> {
        match self.0.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "an event stream fell behind; resyncing it");
                Some(FeedEvent::Resynced)
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl FeedEvent {
    pub fn store_name(&self) -> Option<String> {
        match self {
            FeedEvent::Changed(s) | FeedEvent::Deleted(s) => Some(s.name_any()),
            FeedEvent::Resynced => None,
        }
    }
}

//! Reads of Stores from the controller's watch cache, with read-your-writes.
//!
//! `GET /stores` and `GET /stores/{id}` are the hot path (the dashboard polls them; a platform may
//! hold a thousand stores), so they read the reflector the controller keeps anyway instead of listing
//! from the API server each time. A watch cache lags behind writes by a few milliseconds, and a client
//! that just created or deleted a store must see that in its next read. So every write this process
//! makes is remembered with the resourceVersion it produced, and a read first waits (briefly) until
//! the cache has caught up with all of them; if it does not within [`CATCH_UP_LIMIT`], the read goes
//! to the API server, as it would without a cache.
//!
//! resourceVersions are opaque by contract, but on every API server backed by etcd3 they are etcd's
//! revision, an increasing integer; one that does not parse simply makes the read go to the API server.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use kube::api::ListParams;
use kube::runtime::reflector::{ObjectRef, Store as StoreCache};
use kube::{Api, ResourceExt};

use crate::crd::Store;
use crate::store_feed::CacheVersion;
use crate::store_list::in_order;

/// How long a read waits for the cache to show this process's own writes.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(1);
/// A write the cache never showed (its watch broke and re-listed meanwhile) stops holding reads back.
const FORGET_AFTER: Duration = Duration::from_secs(30);

/// A write the cache must show before it answers reads.
#[derive(Clone, Copy, Debug)]
struct Written {
    version: u64,
    /// After a delete the object may already be gone: absence also counts as caught up.
    may_be_gone: bool,
    at: Instant,
}

/// Stores in list order, shared by the requests that read them.
type Sorted = Arc<Vec<Arc<Store>>>;

pub struct StoreReads {
    cache: StoreCache<Store>,
    version: CacheVersion,
    /// The cache in list order (`store_list::in_order`) as of a version: with ten thousand stores,
    /// sorting per request would cost more than the rest of a page.
    sorted: Mutex<Option<(u64, Sorted)>>,
    api: Api<Store>,
    pending: Mutex<HashMap<String, Written>>,
}

impl StoreReads {
    pub fn new(cache: StoreCache<Store>, version: CacheVersion, api: Api<Store>) -> Self {
        Self {
            cache,
            version,
            sorted: Mutex::new(None),
            api,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers a Store as this process just wrote it (created, or marked for deletion).
    pub fn wrote(&self, store: &Store, may_be_gone: bool) {
        let version = store.resource_version().and_then(|v| v.parse().ok());
        let written = Written {
            // Unparsable: no cache read can be proven fresh, so reads go to the API server for a while.
            version: version.unwrap_or(u64::MAX),
            may_be_gone,
            at: Instant::now(),
        };
        self.pending
            .lock()
            .expect("not poisoned")
            .insert(store.name_any(), written);
    }

    /// Remembers that a Store (as last read) was deleted at once: the cache must drop it.
    pub fn wrote_gone(&self, store: &Store) {
        let next = store
            .resource_version()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(u64::MAX, |v| v.saturating_add(1));
        self.pending.lock().expect("not poisoned").insert(
            store.name_any(),
            Written {
                version: next,
                may_be_gone: true,
                at: Instant::now(),
            },
        );
    }

    /// The resourceVersion of this process's latest write of `id` the cache may not show yet: a
    /// stream of the store's changes starts at it, not at the cache's older object (after a claim,
    /// that is the pool's store, Ready under another name and owner).
    pub fn floor(&self, id: &str) -> Option<u64> {
        self.pending
            .lock()
            .expect("not poisoned")
            .get(id)
            .filter(|w| !w.may_be_gone && w.version != u64::MAX)
            .map(|w| w.version)
    }

    /// Every Store the watch sees (of every instance when this is the default one: callers filter).
    pub async fn list(&self, params: &ListParams) -> Result<Vec<Arc<Store>>, kube::Error> {
        if self.caught_up().await {
            return Ok(self.cache.state());
        }
        Ok(self
            .api
            .list(params)
            .await?
            .items
            .into_iter()
            .map(Arc::new)
            .collect())
    }

    /// Like [`Self::list`], in list order (`store_list.rs`). Sorted once per change of the cache.
    pub async fn list_in_order(&self, params: &ListParams) -> Result<Sorted, kube::Error> {
        if !self.caught_up().await {
            return Ok(Arc::new(in_order(self.list(params).await?)));
        }
        let version = self.version.stable();
        if let Some(v) = version
            && let Some((at, sorted)) = &*self.sorted.lock().expect("not poisoned")
            && *at == v
        {
            return Ok(sorted.clone());
        }
        let sorted = Arc::new(in_order(self.cache.state()));
        // Kept only when no change began or ended while the cache was read: then it is the cache.
        if let Some(v) = version
            && self.version.stable() == Some(v)
        {
            *self.sorted.lock().expect("not poisoned") = Some((v, sorted.clone()));
        }
        Ok(sorted)
    }

    /// One Store. A miss is confirmed with the API server: a store made by someone else a moment ago
    /// exists even if the cache has not seen it yet, and a 404 costs one cheap request.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<Store>>, kube::Error> {
        if self.caught_up().await
            && let Some(store) = self.cache.get(&ObjectRef::new(id))
        {
            return Ok(Some(store));
        }
        Ok(self.api.get_opt(id).await?.map(Arc::new))
    }

    /// True when the cache is filled and shows every pending write; waits up to [`CATCH_UP_LIMIT`].
    async fn caught_up(&self) -> bool {
        if self.cache.wait_until_ready().now_or_never().is_none() {
            return false;
        }
        let deadline = Instant::now() + CATCH_UP_LIMIT;
        loop {
            let waiting = {
                let mut pending = self.pending.lock().expect("not poisoned");
                pending.retain(|id, w| !self.shows(id, w) && w.at.elapsed() < FORGET_AFTER);
                pending.len()
            };
            if waiting == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                tracing::debug!(waiting, "the Store cache lags; reading the API server");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn shows(&self, id: &str, written: &Written) -> bool {
        match self.cache.get(&ObjectRef::new(id)) {
            Some(cached) => cached
                .resource_version()
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| v >= written.version),
            None => written.may_be_gone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::StoreSpec;
    use crate::domain::Engine;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    fn store_at(id: &str, version: &str) -> Store {
        let mut s = Store::new(
            id,
            StoreSpec {
                name: None,
                engine: Engine::Woocommerce,
                owner: "admin".into(),
                plan: None,
                release: None,
                domains: Vec::new(),
                identity_generation: 0,
            },
        );
        s.metadata.resource_version = Some(version.into());
        s
    }

    fn reads(cache: StoreCache<Store>) -> StoreReads {
        // Never contacted in these tests: every read below is answered from the cache.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        StoreReads::new(cache, CacheVersion::default(), Api::all(client))
    }

    #[tokio::test]
    async fn a_write_holds_reads_until_the_cache_shows_it() {
        let (cache, mut writer) = store::<Store>();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        let reads = reads(cache);
        assert!(
            reads.caught_up().await,
            "nothing written: the cache answers"
        );

        reads.wrote(&store_at("store-000001", "42"), false);
        writer.apply_watcher_event(&Event::Apply(store_at("store-000001", "41")));
        assert!(!reads.shows(
            "store-000001",
            &reads.pending.lock().unwrap()["store-000001"]
        ));
        writer.apply_watcher_event(&Event::Apply(store_at("store-000001", "42")));
        assert!(reads.caught_up().await);
        assert!(reads.pending.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn after_a_delete_absence_counts_as_caught_up() {
        let (cache, mut writer) = store::<Store>();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        let reads = reads(cache);
        reads.wrote(&store_at("store-000002", "7"), true);
        assert!(reads.caught_up().await);
        reads.wrote(&store_at("store-000003", "7"), false);
        let w = reads.pending.lock().unwrap()["store-000003"];
        assert!(
            !reads.shows("store-000003", &w),
            "a create is not shown by absence"
        );
    }

    /// The sorted fleet is kept between changes, and never outlives one: while the watch applies an
    /// event (odd version) and after it (the next even one) a list shows it.
    #[tokio::test]
    async fn the_sorted_fleet_follows_every_change() {
        let (cache, mut writer) = store::<Store>();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        let version = CacheVersion::default();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let reads = StoreReads::new(
            cache,
            version.clone(),
            Api::all(kube::Client::try_from(config).unwrap()),
        );
        let names =
            |v: Arc<Vec<Arc<Store>>>| -> Vec<String> { v.iter().map(|s| s.name_any()).collect() };
        let params = ListParams::default();
        let all = || reads.list_in_order(&params);
        let mut expected = Vec::new();
        for id in ["store-00000b", "store-00000a", "store-00000c"] {
            version.step();
            writer.apply_watcher_event(&Event::Apply(store_at(id, "1")));
            expected.push(id.to_owned());
            expected.sort();
            assert_eq!(names(all().await.unwrap()), expected, "during the change");
            version.step();
            assert_eq!(names(all().await.unwrap()), expected, "after it");
            let kept = all().await.unwrap();
            assert!(
                Arc::ptr_eq(&kept, &all().await.unwrap()),
                "sorted once per change"
            );
        }
    }

    #[tokio::test]
    async fn an_unfilled_cache_is_never_used() {
        let (cache, _writer) = store::<Store>();
        assert!(!reads(cache).caught_up().await);
    }
}

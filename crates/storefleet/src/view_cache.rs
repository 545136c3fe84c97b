//! `GET /stores` as bytes, from serialised views kept per store while the store is unchanged.
//!
//! With a thousand stores the list is over a megabyte of JSON, and building and serialising a
//! thousand views per request costs far more than copying them (the Kubernetes API server's watch
//! cache keeps serialised objects for the same reason). A store's view depends only on the object,
//! so its resourceVersion says when the stored bytes are stale.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::crd::Store;
use crate::stores::StoreView;

/// Store id -> (resourceVersion, the view as JSON).
type Rendered = HashMap<String, (String, Arc<[u8]>)>;

#[derive(Default)]
pub struct ViewCache {
    by_id: Mutex<Rendered>,
}

impl ViewCache {
    /// The JSON array of the views of `stores`, in their order. `live` is every store that still
    /// exists (not just the caller's), to forget the views of deleted ones.
    pub fn render_list(
        &self,
        stores: &[Arc<Store>],
        live: &[Arc<Store>],
        view: impl Fn(&Store) -> StoreView,
    ) -> Vec<u8> {
        let mut parts = Vec::with_capacity(stores.len());
        {
            let mut cache = self.by_id.lock().expect("not poisoned");
            for store in stores {
                let id = store.metadata.name.as_deref().unwrap_or_default();
                let rv = store.metadata.resource_version.as_deref();
                let fresh = cache
                    .get(id)
                    .filter(|(cached_rv, _)| Some(cached_rv.as_str()) == rv)
                    .map(|(_, json)| json.clone());
                parts.push(fresh.unwrap_or_else(|| {
                    let json: Arc<[u8]> = serde_json::to_vec(&view(store))
                        .expect("views serialise")
                        .into();
                    if let Some(rv) = rv {
                        cache.insert(id.to_owned(), (rv.to_owned(), json.clone()));
                    }
                    json
                }));
            }
            if cache.len() > live.len() + 64 {
                let ids: HashSet<&str> = live
                    .iter()
                    .filter_map(|s| s.metadata.name.as_deref())
                    .collect();
                cache.retain(|id, _| ids.contains(id.as_str()));
            }
        }
        // Copied outside the lock: concurrent requests only wait for the lookups.
        let mut out = Vec::with_capacity(2 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
        out.push(b'[');
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(part);
        }
        out.push(b']');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StoreUrls, UrlScheme};
    use crate::crd::StoreSpec;
    use crate::domain::Engine;

    fn store(id: &str, rv: &str, name: &str) -> Arc<Store> {
        let mut s = Store::new(
            id,
            StoreSpec {
                name: Some(name.into()),
                engine: Engine::Woocommerce,
                owner: "admin".into(),
                plan: None,
                release: None,
                domains: Vec::new(),
                identity_generation: 0,
            },
        );
        s.metadata.resource_version = Some(rv.into());
        Arc::new(s)
    }

    fn view(s: &Store) -> StoreView {
        let urls = StoreUrls {
            scheme: UrlScheme::Http,
            base_domain: "localhost".into(),
        };
        crate::stores::view_of(s, &urls, &crate::plans::PlanName::parse("small").unwrap())
    }

    #[test]
    fn the_bytes_are_the_list_serialised_and_follow_changes() {
        let cache = ViewCache::default();
        let a = store("store-00000a", "1", "A");
        let b = store("store-00000b", "2", "B");
        let all = vec![a.clone(), b.clone()];
        let expected = serde_json::to_vec(&[view(&a), view(&b)]).unwrap();
        assert_eq!(cache.render_list(&all, &all, view), expected);
        // Served again from the cache: the same bytes.
        assert_eq!(cache.render_list(&all, &all, view), expected);
        // A new resourceVersion re-renders that store.
        let a2 = store("store-00000a", "3", "A renamed");
        let all2 = vec![a2.clone(), b.clone()];
        let expected2 = serde_json::to_vec(&[view(&a2), view(&b)]).unwrap();
        assert_eq!(cache.render_list(&all2, &all2, view), expected2);
        assert_eq!(cache.render_list(&[], &all2, view), b"[]");
    }
}

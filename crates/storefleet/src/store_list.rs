//! Which stores `GET /stores` answers: the filters, the one order (creation time, then store id),
//! and one page of it.
//!
//! Selection works on the Store objects in list order (`in_order`; `store_reads.rs` keeps them so
//! between changes), never on rendered views: a page of 50 is a binary search for its cursor, a scan
//! until 51 stores match the filters, and the bytes of those 50 views (cached per store in
//! `view_cache.rs`). Without filters that does not grow with the fleet.
use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use crate::crd::{Phase, Store};
use crate::domain::Owner;
use crate::paging::{Limit, PagingError, StoreCursor};

/// The largest page `GET /stores?limit=` answers.
pub const PAGE_MAX: u32 = 500;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Paging(#[from] PagingError),
    #[error("a cursor continues a page: pass `limit` with it")]
    CursorWithoutLimit,
    #[error("`{0}` is not a status (expected one of {list})", list = status_list())]
    UnknownStatus(String),
    #[error("q is {0} characters long; at most {max} are allowed", max = Search::MAX_CHARS)]
    SearchTooLong(usize),
}

fn status_list() -> String {
    Phase::ALL.map(Phase::as_str).join(", ")
}

/// A status as the store views report it (`Ready`, ...), spelt exactly so.
pub fn parse_status(raw: &str) -> Result<Phase, ListError> {
    Phase::ALL
        .into_iter()
        .find(|p| p.as_str() == raw)
        .ok_or_else(|| ListError::UnknownStatus(raw.chars().take(64).collect()))
}

/// `q`: a case-insensitive substring of the store's name or id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search(String);

impl Search {
    pub const MAX_CHARS: usize = 100;

    /// An empty `q` filters nothing (a search box left empty).
    pub fn parse(raw: &str) -> Result<Option<Self>, ListError> {
        let chars = raw.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(ListError::SearchTooLong(chars));
        }
        Ok((!raw.is_empty()).then(|| Self(raw.to_lowercase())))
    }

    fn matches(&self, store: &Store) -> bool {
        store.name_any().to_lowercase().contains(&self.0)
            || store
                .spec
                .name
                .as_deref()
                .is_some_and(|name| name.to_lowercase().contains(&self.0))
    }
}

/// Stores a list keeps; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct StoreFilter {
    pub status: Option<Phase>,
    pub owner: Option<Owner>,
    pub search: Option<Search>,
}

impl StoreFilter {
    fn matches(&self, store: &Store, phase_of: impl Fn(&Store) -> Phase) -> bool {
        self.owner
            .as_ref()
            .is_none_or(|o| store.spec.owner == o.as_str())
            && self.status.is_none_or(|p| phase_of(store) == p)
            && self.search.as_ref().is_none_or(|s| s.matches(store))
    }
}

/// The whole list (the answer `GET /stores` always had), or one page of it.
#[derive(Debug, Clone)]
pub enum Listing {
    All,
    Page {
        limit: Limit,
        after: Option<StoreCursor>,
    },
}

impl Listing {
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ListError> {
        match (limit, cursor) {
            (None, None) => Ok(Self::All),
            (None, Some(_)) => Err(ListError::CursorWithoutLimit),
            (Some(limit), cursor) => Ok(Self::Page {
                limit: Limit::parse(limit, PAGE_MAX)?,
                after: cursor.map(StoreCursor::parse).transpose()?,
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreQuery {
    pub filter: StoreFilter,
    pub listing: Listing,
}

/// What a query selected, in the list's order.
pub struct Selection {
    pub stores: Vec<Arc<Store>>,
    /// Where the next page starts; `None` on the last page (and for the whole list).
    pub next: Option<StoreCursor>,
}

/// The list's order: creation time, then the object's name (the store id). A store without a
/// creation time (never from an API server) sorts first.
fn key(store: &Store) -> (DateTime<Utc>, &str) {
    let created = store
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(crate::stores::to_chrono)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    (created, store.metadata.name.as_deref().unwrap_or_default())
}

/// The same order as `key`, without converting times (the sort compares often): Kubernetes' `Time`
/// orders as the instant it is, and a missing one as the earliest.
fn order(a: &Arc<Store>, b: &Arc<Store>) -> Ordering {
    fn cheap(s: &Store) -> (Option<k8s_openapi::jiff::Timestamp>, &str) {
        (
            s.metadata.creation_timestamp.as_ref().map(|t| t.0),
            s.metadata.name.as_deref().unwrap_or_default(),
        )
    }
    cheap(a).cmp(&cheap(b))
}

/// `stores` in the list's order.
pub fn in_order(mut stores: Vec<Arc<Store>>) -> Vec<Arc<Store>> {
    stores.sort_unstable_by(order);
    stores
}

/// The stores of `sorted` (in list order: [`in_order`]) that the caller may see (`visible`) and
/// `query` selects.
pub fn select(
    sorted: &[Arc<Store>],
    visible: impl Fn(&Store) -> bool,
    query: &StoreQuery,
    phase_of: impl Fn(&Store) -> Phase,
) -> Selection {
    let start = match &query.listing {
        Listing::Page {
            after: Some(cursor),
            ..
        } => {
            let position = (cursor.created, cursor.name.as_str());
            sorted.partition_point(|s| key(s) <= position)
        }
        _ => 0,
    };
    let mut matching = sorted[start..]
        .iter()
        .filter(|s| visible(s) && query.filter.matches(s, &phase_of))
        .cloned();
    let Listing::Page { limit, .. } = query.listing else {
        return Selection {
            stores: matching.collect(),
            next: None,
        };
    };
    let n = limit.as_usize();
    let mut chosen: Vec<Arc<Store>> = matching.by_ref().take(n + 1).collect();
    let more = chosen.len() > n;
    chosen.truncate(n);
    let next = more
        .then(|| chosen.last())
        .flatten()
        .map(|last| StoreCursor {
            created: key(last).0,
            name: last.name_any(),
        });
    Selection {
        stores: chosen,
        next,
    }
}

/// One page as `GET /stores?limit=` answers it, around the page's views already rendered as a
/// JSON array: `{"items": [...], "next_cursor": "..." | null}`.
pub fn page_json(items: Vec<u8>, next: Option<&StoreCursor>) -> Vec<u8> {
    let next = serde_json::to_vec(&next.map(StoreCursor::encode)).expect("strings serialise");
    let mut out = Vec::with_capacity(items.len() + next.len() + 32);
    out.extend_from_slice(br#"{"items":"#);
    out.extend_from_slice(&items);
    out.extend_from_slice(br#","next_cursor":"#);
    out.extend_from_slice(&next);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{StoreSpec, StoreStatus};
    use crate::domain::Engine;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    /// A store created `at` seconds after a fixed instant.
    fn store(id: &str, at: i64, name: &str, owner: &str, phase: Phase) -> Arc<Store> {
        let mut s = Store::new(
            id,
            StoreSpec {
                name: Some(name.into()),
                engine: Engine::Woocommerce,
                owner: owner.into(),
                plan: None,
                release: None,
                domains: Vec::new(),
                identity_generation: 0,
            },
        );
        s.metadata.creation_timestamp =
            Some(Time(Timestamp::from_second(1_764_666_442 + at).unwrap()));
        s.status = Some(StoreStatus {
            phase: Some(phase),
            ..Default::default()
        });
        Arc::new(s)
    }

    fn phase(s: &Store) -> Phase {
        s.phase().unwrap_or(Phase::Provisioning)
    }

    fn ids(selection: &Selection) -> Vec<String> {
        selection.stores.iter().map(|s| s.name_any()).collect()
    }

    fn page(limit: u32, after: Option<StoreCursor>) -> StoreQuery {
        StoreQuery {
            filter: StoreFilter::default(),
            listing: Listing::Page {
                limit: Limit::parse(limit, PAGE_MAX).unwrap(),
                after,
            },
        }
    }

    fn fleet() -> Vec<Arc<Store>> {
        vec![
            store("store-00000c", 20, "Coffee", "bob", Phase::Ready),
            store("store-00000a", 10, "Apples", "alice", Phase::Ready),
            store("store-00000e", 30, "Eggs", "alice", Phase::Failed),
            store("store-00000b", 10, "Bread", "bob", Phase::Provisioning),
            store("store-00000d", 20, "Dates & CAFÉ", "alice", Phase::Ready),
        ]
    }

    #[test]
    fn the_whole_list_is_in_creation_then_id_order() {
        let all = select(
            &in_order(fleet()),
            |_| true,
            &StoreQuery {
                filter: StoreFilter::default(),
                listing: Listing::All,
            },
            phase,
        );
        assert_eq!(
            ids(&all),
            [
                "store-00000a",
                "store-00000b",
                "store-00000c",
                "store-00000d",
                "store-00000e"
            ]
        );
        assert_eq!(all.next, None);
    }

    #[test]
    fn pages_continue_after_their_cursor_and_the_last_has_none() {
        let stores = in_order(fleet());
        let first = select(&stores, |_| true, &page(2, None), phase);
        assert_eq!(ids(&first), ["store-00000a", "store-00000b"]);
        let cursor = first.next.clone().expect("more pages");
        assert_eq!(cursor.name, "store-00000b");
        // Between pages: the store at the cursor is deleted, a new one created.
        let mut changed: Vec<_> = stores
            .iter()
            .filter(|s| s.name_any() != "store-00000b")
            .cloned()
            .collect();
        changed.push(store("store-000000", 40, "Newest", "bob", Phase::Ready));
        let changed = in_order(changed);
        let second = select(&changed, |_| true, &page(2, Some(cursor)), phase);
        assert_eq!(ids(&second), ["store-00000c", "store-00000d"]);
        let third = select(&changed, |_| true, &page(2, second.next.clone()), phase);
        assert_eq!(ids(&third), ["store-00000e", "store-000000"]);
        assert_eq!(third.next, None, "an exactly full last page");
    }

    #[test]
    fn filters_combine() {
        let stores = in_order(fleet());
        let query = |status, owner: Option<&str>, q: &str| StoreQuery {
            filter: StoreFilter {
                status,
                owner: owner.map(|o| Owner::parse(o).unwrap()),
                search: Search::parse(q).unwrap(),
            },
            listing: Listing::All,
        };
        let found = |q| ids(&select(&stores, |_| true, &q, phase));
        assert_eq!(
            found(query(Some(Phase::Ready), None, "")),
            ["store-00000a", "store-00000c", "store-00000d"]
        );
        assert_eq!(
            found(query(Some(Phase::Ready), Some("alice"), "")),
            ["store-00000a", "store-00000d"]
        );
        // Name, any case (Unicode too), and id.
        assert_eq!(found(query(None, None, "café")), ["store-00000d"]);
        assert_eq!(found(query(None, None, "BREAD")), ["store-00000b"]);
        assert_eq!(found(query(None, None, "00000e")), ["store-00000e"]);
        assert_eq!(found(query(None, Some("carol"), "")), Vec::<String>::new());
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(
            Listing::parse(None, Some("x")).unwrap_err(),
            ListError::CursorWithoutLimit
        );
        assert!(matches!(
            Listing::parse(Some(501), None),
            Err(ListError::Paging(PagingError::LimitOutOfRange { .. }))
        ));
        assert!(matches!(
            Listing::parse(Some(5), Some("bm9wZQ")),
            Err(ListError::Paging(PagingError::BadCursor))
        ));
        assert_eq!(parse_status("Ready"), Ok(Phase::Ready));
        assert!(parse_status("ready").is_err());
        assert!(Search::parse(&"x".repeat(100)).is_ok());
        assert_eq!(
            Search::parse(&"é".repeat(101)),
            Err(ListError::SearchTooLong(101))
        );
    }

    #[test]
    fn a_page_is_an_object_of_items_and_the_next_cursor() {
        let cursor = StoreCursor {
            created: DateTime::from_timestamp(1_764_666_442, 0).unwrap(),
            name: "store-7016ff".into(),
        };
        let json: serde_json::Value =
            serde_json::from_slice(&page_json(b"[{\"a\":1}]".to_vec(), Some(&cursor))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"items": [{"a": 1}], "next_cursor": "czE6MTc2NDY2NjQ0MjowOnN0b3JlLTcwMTZmZg"})
        );
        let last: serde_json::Value =
            serde_json::from_slice(&page_json(b"[]".to_vec(), None)).unwrap();
        assert_eq!(last, serde_json::json!({"items": [], "next_cursor": null}));
    }
}

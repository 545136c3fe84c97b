//! Claiming a pool store for a `POST /stores` (docs/pool.md): which one, and the one patch that makes
//! it the caller's. Pure; `stores.rs` calls it under the create lock (`storage/lock.rs`) and sends the
//! patch with the store's resourceVersion, so a store another request took in between answers 409 and
//! the next candidate is tried.
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::refill::{LABEL_POOL, kind_label};
use super::settings::PoolKind;
use crate::crd::{LABEL_OWNER, Phase, Store};
use crate::domain::{Owner, StoreName};

/// When a store was claimed (RFC 3339): its "created at" for its owner.
pub const ANNOTATION_CLAIMED_AT: &str = "storefleet.dev/claimed-at";

/// When `store` was claimed from the pool; `None`: it never was in the pool.
pub fn claimed_at(store: &Store) -> Option<Timestamp> {
    store
        .annotations()
        .get(ANNOTATION_CLAIMED_AT)
        .and_then(|t| t.parse().ok())
}

/// A claimed store that the store controller has not yet started to make its owner's (its status
/// is still the pool's Ready): shown as Provisioning, so that neither a view nor `?wait=true`
/// takes the pool's identity for the owner's shop.
pub fn awaiting_identity(store: &Store) -> bool {
    claimed_at(store).is_some()
        && store.status.as_ref().and_then(|st| st.observed_generation) < store.metadata.generation
}

/// Claims one of `candidates` for `owner`, trying them in order: answers the claimed store, or
/// `None` when every one went meanwhile (deleted, or no longer Ready). The caller holds the create
/// lock, so no other claim runs; a 409 means the store changed (a status write of the store
/// controller): it is read again and, still a Ready pool store, tried again.
pub async fn take(
    api: &Api<Store>,
    kind: &PoolKind,
    candidates: Vec<&Store>,
    owner: &Owner,
    name: Option<&StoreName>,
) -> kube::Result<Option<Store>> {
    for first in candidates {
        let mut store = first.clone();
        for _ in 0..3 {
            let at = Timestamp::now().to_string();
            let p = patch(&store, owner, name, &at);
            match api
                .patch(
                    &store.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&p),
                )
                .await
            {
                Ok(claimed) => return Ok(Some(claimed)),
                Err(kube::Error::Api(e)) if e.code == 404 => break,
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    match api.get_opt(&store.name_any()).await? {
                        Some(now) if !self::candidates(kind, &[&now]).is_empty() => store = now,
                        _ => break,
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(None)
}

/// Ready unclaimed pool stores of `kind`, oldest first (the longest-waiting goes first). Never one the
/// pool found broken (health.rs): a create takes the cold path rather than a store that is down.
pub fn candidates<'a>(kind: &PoolKind, stores: &[&'a Store]) -> Vec<&'a Store> {
    let label = kind.label_value();
    let mut ready: Vec<&Store> = stores
        .iter()
        .copied()
        .filter(|s| kind_label(s) == Some(label.as_str()))
        .filter(|s| !s.deletion_requested() && s.phase() == Some(Phase::Ready))
        .filter(|s| super::health::broken_since(s).is_none())
        .collect();
    ready.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            a.name_any(),
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.name_any(),
            ))
    });
    ready
}

/// The JSON merge patch of a claim: owner, name, owner label, the pool label removed and a new
/// identity generation, in one write (never half-claimed), guarded by `resourceVersion`.
pub fn patch(store: &Store, owner: &Owner, name: Option<&StoreName>, claimed_at: &str) -> Value {
    json!({
        "metadata": {
            "resourceVersion": store.resource_version(),
            "labels": {
                LABEL_POOL: Value::Null,
                LABEL_OWNER: owner.label_value(),
            },
            "annotations": { ANNOTATION_CLAIMED_AT: claimed_at },
        },
        "spec": {
            "owner": owner.as_str(),
            // No name: the store id is its name, as for a cold create without one.
            "name": name.map(StoreName::as_str),
            "identityGeneration": store.spec.identity_generation + 1,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{StoreSpec, StoreStatus};
    use crate::domain::Engine;
    use crate::plans::PlanName;
    use crate::pool::refill::POOL_OWNER;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pool_store(id: &str, at: i64, phase: Phase) -> Store {
        let mut s = Store::new(
            id,
            StoreSpec {
                name: Some("Pool store".into()),
                engine: Engine::Woocommerce,
                owner: POOL_OWNER.into(),
                plan: Some("small".into()),
                release: None,
                domains: Vec::new(),
                identity_generation: 0,
            },
        );
        s.metadata.labels = Some([(LABEL_POOL.to_owned(), "woocommerce.small".to_owned())].into());
        s.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + at).unwrap(),
        ));
        s.metadata.resource_version = Some(format!("{}", 100 + at));
        s.status = Some(StoreStatus {
            phase: Some(phase),
            ..StoreStatus::default()
        });
        s
    }

    /// RFC 7386 merge, as the API server applies a merge patch (the test's own, ten lines).
    fn merge(target: &mut Value, patch: &Value) {
        let Value::Object(fields) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        let object = target.as_object_mut().unwrap();
        for (key, value) in fields {
            if value.is_null() {
                object.remove(key);
            } else {
                merge(object.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }

    fn small() -> PoolKind {
        PoolKind {
            engine: Engine::Woocommerce,
            plan: PlanName::parse("small").unwrap(),
        }
    }

    #[test]
    fn ready_ones_oldest_first() {
        let newer = pool_store("store-00000a", 20, Phase::Ready);
        let older = pool_store("store-00000b", 10, Phase::Ready);
        let busy = pool_store("store-00000c", 0, Phase::Provisioning);
        let mut broken = pool_store("store-00000d", 0, Phase::Ready);
        broken.metadata.annotations = Some(
            [(
                crate::pool::health::ANNOTATION_BROKEN_SINCE.to_owned(),
                "2026-12-02T12:00:00Z".to_owned(),
            )]
            .into(),
        );
        let picked: Vec<String> = candidates(&small(), &[&newer, &older, &busy, &broken])
            .iter()
            .map(|s| s.name_any())
            .collect();
        assert_eq!(picked, ["store-00000b", "store-00000a"]);
        let large = PoolKind {
            plan: PlanName::parse("large").unwrap(),
            ..small()
        };
        assert!(candidates(&large, &[&newer]).is_empty(), "another plan");
    }

    #[test]
    fn the_patch_makes_it_the_callers_in_one_write() {
        let store = pool_store("store-00000a", 5, Phase::Ready);
        let alice = Owner::parse("alice").unwrap();
        let name = StoreName::parse("Alice's Shop").unwrap();
        let p = patch(&store, &alice, Some(&name), "2026-12-02T12:00:00Z");
        assert_eq!(p["metadata"]["resourceVersion"], "105", "guarded");
        assert_eq!(p["metadata"]["labels"][LABEL_POOL], Value::Null);
        assert_eq!(p["metadata"]["labels"][LABEL_OWNER], "alice");
        assert_eq!(p["spec"]["owner"], "alice");
        assert_eq!(p["spec"]["name"], "Alice's Shop");
        assert_eq!(p["spec"]["identityGeneration"], 1);
        // Applied as a merge patch, the store is no longer the pool's.
        let mut claimed = serde_json::to_value(&store).unwrap();
        merge(&mut claimed, &p);
        let claimed: Store = serde_json::from_value(claimed).unwrap();
        assert_eq!(kind_label(&claimed), None);
        assert_eq!(claimed.spec.identity_generation, 1);
        // Without a name: none, as a cold create without one.
        let unnamed = patch(&store, &alice, None, "2026-12-02T12:00:00Z");
        assert_eq!(unnamed["spec"]["name"], Value::Null);
    }
}

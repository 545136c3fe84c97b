//! Clones (issue 14): `POST /stores` with `from_backup` makes a new store from a backup of a store
//! the caller can see, a deleted one's final backup included (how a store deleted by mistake comes
//! back). The new store is provisioned as any other; then a `StoreRestore` fills it:
//!
//! 1. the API checks the backup ([`resolve`]: visible, Succeeded, same engine, its store's address
//!    recorded) and writes what it found on the new `Store` as the [`ANNOTATION_FROM`] annotation,
//!    in the same create: a store is a clone from birth or never;
//! 2. [`controller`] gives each such store its restore, under an id derived from the store, so a
//!    control plane killed in between makes the same one, once;
//! 3. the restore controller waits for the store to be Ready, restores the backup (no safety backup:
//!    the store holds nothing yet) and runs WP-CLI `search-replace` from the store's own WP-CLI image
//!    ([`urls`]) to move the site's URLs to the new address; a clone that fails ends `Failed`, with
//!    the reason, rather than Ready with another shop's half;
//! 4. [`controller`] marks the store done ([`ANNOTATION_DONE`]): the API shows it `Restoring` until then.
use chrono::{DateTime, Utc};
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BackupId;
use super::controller::of_instance;
use super::restores::RestoreId;
use super::service::ANNOTATION_OWNER;
use super::types::{BackupPhase, StoreBackup};
use crate::crd::Store;
use crate::domain::{Engine, StoreId};
use crate::stores::Caller;

pub mod controller;
pub mod urls;

/// On a `Store` made from a backup: the [`CloneSource`] as JSON.
pub const ANNOTATION_FROM: &str = "storefleet.dev/clone-from";
/// On a clone whose restore ended: `Succeeded` or `Failed` (its restore says why).
pub const ANNOTATION_DONE: &str = "storefleet.dev/clone-done";
/// On a backup: its store's engine, and its address when it was taken (a clone moves the URLs
/// from there).
pub const ANNOTATION_ENGINE: &str = "storefleet.dev/engine";
pub const ANNOTATION_SITE_URL: &str = "storefleet.dev/site-url";

/// Where a clone's data comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloneSource {
    pub backup_id: BackupId,
    /// The store the backup is of (perhaps deleted since).
    pub store_id: StoreId,
    /// That store's address when the backup was taken: `search-replace` moves it to the clone's.
    pub site_url: String,
}

/// Why `from_backup` is refused, before anything is made.
#[derive(Debug, thiserror::Error)]
pub enum CloneRefused {
    #[error("this platform has no backup target configured (docs/backups.md)")]
    NotConfigured,
    /// Missing, of another instance, or of a store the caller may not see: all alike.
    #[error("backup {0} not found")]
    NotFound(String),
    #[error("backup {backup} is {state}: only a Succeeded backup can be cloned")]
    NotUsable { backup: String, state: String },
    #[error("backup {backup} is of a {backup_engine} store; the new store would be {asked}")]
    OtherEngine {
        backup: String,
        backup_engine: String,
        asked: String,
    },
    #[error(
        "backup {0} does not record its store's address (it was taken before Storefleet recorded it), so a clone could not move the site's URLs; restore it in place instead"
    )]
    NoSiteUrl(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// The clone source `from_backup` names, if the caller may clone it into a store of `engine`.
/// The backup's owner annotation decides who may see it: its store may be gone.
pub async fn resolve(
    backups: &Api<StoreBackup>,
    instance: &str,
    caller: &Caller,
    backup_id: &BackupId,
    engine: Engine,
) -> Result<CloneSource, CloneRefused> {
    let not_found = || CloneRefused::NotFound(backup_id.to_string());
    let b = backups
        .get_opt(backup_id.as_str())
        .await?
        .filter(|b| of_instance(b, instance))
        .ok_or_else(not_found)?;
    let owner = b.annotations().get(ANNOTATION_OWNER).map(String::as_str);
    if !(caller.is_admin() || owner.is_some_and(|o| caller.may_see(o))) {
        return Err(not_found());
    }
    let store_id = StoreId::parse(&b.spec.store_id).map_err(|_| not_found())?;
    if b.phase() != Some(BackupPhase::Succeeded) {
        return Err(CloneRefused::NotUsable {
            backup: backup_id.to_string(),
            state: b.phase().map_or("Pending", BackupPhase::as_str).to_owned(),
        });
    }
    // Recorded from the store when the backup was asked for; the sealed manifest's engine is
    // checked again by the restore before anything is changed.
    let backup_engine = b
        .annotations()
        .get(ANNOTATION_ENGINE)
        .map_or(Engine::default().as_str(), String::as_str);
    if backup_engine != engine.as_str() {
        return Err(CloneRefused::OtherEngine {
            backup: backup_id.to_string(),
            backup_engine: backup_engine.to_owned(),
            asked: engine.as_str().to_owned(),
        });
    }
    let site_url = b
        .annotations()
        .get(ANNOTATION_SITE_URL)
        .filter(|u| site_path(u).is_some())
        .cloned()
        .ok_or_else(|| CloneRefused::NoSiteUrl(backup_id.to_string()))?;
    Ok(CloneSource {
        backup_id: backup_id.clone(),
        store_id,
        site_url,
    })
}

/// The clone source a store was made from, if it was.
pub fn source_of(store: &Store) -> Option<CloneSource> {
    serde_json::from_str(store.annotations().get(ANNOTATION_FROM)?).ok()
}

/// A clone whose restore has not ended: the API shows it `Restoring`, not yet Ready.
pub fn pending(store: &Store) -> Option<CloneSource> {
    source_of(store).filter(|_| !store.annotations().contains_key(ANNOTATION_DONE))
}

/// The clone's restore id: the store's creation time and a hash of its uid, so every control
/// plane (and one restarted) derives the same one.
pub fn restore_id(store: &Store) -> Option<RestoreId> {
    let created = store.metadata.creation_timestamp.as_ref()?;
    let at = DateTime::<Utc>::from_timestamp(created.0.as_second(), 0)?;
    let uid = store.metadata.uid.as_deref()?;
    let hash = Sha256::digest(uid.as_bytes());
    let time = RestoreId::new(at);
    let prefix = time
        .as_str()
        .rsplit_once('-')
        .map(|(p, _)| p)
        .expect("a restore id ends with its random part");
    RestoreId::parse(&format!("{prefix}-{}", &hex::encode(hash)[..6])).ok()
}

/// A site address without its scheme (`//host[:port][/path]`), what `search-replace` looks for:
/// it matches the `http:` and `https:` forms alike. `None` for anything but an http(s) URL.
pub fn site_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https:")
        .or_else(|| url.strip_prefix("http:"))?;
    let host = rest.strip_prefix("//")?;
    if host.is_empty() || host.starts_with('/') || url.chars().any(char::is_whitespace) {
        return None;
    }
    Some(format!("//{}", host.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_paths_drop_the_scheme_and_refuse_what_is_not_a_site() {
        assert_eq!(
            site_path("https://shop.example.com/").as_deref(),
            Some("//shop.example.com")
        );
        assert_eq!(
            site_path("http://store-1.localtest.me:8080").as_deref(),
            Some("//store-1.localtest.me:8080")
        );
        for bad in ["", "ftp://x", "http://", "http:///x", "https://a b", "//x"] {
            assert_eq!(site_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_clone_restore_id_is_a_restore_id_derived_from_the_store() {
        let mut store = Store::new(
            "store-abc123",
            crate::crd::StoreSpec {
                name: None,
                engine: Engine::default(),
                owner: "alice".into(),
                plan: None,
                release: None,
                domains: Vec::new(),
                identity_generation: 0,
            },
        );
        assert_eq!(restore_id(&store), None, "no uid or time yet");
        store.metadata.uid = Some("0b7c2f9e-1111-2222-3333-444455556666".into());
        store.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-12-02T06:00:00Z".parse().unwrap(),
            ));
        let id = restore_id(&store).unwrap();
        assert!(id.as_str().starts_with("restore-20261202-060000-"), "{id}");
        assert_eq!(restore_id(&store), Some(id.clone()));
        store.metadata.uid = Some("another".into());
        assert_ne!(restore_id(&store), Some(id));
    }
}

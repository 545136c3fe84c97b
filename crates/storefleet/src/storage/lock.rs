//! Locks that every replica on one database sees: what must happen one at a time across the control
//! plane, such as count-then-create for the store quotas (`stores.rs`). SQLite is one replica's file,
//! so a lock in the process is all there is. On PostgreSQL a replica first queues in the process (one
//! waiting connection per replica, not one per request), then takes a transaction-scoped advisory lock:
//! PostgreSQL releases it at rollback, when the guard drops, or when the connection dies with a killed
//! replica, so a crash cannot leave it held.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::AnyPool;
use tokio::sync::OwnedMutexGuard;

use super::Backend;

/// What is locked. `instance`: control planes of different instances may share one database; their
/// stores and quotas are separate, and so are their locks.
#[derive(Clone, Copy, Debug)]
pub enum LockName<'a> {
    /// Creating a store, or renaming one: the quota and name checks and the write, as one step.
    StoreCreate { instance: &'a str },
}

impl LockName<'_> {
    fn key(&self) -> String {
        match self {
            LockName::StoreCreate { instance } => format!("storefleet:store-create:{instance}"),
        }
    }
}

/// The process's side: one async mutex per lock name.
#[derive(Clone, Default)]
pub(super) struct Local(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

/// Held until dropped.
pub struct Exclusive {
    _local: OwnedMutexGuard<()>,
    /// PostgreSQL: the transaction that holds the advisory lock; dropping it rolls back, which
    /// releases the lock (sqlx flushes the rollback when the connection goes back to the pool).
    _shared: Option<sqlx::Transaction<'static, sqlx::Any>>,
}

pub(super) async fn take(
    pool: &AnyPool,
    backend: Backend,
    local: &Local,
    name: LockName<'_>,
) -> Result<Exclusive, sqlx::Error> {
    let key = name.key();
    let mutex = local
        .0
        .lock()
        .expect("lock table poisoned")
        .entry(key.clone())
        .or_default()
        .clone();
    let local = mutex.lock_owned().await;
    let shared = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(&key)
                .execute(&mut *tx)
                .await?;
            Some(tx)
        }
    };
    Ok(Exclusive {
        _local: local,
        _shared: shared,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::storage::Database;
    use crate::storage::testing::TestDb;

    use super::LockName;

    /// Two replicas on one PostgreSQL database: while one holds the lock the other waits, and a guard
    /// that is dropped (not released by hand) frees it.
    #[tokio::test]
    async fn a_lock_held_by_one_replica_holds_the_other() {
        let first = TestDb::postgres().await;
        let second = Database::connect(&first.url).await.unwrap();
        let name = LockName::StoreCreate { instance: "a" };
        let held = first.db.exclusive(name).await.unwrap();
        let waiting =
            tokio::time::timeout(Duration::from_millis(500), second.exclusive(name)).await;
        assert!(waiting.is_err(), "the second replica took a held lock");
        // Another instance's lock is another lock.
        let other = second
            .exclusive(LockName::StoreCreate { instance: "b" })
            .await
            .unwrap();
        drop(other);
        drop(held);
        let taken = tokio::time::timeout(Duration::from_secs(5), second.exclusive(name)).await;
        assert!(taken.is_ok(), "dropping the guard did not free the lock");
    }

    /// One process: the second request waits for the first, on either backend.
    #[tokio::test]
    async fn a_lock_serialises_one_process() {
        for TestDb { db, .. } in TestDb::each_backend().await {
            let name = LockName::StoreCreate { instance: "a" };
            let held = db.exclusive(name).await.unwrap();
            let waiting =
                tokio::time::timeout(Duration::from_millis(300), db.exclusive(name)).await;
            assert!(waiting.is_err(), "{:?}: taken twice", db.backend());
            drop(held);
            assert!(db.exclusive(name).await.is_ok());
        }
    }
}

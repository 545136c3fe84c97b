//! Fleet rollouts (issue 15, part 3): moving the stores of an instance to a new *target* (chart
//! values laid over the platform's, such as a WordPress image) in gated waves.
//!
//! A rollout is a `StoreRollout` object (`kubectl get storerollouts`: phase, target, progress),
//! like a Store the source of truth. Design, and why:
//! - The target is named chart values (`spec.target`). A Store records the target it runs in its
//!   own spec (`spec.release`): changing it is a new generation, so the *store* controller does the
//!   helm upgrade as for any change (Released/Upgraded, Event `Released`), and the Store says what
//!   it runs. The store controller only honours that field; its reconcile table has no rollout arm.
//! - The rollout moves a canary alone, then batches of `batchSize`, never more than
//!   `maxUnavailable` stores of the selection not Ready at once ([`plan`], pure, unit-tested).
//! - Gate: the Store Ready on the generation that carries the target (the store controller's
//!   readiness: workloads ready, setup Job succeeded), failing early on an image that cannot be
//!   pulled or a crash loop, else after `gateTimeoutSeconds`.
//! - A failed gate: `helm rollback <id> <previous revision>`, then the Store's `spec.release` back
//!   to what it was, Event `RolledBack`, audit, `storefleet_rollout_rollbacks_total`, and the
//!   rollout pauses (`spec.paused`) with a message naming the values that changed.
//! - With a backup target, each store is backed up first (`BackingUp`, the `StoreBackup`'s id in
//!   its progress) and moved only once that backup `Succeeded`; a `Failed` one pauses the rollout
//!   with the store untouched. Without one, no backup step.
//! - Restart-safe: each store's step is written to the rollout's status before it is taken; a
//!   Store whose spec already carries the target is never changed again (so never upgraded twice
//!   for one target), and a rollback whose spec revert landed is not run again.
//!
//! - [`types`]: the CRD; [`plan`]: which stores next; [`controller`]: the loop.
pub mod controller;
pub mod plan;
pub mod types;

pub use types::{StoreRollout, StoreRolloutSpec, StoreRolloutStatus};

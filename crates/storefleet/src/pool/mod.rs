//! The warm pool (issue 16, docs/pool.md): stores provisioned before anyone asks, claimed by
//! `POST /stores`. Built so far (branch `pool`): the settings, the refill plan and the claim's choice
//! and patch, pure and tested; the controller that carries out the plan and the claim in `stores.rs`
//! come next.
pub mod claim;
pub mod refill;
pub mod settings;

pub use settings::{PoolKind, PoolTargets, PoolTargetsError};

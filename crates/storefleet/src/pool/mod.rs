//! The warm pool (issue 16, docs/pool.md): stores provisioned before anyone asks, claimed by
//! `POST /stores`. This room holds its settings now; its controller and the claim come next.
pub mod refill;
pub mod settings;

pub use settings::{PoolKind, PoolTargets, PoolTargetsError};

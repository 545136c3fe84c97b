//! The warm pool (issue 16, docs/pool.md): stores provisioned before anyone asks, claimed by
//! `POST /stores`. `settings`: how many of which kind; `refill`: what the pool's controller does
//! next (pure); `controller`: the leader's loop that does it; `claim`: which store a create takes
//! and the one patch that makes it the caller's; `health`: a Ready pool store that breaks while it waits; `metrics`: size, ready, claims,
//! fallbacks; `status`: what admins read (`GET /pool`).
pub mod claim;
pub mod controller;
pub mod health;
pub mod metrics;
pub mod refill;
pub mod settings;
pub mod status;

pub use settings::{PoolKind, PoolTargets, PoolTargetsError};

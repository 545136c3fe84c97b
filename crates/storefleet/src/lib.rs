//! Storefleet control plane: the `Store` custom resource, its controller (which drives Helm), and the
//! REST API in front of it.
//!
//! - [`domain`]: newtypes parsed at the edges (store id, name, engine, owner, idempotency key)
//! - [`crd`]: the `Store` resource; [`controller`]: reconciling it; [`helm`]: the helm binary
//! - [`stores`]: the domain core behind the API ([`store_reads`]: its reads, from the watch cache); [`api`]: axum routes; [`storage`]: audit log (SQLite)
//! - [`cli`], [`config`], [`server`], [`telemetry`], [`metrics`]: wiring
pub mod api;
pub mod cli;
pub mod config;
pub mod controller;
pub mod crd;
pub mod domain;
pub mod helm;
pub mod metrics;
pub mod server;
pub mod storage;
pub mod store_reads;
pub mod stores;
pub mod telemetry;
pub mod view_cache;

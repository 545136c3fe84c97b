//! Storefleet control plane: the `Store` custom resource, its controller (which drives Helm), and the
//! REST API in front of it.
//!
//! - [`domain`]: newtypes parsed at the edges (store id, name, engine, owner, idempotency key)
//! - [`crd`]: the `Store` resource; [`controller`]: reconciling it; [`helm`]: the helm binary
//! - [`stores`]: the domain core behind the API ([`store_feed`]: its one watch of Stores, feeding
//!   [`store_reads`] and every event stream; [`store_list`]: which stores `GET /stores` answers,
//!   its filters and pages); [`api`]: axum routes; [`storage`]: audit log (SQLite)
//! - [`paging`]: page sizes and the opaque cursors of long lists (`GET /stores`, `GET /audit`)
//! - [`plans`]: size plans (resources, quota, volume sizes) and the grow-never-shrink rule
//! - [`backups`]: the backup archive (issue 14): format, encryption, object storage, checks
//! - [`domains`]: a store's own domains (claims, state, certificates)
//! - [`rollouts`]: fleet rollouts (a new target to every store, in gated waves, with rollback)
//! - [`mail`]: the platform's SMTP relay, which every store sends through
//! - [`cidr`]: address ranges for the store chart's egress policies (the relay's, the S3 endpoint's)
//! - [`storefront`]: the storefront check (`GET /stores/{id}/health`): does the shop answer?
//! - [`dependencies`]: the CRD, the watch and the database as this process last saw them (`/readyz`)
//! - [`leadership`]: which replica runs the controllers (a Lease), and the gate they run behind
//! - [`cli`], [`config`], [`server`], [`telemetry`], [`metrics`]: wiring
pub mod api;
pub mod backups;
pub mod cidr;
pub mod cli;
pub mod config;
pub mod controller;
pub mod crd;
pub mod dependencies;
pub mod domain;
pub mod domains;
pub mod helm;
pub mod leadership;
pub mod mail;
pub mod metrics;
pub mod paging;
pub mod plans;
pub mod pool;
pub mod rollouts;
pub mod server;
pub mod storage;
pub mod store_feed;
pub mod store_list;
pub mod store_reads;
pub mod storefront;
pub mod stores;
pub mod telemetry;
pub mod view_cache;

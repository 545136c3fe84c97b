//! Custom domains (issue 18): a store may answer on its own domains besides
//! `<id>.<base-domain>`, each with its own certificate.
//!
//! Design, and why:
//! - A domain is parsed once at the edge ([`name`]): IDNA to punycode, lowercase, the public suffix
//!   list, no wildcard, never the platform's base domain or under it; one trailing dot is dropped.
//! - Uniqueness across stores is the API server's: one cluster-scoped `StoreDomain` object per
//!   domain, named after it ([`types`], [`claim`]). Creating it is claiming; a second store gets
//!   `AlreadyExists`, answered as a 409 that does not say which store holds the name.
//! - The Store's `spec.domains` is what the release gets (routes, certificates, WordPress's home
//!   URL for the primary one): a change is a new generation, so the store controller upgrades as
//!   for any change; its reconcile table has no domain arm ([`service`]).
//! - The domain's state (waiting for DNS, certificate pending, active, failed) is the claim's
//!   status, written by the domain controller ([`controller`], decided by [`state`]).
//! - Deleting a store releases its claims once its namespace is gone ([`release_store`], one call
//!   from the store's cleanup); the domain controller also releases claims no store lists.
pub mod claim;
pub mod controller;
pub mod name;
pub mod service;
pub mod state;
pub mod types;

pub use claim::release_store;
pub use name::{DomainName, DomainNameError};
pub use service::{DomainService, DomainSettings, DomainView, DomainsError, Put};
pub use types::{DomainClaim, DomainClaimSpec, DomainClaimStatus, DomainState};

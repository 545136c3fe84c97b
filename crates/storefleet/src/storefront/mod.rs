//! The storefront check (`GET /stores/{id}/health`): does the store's *shop* answer, as a visitor
//! would see it, and not only its pods? Pods can be Ready while WordPress shows an error page, lost
//! its site title, or runs without WooCommerce; upgrades and restores need to know.
//!
//! - [`wordpress`]: what a healthy answer looks like (the home page with the site title; the REST
//!   index `/wp-json/` listing WooCommerce's Store API).
//! - [`check`]: the HTTP side: one request per part, the store's Host header, a short timeout, a
//!   capped body, and no redirect followed off the store.
//! - [`service`]: where the store's WordPress is: its Service's ClusterIP, read through the
//!   Kubernetes API (no cluster DNS needed, so the same path works in a cluster, on the test
//!   cluster and on real pods).
//!
//! Everything a store answers is untrusted: its owner is WordPress administrator there and may run
//! any plugin. Hence the caps on time and bytes, the redirect rule (a store must not steer the
//! control plane to another address), and reasons that quote at most a short, cleaned excerpt.
pub mod check;
pub mod service;
pub mod wordpress;

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

pub use check::Checker;
pub use service::Storefronts;

/// Where a store's WordPress is asked, and who it is expected to be.
#[derive(Clone, Debug)]
pub struct Target {
    /// Where to connect: the WordPress Service's ClusterIP and port.
    pub addr: SocketAddr,
    /// The store's host name (`<store id>.<base domain>`): sent as `Host`, and the only host a
    /// redirect may go to. WordPress redirects any other host to its own (`redirect_canonical`).
    pub host: String,
    /// The title WordPress was installed with: the store's display name (the controller passes it
    /// to the chart as `siteTitle`).
    pub site_title: String,
}

/// How one part of the check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartResult {
    Ok,
    Failed,
}

/// Why a part failed, for programs; `reason` says it for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The store has no WordPress Service (yet), or it has no ClusterIP.
    NoService,
    /// Nothing answered: the connection was refused, reset, or could not be made.
    Unreachable,
    /// No complete answer within the timeout.
    Timeout,
    /// An answer other than 200.
    HttpStatus,
    /// A redirect to another host (or port): not followed.
    RedirectOffStore,
    /// More redirects on the store than the check follows.
    TooManyRedirects,
    /// 200, but not what WordPress answers (no site title, not the REST index, too large).
    UnexpectedContent,
    /// Not HTTP, or a broken HTTP answer.
    Protocol,
}

/// One part of the check: one page asked for.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Part {
    pub result: PartResult,
    /// Why it failed (null when ok).
    pub failure: Option<Failure>,
    /// Why it failed, in words (null when ok).
    #[schema(example = "unreachable: Connection refused (os error 111)")]
    pub reason: Option<String>,
    /// The HTTP status of the last answer, if there was one.
    #[schema(example = 200)]
    pub http_status: Option<u16>,
    /// From the first request to the end of the last answer (or the failure), in milliseconds.
    #[schema(example = 42)]
    pub latency_ms: u64,
}

impl Part {
    pub fn ok(http_status: u16, latency_ms: u64) -> Self {
        Self {
            result: PartResult::Ok,
            failure: None,
            reason: None,
            http_status: Some(http_status),
            latency_ms,
        }
    }

    pub fn failed(failure: Failure, reason: impl Into<String>, latency_ms: u64) -> Self {
        Self {
            result: PartResult::Failed,
            failure: Some(failure),
            reason: Some(reason.into()),
            http_status: None,
            latency_ms,
        }
    }

    pub fn with_status(mut self, http_status: u16) -> Self {
        self.http_status = Some(http_status);
        self
    }

    pub fn is_ok(&self) -> bool {
        self.result == PartResult::Ok
    }
}

/// What the two requests found.
#[derive(Clone, Debug, PartialEq)]
pub struct Checks {
    pub home_page: Part,
    pub rest_api: Part,
    /// `None` when the REST index could not be read.
    pub woocommerce_active: Option<bool>,
}

impl Checks {
    /// Both parts failed for one reason found before any request (no Service to ask).
    pub fn not_asked(failure: Failure, reason: &str) -> Self {
        Self {
            home_page: Part::failed(failure, reason, 0),
            rest_api: Part::failed(failure, reason, 0),
            woocommerce_active: None,
        }
    }
}

/// The answer of `GET /stores/{id}/health`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct StorefrontHealth {
    #[schema(example = "store-7016ff")]
    pub store_id: String,
    /// The Host the store was asked as.
    #[schema(example = "store-7016ff.localhost")]
    pub host: String,
    pub checked_at: DateTime<Utc>,
    /// The shop answers: both parts ok and WooCommerce active.
    pub healthy: bool,
    /// `GET /`: 200 with the store's name (WordPress's site title) in `<title>`.
    pub home_page: Part,
    /// `GET /wp-json/`: 200 with WordPress's REST index (JSON with a `namespaces` list).
    pub rest_api: Part,
    /// Whether the REST index lists `wc/store/v1` (WooCommerce's Store API, so WooCommerce is
    /// active); null when the index could not be read.
    pub woocommerce_active: Option<bool>,
}

impl StorefrontHealth {
    pub fn new(store_id: String, host: String, checks: Checks) -> Self {
        Self {
            store_id,
            host,
            checked_at: Utc::now(),
            healthy: checks.home_page.is_ok()
                && checks.rest_api.is_ok()
                && checks.woocommerce_active == Some(true),
            home_page: checks.home_page,
            rest_api: checks.rest_api,
            woocommerce_active: checks.woocommerce_active,
        }
    }
}

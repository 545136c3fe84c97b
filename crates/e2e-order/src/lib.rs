//! End-to-end order check for a WooCommerce store: through the public Store API
//! (`/wp-json/wc/store/v1`) it adds a product to a guest cart, checks out with Cash on
//! Delivery and reads the order back. The order is real and stays in the store (marked as a
//! Storefleet test order) and takes stock. It needs a real store; the parts that can be
//! checked without one (request building, response checks, session headers) are tested on
//! their own, and the whole flow against a stand-in answering with the Store API's schema
//! shapes (tests/recorded_store_api.rs).
//!
//! - [`store_url`]: the store's base URL, parsed once.
//! - [`input`]: the SKU and billing e-mail given on the command line, checked once.
//! - [`mark`]: how a test order is marked for the shop owner.
//! - [`requests`]: the Store API requests, as data.
//! - [`session`]: the guest cart session (`Cart-Token` and `Nonce` headers).
//! - [`responses`]: the response shapes and the checks on them.
//! - [`flow`]: the order, step by step, over HTTP.

pub mod flow;
pub mod input;
pub mod mark;
pub mod requests;
pub mod responses;
pub mod session;
pub mod store_url;

pub use flow::{DEFAULT_EMAIL, OrderOptions, place_cod_order};
pub use input::{BillingEmail, Sku};
pub use responses::PlacedOrder;
pub use store_url::StoreUrl;

/// Everything that can go wrong while placing the order; each says which step and why.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad store URL {url:?}: {reason}")]
    StoreUrl { url: String, reason: String },
    #[error("{step}: request failed: {source}")]
    Http {
        step: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{step}: HTTP {status}, Store API error {code:?}: {message}")]
    Api {
        step: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{step}: unexpected response: {reason}")]
    Unexpected { step: &'static str, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

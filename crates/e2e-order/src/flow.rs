//! One Cash on Delivery order, step by step: pick a product, open a guest cart, add the
//! product, set the addresses, check out, read the order back. Each step's response is
//! checked before the next one is sent. The order is real: it stays in the store, marked as a
//! Storefleet test order ([`crate::mark`]), and it reduces the product's stock.

use reqwest::header::ACCEPT;
use serde::de::DeserializeOwned;

use crate::input::{BillingEmail, Sku};
use crate::requests::{self, Address, ApiRequest};
use crate::responses::{self, ApiErrorBody, Cart, CheckoutResponse, Order, PlacedOrder, Product};
use crate::session::CartSession;
use crate::{Error, Result, StoreUrl};

/// Billing e-mail when none is given.
pub const DEFAULT_EMAIL: &str = "e2e-order@example.com";

/// What to order and where to send it.
#[derive(Debug, Clone)]
pub struct OrderOptions {
    /// Buy this SKU; `None`: the first purchasable simple product in stock.
    pub sku: Option<Sku>,
    /// Billing e-mail; also what proves access to the guest order afterwards.
    pub email: BillingEmail,
    pub address: Address,
}

impl Default for OrderOptions {
    fn default() -> Self {
        OrderOptions {
            sku: None,
            email: DEFAULT_EMAIL.parse().expect("the default e-mail is valid"),
            address: Address::test_buyer(),
        }
    }
}

/// Places the order and confirms it exists; answers what was ordered.
pub async fn place_cod_order(
    http: &reqwest::Client,
    store: &StoreUrl,
    options: &OrderOptions,
) -> Result<PlacedOrder> {
    let mut session = CartSession::default();

    let products: Vec<Product> = send(
        http,
        &mut session,
        requests::list_products(store, options.sku.as_ref()),
    )
    .await?;
    let product = responses::choose_product(&products, options.sku.as_ref())?.clone();

    let _: Cart = send(http, &mut session, requests::get_cart(store)).await?;
    if session.cart_token.is_none() && session.nonce.is_none() {
        return Err(Error::Unexpected {
            step: "open cart",
            reason: "no Cart-Token or Nonce header".into(),
        });
    }

    let cart: Cart = send(http, &mut session, requests::add_item(store, product.id, 1)).await?;
    responses::check_added(&cart, product.id)?;

    let cart: Cart = send(
        http,
        &mut session,
        requests::update_customer(store, &options.address, &options.email),
    )
    .await?;
    responses::check_ready_for_checkout(&cart)?;

    let response: CheckoutResponse = send(
        http,
        &mut session,
        requests::checkout(store, &options.address, &options.email),
    )
    .await?;
    let placed = responses::check_checkout(&response, &product)?;

    let order: Order = send(
        http,
        &mut session,
        requests::get_order(store, placed.order_id, &placed.order_key, &options.email),
    )
    .await?;
    responses::check_order(&order, &placed)?;
    Ok(placed)
}

/// Sends one request with the session's headers, keeps the new tokens, and parses the answer
/// (a Store API error body becomes [`Error::Api`]).
async fn send<T: DeserializeOwned>(
    http: &reqwest::Client,
    session: &mut CartSession,
    request: ApiRequest,
) -> Result<T> {
    let step = request.step;
    let mut builder = http
        .request(request.method, request.url)
        .headers(session.headers())
        .header(ACCEPT, "application/json");
    if let Some(body) = &request.body {
        builder = builder.json(body);
    }
    let response = builder
        .send()
        .await
        .map_err(|source| Error::Http { step, source })?;
    session.update(response.headers());
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|source| Error::Http { step, source })?;
    if !status.is_success() {
        let (code, message) = match serde_json::from_str::<ApiErrorBody>(&text) {
            Ok(body) => (body.code, body.message),
            Err(_) => (String::new(), excerpt(&text)),
        };
        return Err(Error::Api {
            step,
            status: status.as_u16(),
            code,
            message,
        });
    }
    serde_json::from_str(&text).map_err(|e| Error::Unexpected {
        step,
        reason: format!("not the expected JSON ({e}): {}", excerpt(&text)),
    })
}

/// The start of a body, for error messages (an HTML error page can be long).
fn excerpt(text: &str) -> String {
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

//! A stand-in of the WooCommerce Store API: a small axum server that answers with the response
//! shapes of WooCommerce's schema classes ([`schema`]) and enforces what the real routes
//! enforce for a guest (Cart-Token or Nonce on cart POSTs and checkout, order key and billing
//! e-mail on order reads). Order lines get their own ids, from 1000, as WooCommerce's order
//! items table numbers them: they never equal a product id here, so a check that mistakes one
//! for the other fails. It is not WooCommerce; the real check needs a running store:
//! `scripts/e2e-order <store-url>`.

pub mod schema;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use e2e_order::StoreUrl;
use serde_json::{Value, json};

use schema::{StandInLine, StandInOrder, StandInProduct};

const VALID_NONCE: &str = "a1b2c3d4e5";
/// First order item id; WooCommerce numbers order items across all orders.
const FIRST_ITEM_ID: u64 = 1000;

#[derive(Default)]
struct Cart {
    items: Vec<(u64, u32)>,
    billing: Option<Value>,
    shipping: Option<Value>,
}

/// How the stand-in misbehaves, to show the checks catch it.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// A product the cart refuses although the listing shows it as purchasable.
    pub refused_product: Option<u64>,
    /// The order holds this product instead of the one in the cart.
    pub order_holds: Option<u64>,
    /// The checkout drops the customer note.
    pub drop_customer_note: bool,
}

pub struct StandIn {
    pub products: Vec<StandInProduct>,
    carts: HashMap<String, Cart>,
    pub orders: Vec<StandInOrder>,
    next_item_id: u64,
    /// Status a checkout ends in (a real store says `processing` for COD).
    checkout_status: &'static str,
    pub faults: Faults,
}

pub type Shared = Arc<Mutex<StandIn>>;
type Reply = (StatusCode, HeaderMap, axum::Json<Value>);

/// The products of a fresh stand-in: one that cannot be bought (external), then the Beanie.
pub fn products() -> Vec<StandInProduct> {
    let mut pennant = StandInProduct::new(34, "WordPress Pennant", "wp-pennant", 1105);
    pennant.is_purchasable = false;
    vec![
        pennant,
        StandInProduct::new(15, "Beanie", "woo-beanie", 1800),
    ]
}

fn error(status: StatusCode, headers: HeaderMap, code: &str, message: &str) -> Reply {
    let body = json!({ "code": code, "message": message, "data": { "status": status.as_u16() } });
    (status, headers, axum::Json(body))
}

/// The cart session of a request, as the cart routes resolve it: a known Cart-Token, else a
/// fresh guest cart. Answers the token and the headers every cart route response carries.
fn session(state: &mut StandIn, request: &HeaderMap) -> (String, HeaderMap) {
    let token = request
        .get("cart-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| state.carts.contains_key(*t))
        .map(String::from)
        .unwrap_or_else(|| {
            let token = format!(
                "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.cart-{}",
                state.carts.len() + 1
            );
            state.carts.insert(token.clone(), Cart::default());
            token
        });
    let mut headers = HeaderMap::new();
    headers.insert("Nonce", HeaderValue::from_static(VALID_NONCE));
    headers.insert("Nonce-Timestamp", HeaderValue::from_static("1732250000"));
    headers.insert("User-ID", HeaderValue::from_static("0"));
    headers.insert(
        "Cart-Token",
        HeaderValue::from_str(&token).expect("token header"),
    );
    (token, headers)
}

/// POSTs to cart routes and checkout need a valid Cart-Token, or else a valid Nonce.
fn authorised(
    state: &StandIn,
    request: &HeaderMap,
) -> Result<(), (StatusCode, &'static str, &'static str)> {
    let has_token = request
        .get("cart-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| state.carts.contains_key(t));
    match request.get("nonce").and_then(|v| v.to_str().ok()) {
        _ if has_token => Ok(()),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "woocommerce_rest_missing_nonce",
            "Missing the Nonce header. This endpoint requires a valid nonce.",
        )),
        Some(VALID_NONCE) => Ok(()),
        Some(_) => Err((
            StatusCode::FORBIDDEN,
            "woocommerce_rest_invalid_nonce",
            "Nonce is invalid.",
        )),
    }
}

impl StandIn {
    fn product(&self, id: u64) -> &StandInProduct {
        self.products
            .iter()
            .find(|p| p.id == id)
            .expect("known product")
    }

    fn cart_body(&self, cart: &Cart) -> Value {
        let items = cart
            .items
            .iter()
            .map(|(id, quantity)| schema::cart_item(self.product(*id), *quantity))
            .collect::<Vec<_>>();
        let packages = match &cart.shipping {
            Some(shipping) if !items.is_empty() => vec![schema::shipping_package(shipping)],
            _ => vec![],
        };
        schema::cart(
            items,
            packages,
            cart.billing
                .clone()
                .unwrap_or_else(|| schema::empty_address(true)),
            cart.shipping
                .clone()
                .unwrap_or_else(|| schema::empty_address(false)),
        )
    }
}

async fn list_products(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> axum::Json<Value> {
    let state = state.lock().unwrap();
    let listed: Vec<Value> = state
        .products
        .iter()
        .filter(|p| query.get("sku").is_none_or(|sku| &p.sku == sku))
        .map(schema::product)
        .collect();
    axum::Json(json!(listed))
}

async fn get_cart(State(state): State<Shared>, request: HeaderMap) -> Reply {
    let mut state = state.lock().unwrap();
    let (token, headers) = session(&mut state, &request);
    let body = state.cart_body(&state.carts[&token]);
    (StatusCode::OK, headers, axum::Json(body))
}

async fn add_item(
    State(state): State<Shared>,
    request: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Reply {
    let mut state = state.lock().unwrap();
    if let Err((status, code, message)) = authorised(&state, &request) {
        let (_, headers) = session(&mut state, &request);
        return error(status, headers, code, message);
    }
    let (token, headers) = session(&mut state, &request);
    let (Some(id), Some(quantity)) = (body["id"].as_u64(), body["quantity"].as_u64()) else {
        return error(
            StatusCode::BAD_REQUEST,
            headers,
            "rest_missing_callback_param",
            "Missing parameter(s): id",
        );
    };
    let purchasable = state.faults.refused_product != Some(id)
        && state
            .products
            .iter()
            .any(|p| p.id == id && p.is_purchasable && p.is_in_stock);
    if !purchasable {
        return error(
            StatusCode::BAD_REQUEST,
            headers,
            "woocommerce_rest_cart_invalid_product",
            "This product cannot be added to the cart.",
        );
    }
    let cart = state.carts.get_mut(&token).unwrap();
    cart.items.push((id, quantity as u32));
    let body = state.cart_body(&state.carts[&token]);
    (StatusCode::CREATED, headers, axum::Json(body))
}

async fn update_customer(
    State(state): State<Shared>,
    request: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Reply {
    let mut state = state.lock().unwrap();
    if let Err((status, code, message)) = authorised(&state, &request) {
        let (_, headers) = session(&mut state, &request);
        return error(status, headers, code, message);
    }
    let (token, headers) = session(&mut state, &request);
    let cart = state.carts.get_mut(&token).unwrap();
    cart.billing = Some(schema::stored_address(&body["billing_address"], true));
    cart.shipping = Some(schema::stored_address(&body["shipping_address"], false));
    let body = state.cart_body(&state.carts[&token]);
    (StatusCode::OK, headers, axum::Json(body))
}

async fn checkout(
    State(state): State<Shared>,
    request: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Reply {
    let mut state = state.lock().unwrap();
    if let Err((status, code, message)) = authorised(&state, &request) {
        let (_, headers) = session(&mut state, &request);
        return error(status, headers, code, message);
    }
    let (token, headers) = session(&mut state, &request);
    let items = state.carts[&token].items.clone();
    if items.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            headers,
            "woocommerce_rest_cart_empty",
            "Cannot create order from empty cart.",
        );
    }
    let billing = schema::stored_address(&body["billing_address"], true);
    let shipping = schema::stored_address(&body["shipping_address"], false);
    if billing["email"] == "" || shipping["address_1"] == "" {
        return error(
            StatusCode::BAD_REQUEST,
            headers,
            "rest_invalid_param",
            "Invalid parameter(s): billing_address",
        );
    }
    let method = body["payment_method"].as_str().unwrap_or_default();
    if method != "cod" {
        return error(
            StatusCode::BAD_REQUEST,
            headers,
            "woocommerce_rest_checkout_payment_method_unavailable",
            "This payment method is not available.",
        );
    }
    let id = 146 + state.orders.len() as u64;
    let mut lines = Vec::new();
    for (product_id, quantity) in items {
        lines.push(StandInLine {
            item_id: state.next_item_id,
            product_id: state.faults.order_holds.unwrap_or(product_id),
            quantity,
        });
        state.next_item_id += 1;
    }
    let note = if state.faults.drop_customer_note {
        String::new()
    } else {
        body["customer_note"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let order = StandInOrder {
        id,
        key: format!("wc_order_{id}standin"),
        status: state.checkout_status.to_string(),
        payment_method: method.to_string(),
        customer_note: note,
        billing_address: billing,
        shipping_address: shipping,
        lines,
    };
    let payment_status = if state.checkout_status == "failed" {
        "failure"
    } else {
        "success"
    };
    let response = schema::checkout(&order, payment_status);
    state.orders.push(order);
    state.carts.get_mut(&token).unwrap().items.clear();
    (StatusCode::OK, headers, axum::Json(response))
}

async fn order(
    State(state): State<Shared>,
    Path(id): Path<u64>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    let state = state.lock().unwrap();
    let headers = HeaderMap::new();
    let Some(order) = state.orders.iter().find(|o| o.id == id) else {
        return error(
            StatusCode::NOT_FOUND,
            headers,
            "woocommerce_rest_invalid_order",
            "Invalid order ID or key provided.",
        );
    };
    if query.get("key") != Some(&order.key) {
        return error(
            StatusCode::UNAUTHORIZED,
            headers,
            "woocommerce_rest_invalid_order",
            "Invalid order ID or key provided.",
        );
    }
    if query.get("billing_email").map(String::as_str) != order.billing_address["email"].as_str() {
        return error(
            StatusCode::UNAUTHORIZED,
            headers,
            "woocommerce_rest_invalid_billing_email",
            "Invalid billing email provided.",
        );
    }
    let items = order
        .lines
        .iter()
        .map(|line| schema::order_item(order, line, state.product(line.product_id)))
        .collect();
    (
        StatusCode::OK,
        headers,
        axum::Json(schema::order(order, items)),
    )
}

/// Starts the stand-in on a free port; answers its base URL and its state.
pub async fn start(
    products: Vec<StandInProduct>,
    checkout_status: &'static str,
) -> (StoreUrl, Shared) {
    let state: Shared = Arc::new(Mutex::new(StandIn {
        products,
        carts: HashMap::new(),
        orders: Vec::new(),
        next_item_id: FIRST_ITEM_ID,
        checkout_status,
        faults: Faults::default(),
    }));
    let api = Router::new()
        .route("/products", get(list_products))
        .route("/cart", get(get_cart))
        .route("/cart/add-item", post(add_item))
        .route("/cart/update-customer", post(update_customer))
        .route("/checkout", post(checkout))
        .route("/order/{id}", get(order))
        .with_state(state.clone());
    let app = Router::new().nest("/wp-json/wc/store/v1", api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("stand-in server") });
    (
        StoreUrl::parse(&format!("http://{addr}")).expect("url"),
        state,
    )
}

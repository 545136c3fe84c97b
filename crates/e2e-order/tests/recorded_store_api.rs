//! The whole e2e-order flow against a recorded stand-in of the WooCommerce Store API: a small
//! axum server that answers with response shapes recorded from the Store API reference
//! (tests/fixtures) and enforces what the real routes enforce for a guest (Cart-Token or Nonce
//! on cart POSTs and checkout, order key and billing e-mail on order reads). It is not
//! WooCommerce: it shows that e2e-order speaks the documented protocol, nothing more. The real
//! check needs a running store: `scripts/e2e-order <store-url>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use e2e_order::{Error, OrderOptions, StoreUrl, place_cod_order};
use serde_json::{Value, json};

const VALID_NONCE: &str = "a1b2c3d4e5";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

#[derive(Default)]
struct Cart {
    items: Vec<(u64, u32)>,
    shipping_country: Option<String>,
}

struct Order {
    id: u64,
    key: String,
    email: String,
    payment_method: String,
    items: Vec<(u64, u32)>,
}

struct StandIn {
    products: Value,
    carts: HashMap<String, Cart>,
    orders: Vec<Order>,
    /// Status a checkout ends in (a real store says `processing` for COD).
    checkout_status: &'static str,
    /// A product the cart refuses although the listing shows it as purchasable.
    refused_product: Option<u64>,
}

type Shared = Arc<Mutex<StandIn>>;
type Reply = (StatusCode, HeaderMap, axum::Json<Value>);

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

fn cart_body(state: &StandIn, cart: &Cart) -> Value {
    let mut body = fixture("cart.json");
    let items: Vec<Value> = cart
        .items
        .iter()
        .map(|(id, quantity)| {
            let product = state
                .products
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["id"] == *id)
                .unwrap();
            let mut item = fixture("cart-item.json");
            item["id"] = json!(id);
            item["quantity"] = json!(quantity);
            item["name"] = product["name"].clone();
            item["sku"] = product["sku"].clone();
            item
        })
        .collect();
    body["items_count"] = json!(items.len());
    body["needs_shipping"] = json!(!items.is_empty());
    body["needs_payment"] = json!(!items.is_empty());
    body["items"] = json!(items);
    if let (Some(country), false) = (&cart.shipping_country, cart.items.is_empty()) {
        let mut package = fixture("shipping-package.json");
        package["destination"]["country"] = json!(country);
        body["shipping_rates"] = json!([package]);
        body["has_calculated_shipping"] = json!(true);
    }
    body
}

async fn list_products(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> axum::Json<Value> {
    let state = state.lock().unwrap();
    let all = state.products.as_array().unwrap().iter().cloned();
    let listed: Vec<Value> = match query.get("sku") {
        Some(sku) => all.filter(|p| p["sku"] == sku.as_str()).collect(),
        None => all.collect(),
    };
    axum::Json(json!(listed))
}

async fn get_cart(State(state): State<Shared>, request: HeaderMap) -> Reply {
    let mut state = state.lock().unwrap();
    let (token, headers) = session(&mut state, &request);
    let body = cart_body(&state, &state.carts[&token]);
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
    let purchasable = state.refused_product != Some(id)
        && state
            .products
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == id && p["is_purchasable"] == true);
    if !purchasable {
        return error(
            StatusCode::BAD_REQUEST,
            headers,
            "woocommerce_rest_cart_invalid_product",
            "This product cannot be added to the cart.",
        );
    }
    state
        .carts
        .get_mut(&token)
        .unwrap()
        .items
        .push((id, quantity as u32));
    let body = cart_body(&state, &state.carts[&token]);
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
    let country = body["shipping_address"]["country"]
        .as_str()
        .map(String::from);
    state.carts.get_mut(&token).unwrap().shipping_country = country;
    let body = cart_body(&state, &state.carts[&token]);
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
    let email = body["billing_address"]["email"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if email.is_empty()
        || body["shipping_address"]["address_1"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    {
        return error(
            StatusCode::BAD_REQUEST,
            headers,
            "rest_invalid_param",
            "Invalid parameter(s): billing_address",
        );
    }
    let method = body["payment_method"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if method != "cod" {
        return error(
            StatusCode::BAD_REQUEST,
            headers,
            "woocommerce_rest_checkout_payment_method_unavailable",
            "This payment method is not available.",
        );
    }
    let id = 146 + state.orders.len() as u64;
    let key = format!("wc_order_{id}standin");
    let mut response = fixture("checkout.json");
    response["order_id"] = json!(id);
    response["order_key"] = json!(key);
    response["status"] = json!(state.checkout_status);
    response["billing_address"] = body["billing_address"].clone();
    response["shipping_address"] = body["shipping_address"].clone();
    if state.checkout_status == "failed" {
        response["payment_result"]["payment_status"] = json!("failure");
    }
    state.orders.push(Order {
        id,
        key,
        email,
        payment_method: method,
        items,
    });
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
    if query.get("billing_email") != Some(&order.email) {
        return error(
            StatusCode::UNAUTHORIZED,
            headers,
            "woocommerce_rest_invalid_billing_email",
            "Invalid billing email provided.",
        );
    }
    let mut body = fixture("order.json");
    body["id"] = json!(order.id);
    body["status"] = json!(state.checkout_status);
    body["items"] = json!(
        order
            .items
            .iter()
            .map(|(pid, quantity)| {
                let mut item = fixture("cart-item.json");
                item["id"] = json!(pid);
                item["quantity"] = json!(quantity);
                item
            })
            .collect::<Vec<_>>()
    );
    (StatusCode::OK, headers, axum::Json(body))
}

/// Starts the stand-in on a free port; answers its base URL and its state.
async fn start_stand_in(products: Value, checkout_status: &'static str) -> (StoreUrl, Shared) {
    let state: Shared = Arc::new(Mutex::new(StandIn {
        products,
        carts: HashMap::new(),
        orders: Vec::new(),
        checkout_status,
        refused_product: None,
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

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client")
}

#[tokio::test]
async fn places_a_cash_on_delivery_order_and_reads_it_back() {
    let (store, state) = start_stand_in(fixture("products.json"), "processing").await;
    let options = OrderOptions {
        email: "buyer+e2e@example.com".into(),
        ..OrderOptions::default()
    };
    let placed = place_cod_order(&http(), &store, &options)
        .await
        .expect("order placed");

    // The first product is not purchasable; the flow must have picked the Beanie (id 15).
    assert_eq!(placed.product_id, 15);
    assert_eq!(placed.status, "processing");
    let state = state.lock().unwrap();
    assert_eq!(state.orders.len(), 1, "exactly one order placed");
    let order = &state.orders[0];
    assert_eq!(order.id, placed.order_id);
    assert_eq!(order.payment_method, "cod");
    assert_eq!(order.email, "buyer+e2e@example.com");
    assert_eq!(order.items, vec![(15, 1)]);
}

#[tokio::test]
async fn buys_the_requested_sku() {
    let mut products = fixture("products.json");
    let mut second = products[1].clone();
    second["id"] = json!(16);
    second["sku"] = json!("storefleet-tshirt");
    products.as_array_mut().unwrap().push(second);
    let (store, _) = start_stand_in(products, "processing").await;
    let options = OrderOptions {
        sku: Some("storefleet-tshirt".into()),
        ..OrderOptions::default()
    };
    let placed = place_cod_order(&http(), &store, &options)
        .await
        .expect("order placed");
    assert_eq!(placed.product_id, 16);
}

#[tokio::test]
async fn the_stand_in_enforces_the_nonce_like_the_store_api() {
    // Guards the test itself: without tokens a cart POST fails, so the flow's success above
    // means it sent them.
    let (store, _) = start_stand_in(fixture("products.json"), "processing").await;
    let response = http()
        .post(store.endpoint("cart/add-item"))
        .json(&json!({ "id": 15, "quantity": 1 }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "woocommerce_rest_missing_nonce");
}

#[tokio::test]
async fn a_failed_checkout_is_reported_at_the_checkout_step() {
    let (store, _) = start_stand_in(fixture("products.json"), "failed").await;
    let err = place_cod_order(&http(), &store, &OrderOptions::default())
        .await
        .expect_err("must fail");
    assert!(
        matches!(
            err,
            Error::Unexpected {
                step: "checkout",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_store_without_buyable_products_is_reported_clearly() {
    let mut products = fixture("products.json");
    products[1]["is_in_stock"] = json!(false);
    let (store, _) = start_stand_in(products, "processing").await;
    let err = place_cod_order(&http(), &store, &OrderOptions::default())
        .await
        .expect_err("must fail");
    assert!(
        matches!(
            err,
            Error::Unexpected {
                step: "list products",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("in stock"), "{err}");
}

#[tokio::test]
async fn store_api_errors_name_the_step_code_and_message() {
    let (store, state) = start_stand_in(fixture("products.json"), "processing").await;
    // Listed as purchasable, refused by the cart (as a real store does for e.g. a product
    // that went out of stock in between).
    state.lock().unwrap().refused_product = Some(15);
    let err = place_cod_order(&http(), &store, &OrderOptions::default())
        .await
        .expect_err("must fail");
    match &err {
        Error::Api {
            step: "add to cart",
            status: 400,
            code,
            message,
        } => {
            assert_eq!(code, "woocommerce_rest_cart_invalid_product");
            assert_eq!(message, "This product cannot be added to the cart.");
        }
        other => panic!("unexpected error: {other}"),
    }
}

//! The whole e2e-order flow against a stand-in of the WooCommerce Store API (`stand_in`) that
//! answers with the shapes of WooCommerce's schema classes, not the examples in the Store API
//! docs: in particular an order line's `id` is the order item's id (from 1000), never the
//! product's. It shows that e2e-order speaks the protocol the schema classes define, nothing
//! more; the real check needs a running store: `scripts/e2e-order <store-url>`.

mod stand_in;

use e2e_order::{Error, OrderOptions, place_cod_order};
use serde_json::{Value, json};
use stand_in::schema::StandInProduct;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client")
}

#[tokio::test]
async fn places_a_cash_on_delivery_order_and_reads_it_back() {
    let (store, state) = stand_in::start(stand_in::products(), "processing").await;
    let options = OrderOptions {
        email: "buyer+e2e@example.com".parse().unwrap(),
        ..OrderOptions::default()
    };
    let placed = place_cod_order(&http(), &store, &options)
        .await
        .expect("order placed");

    // The first product is not purchasable; the flow must have picked the Beanie (id 15).
    assert_eq!(placed.product.id, 15);
    assert_eq!(placed.status, "processing");
    let state = state.lock().unwrap();
    assert_eq!(state.orders.len(), 1, "exactly one order placed");
    let order = &state.orders[0];
    assert_eq!(order.id, placed.order_id);
    assert_eq!(order.payment_method, "cod");
    assert_eq!(order.billing_address["email"], "buyer+e2e@example.com");
    assert_eq!(order.lines.len(), 1);
    assert_eq!(
        (order.lines[0].product_id, order.lines[0].quantity),
        (15, 1)
    );
    assert_ne!(
        order.lines[0].item_id, 15,
        "the stand-in must not give the line the product's id"
    );
}

#[tokio::test]
async fn the_order_reaches_the_store_marked_as_a_storefleet_test_order() {
    let (store, state) = stand_in::start(stand_in::products(), "processing").await;
    place_cod_order(&http(), &store, &OrderOptions::default())
        .await
        .expect("order placed");
    let state = state.lock().unwrap();
    let order = &state.orders[0];
    // What the store stored from the requests e2e-order sent.
    for address in [&order.billing_address, &order.shipping_address] {
        assert_eq!(address["first_name"], "Storefleet");
        assert_eq!(address["last_name"], "Test order");
    }
    assert!(
        order.customer_note.starts_with("Storefleet test order"),
        "{}",
        order.customer_note
    );
}

#[tokio::test]
async fn buys_the_requested_sku() {
    let mut products = stand_in::products();
    products.push(StandInProduct::new(
        16,
        "T-Shirt",
        "storefleet-tshirt",
        2000,
    ));
    let (store, state) = stand_in::start(products, "processing").await;
    let options = OrderOptions {
        sku: Some("storefleet-tshirt".parse().unwrap()),
        ..OrderOptions::default()
    };
    let placed = place_cod_order(&http(), &store, &options)
        .await
        .expect("order placed");
    assert_eq!(placed.product.id, 16);
    assert_eq!(state.lock().unwrap().orders[0].lines[0].product_id, 16);
}

#[tokio::test]
async fn an_order_holding_another_product_fails_the_read_back() {
    let mut products = stand_in::products();
    products.push(StandInProduct::new(
        16,
        "T-Shirt",
        "storefleet-tshirt",
        2000,
    ));
    let (store, state) = stand_in::start(products, "processing").await;
    state.lock().unwrap().faults.order_holds = Some(16);
    let err = place_cod_order(&http(), &store, &OrderOptions::default())
        .await
        .expect_err("must fail");
    assert!(
        matches!(
            err,
            Error::Unexpected {
                step: "read order back",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("does not hold product 15"),
        "{err}"
    );
}

#[tokio::test]
async fn a_store_that_drops_the_note_fails_at_checkout() {
    let (store, state) = stand_in::start(stand_in::products(), "processing").await;
    state.lock().unwrap().faults.drop_customer_note = true;
    let err = place_cod_order(&http(), &store, &OrderOptions::default())
        .await
        .expect_err("must fail");
    assert!(err.to_string().contains("test-order note"), "{err}");
}

#[tokio::test]
async fn the_stand_in_answers_order_lines_as_order_item_schema_does() {
    // Guards the test itself: the read-back must see item ids that are not product ids, the
    // order key as each line's `key`, and the product only through sku and permalink.
    let (store, _) = stand_in::start(stand_in::products(), "processing").await;
    let email = "shape@example.com";
    let options = OrderOptions {
        email: email.parse().unwrap(),
        ..OrderOptions::default()
    };
    let placed = place_cod_order(&http(), &store, &options)
        .await
        .expect("order placed");
    let mut url = store.endpoint(&format!("order/{}", placed.order_id));
    url.query_pairs_mut()
        .append_pair("key", &placed.order_key)
        .append_pair("billing_email", email);
    let body: Value = http()
        .get(url)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let line = &body["items"][0];
    assert!(line["id"].as_u64().unwrap() >= 1000, "{line}");
    assert_eq!(line["key"], json!(placed.order_key));
    assert_eq!(line["sku"], "woo-beanie");
    assert_eq!(line["permalink"], "http://store.example/product/beanie/");
    assert!(line.get("product_id").is_none(), "{line}");
}

#[tokio::test]
async fn the_stand_in_enforces_the_nonce_like_the_store_api() {
    // Guards the test itself: without tokens a cart POST fails, so the flow's success above
    // means it sent them.
    let (store, _) = stand_in::start(stand_in::products(), "processing").await;
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
    let (store, _) = stand_in::start(stand_in::products(), "failed").await;
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
    let mut products = stand_in::products();
    products[1].is_in_stock = false;
    let (store, _) = stand_in::start(products, "processing").await;
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
    let (store, state) = stand_in::start(stand_in::products(), "processing").await;
    // Listed as purchasable, refused by the cart (as a real store does for e.g. a product
    // that went out of stock in between).
    state.lock().unwrap().faults.refused_product = Some(15);
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

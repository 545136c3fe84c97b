//! Store API response shapes (only the fields the order check reads) and the checks on them.
//! Each shape is what a schema class of WooCommerce's Store API answers from its
//! `get_item_response` (woocommerce/woocommerce, plugins/woocommerce/src/StoreApi/Schemas/V1/;
//! docs/e2e-order.md lists every field read and the PHP expression behind it). Unknown fields
//! are ignored, so newer WooCommerce releases that add fields still parse.

use serde::Deserialize;

use crate::input::Sku;
use crate::{Error, Result, mark};

/// Order statuses a Cash on Delivery checkout may end in: WooCommerce sets `processing`
/// (or `on-hold` for downloadable goods); `pending` is accepted as "created, not yet processed".
/// Both the checkout and the order answer `$order->get_status()`, without the `wc-` prefix.
pub const ACCEPTED_STATUSES: [&str; 3] = ["pending", "processing", "on-hold"];

/// A product of `GET /products` (`ProductSchema`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Product {
    /// `$product->get_id()`: what `cart/add-item` takes and what a cart line answers as `id`.
    pub id: u64,
    pub name: String,
    /// `$product->get_sku()`; `""` for a product without one.
    #[serde(default)]
    pub sku: String,
    /// `$product->get_permalink()`: with `sku`, what names the product on an order line.
    #[serde(default)]
    pub permalink: String,
    #[serde(default)]
    pub is_purchasable: bool,
    #[serde(default)]
    pub is_in_stock: bool,
    #[serde(default)]
    pub has_options: bool,
}

/// A cart (`CartSchema`).
#[derive(Debug, Clone, Deserialize)]
pub struct Cart {
    #[serde(default)]
    pub items: Vec<CartItem>,
    #[serde(default)]
    pub needs_shipping: bool,
    /// Shipping packages (`CartShippingRateSchema`), each with its rates.
    #[serde(default)]
    pub shipping_rates: Vec<ShippingPackage>,
    #[serde(default)]
    pub payment_methods: Vec<String>,
}

/// A cart line (`CartItemSchema`). Unlike an order line, its `id` is the product's:
/// `'id' => $product->get_id()`.
#[derive(Debug, Clone, Deserialize)]
pub struct CartItem {
    pub id: u64,
    pub quantity: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShippingPackage {
    #[serde(default)]
    pub shipping_rates: Vec<ShippingRate>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShippingRate {
    pub rate_id: String,
    #[serde(default)]
    pub selected: bool,
}

/// The answer of `POST /checkout` (`CheckoutSchema::get_checkout_response`).
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutResponse {
    pub order_id: u64,
    pub status: String,
    pub order_key: String,
    /// `$order->get_customer_note()`: the note as the order stored it.
    #[serde(default)]
    pub customer_note: String,
    #[serde(default)]
    pub payment_method: String,
    #[serde(default)]
    pub payment_result: Option<PaymentResult>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentResult {
    #[serde(default)]
    pub payment_status: String,
}

/// The answer of `GET /order/{id}` (`OrderSchema`).
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: u64,
    pub status: String,
    #[serde(default)]
    pub items: Vec<OrderLine>,
    pub billing_address: BillingName,
}

/// A line of an order (`OrderItemSchema::get_item_response`). No field of it carries the
/// product id: `id` is the order item's own id (`$order_item->get_id()`, a row of the order
/// items table, numbered with every other order's lines). The product shows only through
/// `sku` and `permalink`, read from `$order_item->get_product()` with the same calls
/// `ProductSchema` answers for the listing, and `name`, a copy of the product title taken when
/// the order was placed (`$order_item->get_name()`, not unique).
#[derive(Debug, Clone, Deserialize)]
pub struct OrderLine {
    /// The order item's id; only for error messages.
    pub id: u64,
    pub quantity: u32,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sku: String,
    #[serde(default)]
    pub permalink: String,
}

/// The name on an order's billing address (`BillingAddressSchema`, from the order).
#[derive(Debug, Clone, Deserialize)]
pub struct BillingName {
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
}

/// Error body of the Store API (`{"code": ..., "message": ..., "data": {"status": ...}}`).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

/// What the order check proves: this order exists, paid by Cash on Delivery, holding this
/// product, marked as a test order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOrder {
    pub order_id: u64,
    pub order_key: String,
    pub status: String,
    pub product: Product,
}

fn unexpected(step: &'static str, reason: impl Into<String>) -> Error {
    Error::Unexpected {
        step,
        reason: reason.into(),
    }
}

/// The product to buy: the one with `sku` if given, else the first that can be bought now.
pub fn choose_product<'a>(products: &'a [Product], sku: Option<&Sku>) -> Result<&'a Product> {
    let step = "list products";
    let buyable = |p: &&Product| p.is_purchasable && p.is_in_stock && !p.has_options;
    match sku {
        Some(sku) => {
            let product = products
                .iter()
                .find(|p| p.sku == sku.as_str())
                .ok_or_else(|| unexpected(step, format!("no product with SKU {sku:?}")))?;
            if buyable(&product) {
                Ok(product)
            } else {
                Err(unexpected(
                    step,
                    format!("product {sku:?} is not purchasable and in stock as a simple product"),
                ))
            }
        }
        None => products.iter().find(buyable).ok_or_else(|| {
            unexpected(
                step,
                format!(
                    "none of {} products is a purchasable simple product in stock",
                    products.len()
                ),
            )
        }),
    }
}

/// After add-to-cart: the product is in the cart.
pub fn check_added(cart: &Cart, product_id: u64) -> Result<()> {
    if cart
        .items
        .iter()
        .any(|i| i.id == product_id && i.quantity >= 1)
    {
        Ok(())
    } else {
        Err(unexpected(
            "add to cart",
            format!("product {product_id} is not in the returned cart"),
        ))
    }
}

/// After the addresses are set: Cash on Delivery is offered and, for physical goods, a
/// shipping rate is chosen (without one the checkout would refuse the order).
pub fn check_ready_for_checkout(cart: &Cart) -> Result<()> {
    let step = "set addresses";
    if !cart.payment_methods.is_empty() && !cart.payment_methods.iter().any(|m| m == "cod") {
        return Err(unexpected(
            step,
            format!(
                "Cash on Delivery is not offered (payment methods: {:?})",
                cart.payment_methods
            ),
        ));
    }
    if cart.needs_shipping {
        let chosen = cart
            .shipping_rates
            .iter()
            .all(|p| p.shipping_rates.iter().any(|r| r.selected));
        if cart.shipping_rates.is_empty() || !chosen {
            return Err(unexpected(
                step,
                "the cart needs shipping but no shipping rate is available for the address",
            ));
        }
    }
    Ok(())
}

/// After checkout: an order was created, paid by Cash on Delivery, in an accepted status, and
/// it kept the test-order note.
pub fn check_checkout(response: &CheckoutResponse, product: &Product) -> Result<PlacedOrder> {
    let step = "checkout";
    if response.order_id == 0 {
        return Err(unexpected(step, "no order id"));
    }
    if response.order_key.is_empty() {
        return Err(unexpected(step, "no order key"));
    }
    if response.payment_method != "cod" {
        return Err(unexpected(
            step,
            format!(
                "payment method is {:?}, not \"cod\"",
                response.payment_method
            ),
        ));
    }
    if !ACCEPTED_STATUSES.contains(&response.status.as_str()) {
        return Err(unexpected(
            step,
            format!("order status is {:?}", response.status),
        ));
    }
    if let Some(result) = &response.payment_result
        && result.payment_status != "success"
    {
        return Err(unexpected(
            step,
            format!("payment status is {:?}", result.payment_status),
        ));
    }
    if response.customer_note != mark::CUSTOMER_NOTE {
        return Err(unexpected(
            step,
            format!(
                "order {} did not keep the test-order note (customer_note is {:?})",
                response.order_id, response.customer_note
            ),
        ));
    }
    Ok(PlacedOrder {
        order_id: response.order_id,
        order_key: response.order_key.clone(),
        status: response.status.clone(),
        product: product.clone(),
    })
}

/// Reading the order back: it is the same order, it exists, holds one of the product, and
/// carries the test-order name. The product is recognised by `permalink` and `sku` together,
/// since an order line has no product id (see [`OrderLine`]).
pub fn check_order(order: &Order, placed: &PlacedOrder) -> Result<()> {
    let step = "read order back";
    if order.id != placed.order_id {
        return Err(unexpected(
            step,
            format!("asked for order {}, got {}", placed.order_id, order.id),
        ));
    }
    if !ACCEPTED_STATUSES.contains(&order.status.as_str()) {
        return Err(unexpected(
            step,
            format!("order status is {:?}", order.status),
        ));
    }
    let product = &placed.product;
    // An empty permalink is what OrderItemSchema answers when the line's product is gone;
    // two gone products would look alike, so it identifies nothing.
    if product.permalink.is_empty() {
        return Err(unexpected(
            step,
            format!(
                "product {} was listed without a permalink, so its order line cannot be recognised",
                product.id
            ),
        ));
    }
    let holds = |line: &&OrderLine| line.permalink == product.permalink && line.sku == product.sku;
    match order.items.iter().find(holds) {
        Some(line) if line.quantity == 1 => {}
        Some(line) => {
            return Err(unexpected(
                step,
                format!(
                    "order line {} holds {} of product {}, not 1",
                    line.id, line.quantity, product.id
                ),
            ));
        }
        None => {
            let lines: Vec<String> = order
                .items
                .iter()
                .map(|l| format!("{} ({:?}, SKU {:?}, {})", l.id, l.name, l.sku, l.permalink))
                .collect();
            return Err(unexpected(
                step,
                format!(
                    "order does not hold product {} ({:?}, SKU {:?}, {}); its lines: [{}]",
                    product.id,
                    product.name,
                    product.sku,
                    product.permalink,
                    lines.join(", ")
                ),
            ));
        }
    }
    let name = &order.billing_address;
    if name.first_name != mark::FIRST_NAME || name.last_name != mark::LAST_NAME {
        return Err(unexpected(
            step,
            format!(
                "order {} is not marked as a test order (billing name {:?} {:?})",
                order.id, name.first_name, name.last_name
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn product(id: u64, sku: &str, purchasable: bool, in_stock: bool) -> Product {
        serde_json::from_value(json!({
            "id": id, "name": sku, "sku": sku,
            "permalink": format!("https://shop.example/product/{sku}/"),
            "is_purchasable": purchasable, "is_in_stock": in_stock, "has_options": false,
            "prices": { "price": "1999" }
        }))
        .unwrap()
    }

    fn sku(text: &str) -> Sku {
        text.parse().unwrap()
    }

    fn checkout(status: &str, method: &str, payment_status: &str) -> CheckoutResponse {
        serde_json::from_value(json!({
            "order_id": 146, "status": status, "order_key": "wc_order_VPffqyvgWVqWL",
            "order_number": "146", "customer_note": mark::CUSTOMER_NOTE,
            "customer_id": 0, "payment_method": method,
            "payment_result": { "payment_status": payment_status, "payment_details": [], "redirect_url": "" }
        }))
        .unwrap()
    }

    #[test]
    fn chooses_a_buyable_product_or_the_requested_sku() {
        let products = [
            product(1, "gone", true, false),
            product(2, "tee", true, true),
            product(3, "mug", true, true),
        ];
        assert_eq!(choose_product(&products, None).unwrap().id, 2);
        assert_eq!(choose_product(&products, Some(&sku("mug"))).unwrap().id, 3);
        assert!(
            choose_product(&products, Some(&sku("gone"))).is_err(),
            "out of stock chosen"
        );
        assert!(
            choose_product(&products, Some(&sku("hat"))).is_err(),
            "missing SKU chosen"
        );
        assert!(choose_product(&[], None).is_err());
    }

    #[test]
    fn cart_checks_find_the_item_cod_and_a_shipping_rate() {
        let cart: Cart = serde_json::from_value(json!({
            "items": [{ "key": "a57", "id": 38, "quantity": 1 }],
            "needs_shipping": true,
            "shipping_rates": [{ "package_id": 0, "shipping_rates": [
                { "rate_id": "free_shipping:1", "selected": true }
            ]}],
            "payment_methods": ["bacs", "cod"]
        }))
        .unwrap();
        assert!(check_added(&cart, 38).is_ok());
        assert!(check_added(&cart, 39).is_err());
        assert!(check_ready_for_checkout(&cart).is_ok());

        let mut no_rate = cart.clone();
        no_rate.shipping_rates.clear();
        assert!(
            check_ready_for_checkout(&no_rate).is_err(),
            "physical goods without a rate"
        );
        let mut no_cod = cart.clone();
        no_cod.payment_methods = vec!["bacs".into()];
        assert!(
            check_ready_for_checkout(&no_cod).is_err(),
            "COD not offered"
        );
    }

    #[test]
    fn checkout_check_accepts_only_marked_cod_orders_in_a_live_status() {
        let beanie = product(15, "woo-beanie", true, true);
        for status in ACCEPTED_STATUSES {
            let placed = check_checkout(&checkout(status, "cod", "success"), &beanie).unwrap();
            assert_eq!(placed.order_id, 146);
            assert_eq!(placed.order_key, "wc_order_VPffqyvgWVqWL");
        }
        assert!(check_checkout(&checkout("failed", "cod", "failure"), &beanie).is_err());
        assert!(check_checkout(&checkout("checkout-draft", "cod", ""), &beanie).is_err());
        assert!(check_checkout(&checkout("processing", "bacs", "success"), &beanie).is_err());
        assert!(check_checkout(&checkout("processing", "cod", "failure"), &beanie).is_err());
        let mut unmarked = checkout("processing", "cod", "success");
        unmarked.customer_note = String::new();
        let err = check_checkout(&unmarked, &beanie).expect_err("note dropped");
        assert!(err.to_string().contains("test-order note"), "{err}");
        let missing: Result<CheckoutResponse, _> =
            serde_json::from_value(json!({ "status": "processing" }));
        assert!(
            missing.is_err(),
            "a checkout response without order_id must not parse"
        );
    }

    /// An order line as OrderItemSchema answers it: `id` is the order item's id.
    fn line(item_id: u64, of: &Product, quantity: u32) -> Value {
        json!({
            "key": "wc_order_VPffqyvgWVqWL", "id": item_id, "quantity": quantity,
            "name": of.name, "sku": of.sku, "permalink": of.permalink,
            "prices": { "price": "1999" }, "totals": { "line_total": "1999" }
        })
    }

    fn order(id: u64, status: &str, lines: Vec<Value>, name: (&str, &str)) -> Order {
        serde_json::from_value(json!({
            "id": id, "status": status, "items": lines,
            "billing_address": { "first_name": name.0, "last_name": name.1, "email": "b@example.com" }
        }))
        .unwrap()
    }

    #[test]
    fn order_check_finds_the_product_by_permalink_and_sku_not_by_line_id() {
        let beanie = product(15, "woo-beanie", true, true);
        let cap = product(16, "woo-cap", true, true);
        let placed = PlacedOrder {
            order_id: 147,
            order_key: "k".into(),
            status: "processing".into(),
            product: beanie.clone(),
        };
        let marked = (mark::FIRST_NAME, mark::LAST_NAME);
        let ok = |o: Order| check_order(&o, &placed);

        assert!(
            ok(order(
                147,
                "processing",
                vec![line(1003, &beanie, 1)],
                marked
            ))
            .is_ok()
        );
        assert!(
            ok(order(
                147,
                "processing",
                vec![line(1003, &cap, 1), line(1004, &beanie, 1)],
                marked
            ))
            .is_ok(),
            "the product on the second line"
        );
        // The old mistake: a line whose item id happens to equal the product id, of another
        // product, must not count.
        let err = ok(order(147, "processing", vec![line(15, &cap, 1)], marked)).unwrap_err();
        assert!(
            err.to_string().contains("does not hold product 15"),
            "{err}"
        );

        let mut same_sku = cap.clone();
        same_sku.sku = beanie.sku.clone();
        assert!(
            ok(order(
                147,
                "processing",
                vec![line(1003, &same_sku, 1)],
                marked
            ))
            .is_err()
        );
        let mut same_link = cap.clone();
        same_link.permalink = beanie.permalink.clone();
        assert!(
            ok(order(
                147,
                "processing",
                vec![line(1003, &same_link, 1)],
                marked
            ))
            .is_err()
        );

        assert!(
            ok(order(
                147,
                "processing",
                vec![line(1003, &beanie, 2)],
                marked
            ))
            .is_err()
        );
        assert!(ok(order(147, "processing", vec![], marked)).is_err());
        assert!(
            ok(order(
                148,
                "processing",
                vec![line(1003, &beanie, 1)],
                marked
            ))
            .is_err()
        );
        assert!(
            ok(order(
                147,
                "cancelled",
                vec![line(1003, &beanie, 1)],
                marked
            ))
            .is_err()
        );
        let err = ok(order(
            147,
            "processing",
            vec![line(1003, &beanie, 1)],
            ("Jane", "Doe"),
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("not marked as a test order"),
            "{err}"
        );

        // A product gone from the store answers "" as its line's permalink; an unlisted
        // permalink must not match it.
        let mut no_link = placed.clone();
        no_link.product.permalink = String::new();
        let mut gone = beanie.clone();
        gone.permalink = String::new();
        let err = check_order(
            &order(147, "processing", vec![line(1003, &gone, 1)], marked),
            &no_link,
        )
        .unwrap_err();
        assert!(err.to_string().contains("without a permalink"), "{err}");
    }
}

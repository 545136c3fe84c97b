//! Store API response shapes (only the fields the order check reads) and the checks on them.
//! Shapes follow the Store API reference; unknown fields are ignored, so newer WooCommerce
//! releases that add fields still parse.

use serde::Deserialize;

use crate::{Error, Result};

/// Order statuses a Cash on Delivery checkout may end in: WooCommerce sets `processing`
/// (or `on-hold` for downloadable goods); `pending` is accepted as "created, not yet processed".
pub const ACCEPTED_STATUSES: [&str; 3] = ["pending", "processing", "on-hold"];

#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub sku: String,
    #[serde(default)]
    pub is_purchasable: bool,
    #[serde(default)]
    pub is_in_stock: bool,
    #[serde(default)]
    pub has_options: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Cart {
    #[serde(default)]
    pub items: Vec<CartItem>,
    #[serde(default)]
    pub needs_shipping: bool,
    #[serde(default)]
    pub shipping_rates: Vec<ShippingPackage>,
    #[serde(default)]
    pub payment_methods: Vec<String>,
}

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

#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutResponse {
    pub order_id: u64,
    pub status: String,
    pub order_key: String,
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

#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: u64,
    pub status: String,
    #[serde(default)]
    pub items: Vec<CartItem>,
}

/// Error body of the Store API (`{"code": ..., "message": ..., "data": {"status": ...}}`).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

/// What the order check proves: this order exists, paid by Cash on Delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOrder {
    pub order_id: u64,
    pub order_key: String,
    pub status: String,
    pub product_id: u64,
}

fn unexpected(step: &'static str, reason: impl Into<String>) -> Error {
    Error::Unexpected {
        step,
        reason: reason.into(),
    }
}

/// The product to buy: the one with `sku` if given, else the first that can be bought now.
pub fn choose_product<'a>(products: &'a [Product], sku: Option<&str>) -> Result<&'a Product> {
    let step = "list products";
    let buyable = |p: &&Product| p.is_purchasable && p.is_in_stock && !p.has_options;
    match sku {
        Some(sku) => {
            let product = products
                .iter()
                .find(|p| p.sku == sku)
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

/// After checkout: an order was created, paid by Cash on Delivery, in an accepted status.
pub fn check_checkout(response: &CheckoutResponse, product_id: u64) -> Result<PlacedOrder> {
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
    Ok(PlacedOrder {
        order_id: response.order_id,
        order_key: response.order_key.clone(),
        status: response.status.clone(),
        product_id,
    })
}

/// Reading the order back: it is the same order, it exists, and holds the product.
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
    if !order.items.iter().any(|i| i.id == placed.product_id) {
        return Err(unexpected(
            step,
            format!("order does not hold product {}", placed.product_id),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn product(id: u64, sku: &str, purchasable: bool, in_stock: bool) -> Product {
        serde_json::from_value(json!({
            "id": id, "name": sku, "sku": sku, "is_purchasable": purchasable,
            "is_in_stock": in_stock, "has_options": false, "prices": { "price": "1999" }
        }))
        .unwrap()
    }

    fn checkout(status: &str, method: &str, payment_status: &str) -> CheckoutResponse {
        serde_json::from_value(json!({
            "order_id": 146, "status": status, "order_key": "wc_order_VPffqyvgWVqWL",
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
        assert_eq!(choose_product(&products, Some("mug")).unwrap().id, 3);
        assert!(
            choose_product(&products, Some("gone")).is_err(),
            "out of stock chosen"
        );
        assert!(
            choose_product(&products, Some("hat")).is_err(),
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
    fn checkout_check_accepts_only_cod_orders_in_a_live_status() {
        for status in ACCEPTED_STATUSES {
            let placed = check_checkout(&checkout(status, "cod", "success"), 38).unwrap();
            assert_eq!(placed.order_id, 146);
            assert_eq!(placed.order_key, "wc_order_VPffqyvgWVqWL");
        }
        assert!(check_checkout(&checkout("failed", "cod", "failure"), 38).is_err());
        assert!(check_checkout(&checkout("checkout-draft", "cod", ""), 38).is_err());
        assert!(check_checkout(&checkout("processing", "bacs", "success"), 38).is_err());
        assert!(check_checkout(&checkout("processing", "cod", "failure"), 38).is_err());
        let missing: Result<CheckoutResponse, _> =
            serde_json::from_value(json!({ "status": "processing" }));
        assert!(
            missing.is_err(),
            "a checkout response without order_id must not parse"
        );
    }

    #[test]
    fn order_check_matches_id_status_and_items() {
        let placed = PlacedOrder {
            order_id: 147,
            order_key: "k".into(),
            status: "processing".into(),
            product_id: 15,
        };
        let order = |id: u64, status: &str, item: u64| -> Order {
            serde_json::from_value(
                json!({ "id": id, "status": status, "items": [{ "id": item, "quantity": 1 }] }),
            )
            .unwrap()
        };
        assert!(check_order(&order(147, "processing", 15), &placed).is_ok());
        assert!(check_order(&order(148, "processing", 15), &placed).is_err());
        assert!(check_order(&order(147, "cancelled", 15), &placed).is_err());
        assert!(check_order(&order(147, "processing", 16), &placed).is_err());
    }
}

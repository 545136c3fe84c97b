//! The Store API's response shapes, built the way WooCommerce's schema classes build them:
//! every key of each `get_item_response`, in its order, with values of the right type. Each
//! function names the class it copies (woocommerce/woocommerce, under
//! `plugins/woocommerce/src/StoreApi/Schemas/V1/`, at the commit given) and, for every value
//! the stand-in computes, the PHP expression it stands for. Values that do not matter to the
//! order (descriptions, images, totals) are plausible constants of the right type.
//!
//! The point of following the classes and not the examples in the Store API docs: an order
//! line's `id` is the order item's id, which the docs' examples never make visible.

use serde_json::{Value, json};

/// A product of the stand-in store.
#[derive(Debug, Clone)]
pub struct StandInProduct {
    pub id: u64,
    pub name: String,
    pub slug: String,
    pub sku: String,
    pub is_purchasable: bool,
    pub is_in_stock: bool,
    /// Price in minor units (cents).
    pub price: u64,
}

impl StandInProduct {
    pub fn new(id: u64, name: &str, sku: &str, price: u64) -> Self {
        StandInProduct {
            id,
            name: name.into(),
            slug: name.to_lowercase().replace(' ', "-"),
            sku: sku.into(),
            is_purchasable: true,
            is_in_stock: true,
            price,
        }
    }

    /// `$product->get_permalink()`: with pretty permalinks, `/product/<slug>/`.
    pub fn permalink(&self) -> String {
        format!("http://store.example/product/{}/", self.slug)
    }
}

/// A line of a stand-in order: the order item row WooCommerce creates at checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandInLine {
    /// `$order_item->get_id()`: a row id of the order items table, not a product id.
    pub item_id: u64,
    pub product_id: u64,
    pub quantity: u32,
}

/// An order of the stand-in store.
#[derive(Debug, Clone)]
pub struct StandInOrder {
    pub id: u64,
    pub key: String,
    pub status: String,
    pub payment_method: String,
    pub customer_note: String,
    pub billing_address: Value,
    pub shipping_address: Value,
    pub lines: Vec<StandInLine>,
}

/// `AbstractSchema::prepare_currency_response` adds the store currency
/// (`get_store_currency_properties`) to prices and totals.
fn with_currency(mut value: Value) -> Value {
    let currency = json!({
        "currency_code": "USD", "currency_symbol": "$", "currency_minor_unit": 2,
        "currency_decimal_separator": ".", "currency_thousand_separator": ",",
        "currency_prefix": "$", "currency_suffix": ""
    });
    for (k, v) in currency.as_object().unwrap() {
        value[k] = v.clone();
    }
    value
}

/// ProductSchema::prepare_product_price_response (ProductSchema.php @ 0106958a): `price`,
/// `regular_price`, `sale_price` as money strings in minor units, `price_range`.
fn product_prices(p: &StandInProduct) -> Value {
    let money = p.price.to_string();
    with_currency(json!({
        "price": money, "regular_price": money, "sale_price": money, "price_range": null
    }))
}

/// Prices of a cart or order line: ItemSchema.php @ 0106958a declares `prices` with
/// `raw_prices` besides the product prices.
fn item_prices(p: &StandInProduct) -> Value {
    let mut prices = product_prices(p);
    let raw = (p.price * 10_000).to_string();
    prices["raw_prices"] = json!({
        "precision": 6, "price": raw, "regular_price": raw, "sale_price": raw
    });
    prices
}

/// ProductSchema::get_item_response (ProductSchema.php @ 0106958aa50be754a22faf289e8a9b9ed1b4e421).
pub fn product(p: &StandInProduct) -> Value {
    json!({
        "id": p.id,                        // $product->get_id()
        "name": p.name,                    // $product->get_title()
        "slug": p.slug,                    // $product->get_slug()
        "parent": 0,                       // $product->get_parent_id()
        "type": "simple",                  // $product->get_type()
        "variation": "",
        "permalink": p.permalink(),        // $product->get_permalink()
        "sku": p.sku,                      // $product->get_sku()
        "short_description": "<p>A simple product.</p>",
        "description": "<p>A simple product.</p>",
        "on_sale": false,
        "prices": product_prices(p),
        "price_html": format!("<span class=\"amount\">${}.{:02}</span>", p.price / 100, p.price % 100),
        "average_rating": "0",
        "review_count": 0,
        "images": [],
        "categories": [],
        "tags": [],
        "brands": [],
        "attributes": [],
        "variations": [],
        "grouped_products": [],
        "has_options": false,              // $product->has_options()
        "is_purchasable": p.is_purchasable, // $product->is_purchasable()
        "is_in_stock": p.is_in_stock,      // $product->is_in_stock()
        "is_on_backorder": false,
        "low_stock_remaining": null,
        "stock_availability": { "text": "In stock", "class": "in-stock" },
        "sold_individually": false,
        "add_to_cart": {
            "text": "Add to cart", "description": format!("Add to cart: &ldquo;{}&rdquo;", p.name),
            "url": format!("?add-to-cart={}", p.id), "single_text": "Add to cart",
            "minimum": 1, "maximum": 9999, "multiple_of": 1
        },
        "extensions": {}
    })
}

/// CartItemSchema::get_item_response (CartItemSchema.php @ 20fdfb8b5878b3b7a6f0c1bbfa1ad964eaa5f070).
pub fn cart_item(p: &StandInProduct, quantity: u32) -> Value {
    let total = (p.price * u64::from(quantity)).to_string();
    json!({
        "key": format!("{:032x}", p.id),   // $cart_item['key'], an md5 in WooCommerce
        "id": p.id,                        // $product->get_id(): the product, in a cart
        "type": "simple",                  // $product->get_type()
        "quantity": quantity,              // wc_stock_amount( $cart_item['quantity'] )
        "quantity_limits": { "minimum": 1, "maximum": 9999, "multiple_of": 1, "editable": true },
        "name": p.name,                    // $product->get_title()
        "short_description": "<p>A simple product.</p>",
        "description": "<p>A simple product.</p>",
        "sku": p.sku,                      // $product->get_sku()
        "low_stock_remaining": null,
        "backorders_allowed": false,
        "show_backorder_badge": false,
        "sold_individually": false,
        "permalink": p.permalink(),        // $product->get_permalink() (filtered)
        "images": [],
        "variation": [],
        "item_data": [],
        "prices": item_prices(p),
        "totals": with_currency(json!({
            "line_subtotal": total, "line_subtotal_tax": "0", "line_total": total, "line_total_tax": "0"
        })),
        "catalog_visibility": "visible",
        "has_cart_item_data": false,
        "extensions": {}
    })
}

/// CartShippingRateSchema::get_item_response and get_rate_response
/// (CartShippingRateSchema.php @ 0106958aa50be754a22faf289e8a9b9ed1b4e421): one package with
/// the free shipping rate, selected (`$selected_rate === $rate->get_id()`).
pub fn shipping_package(destination: &Value) -> Value {
    json!({
        "package_id": 0,
        "name": "Shipment 1",
        "destination": {
            "address_1": destination["address_1"], "address_2": destination["address_2"],
            "city": destination["city"], "state": destination["state"],
            "postcode": destination["postcode"], "country": destination["country"]
        },
        "items": [],
        "shipping_rates": [with_currency(json!({
            "rate_id": "free_shipping:1",
            "name": "Free shipping",
            "description": "",
            "delivery_time": "",
            "price": "0",
            "taxes": "0",
            "instance_id": 1,
            "method_id": "free_shipping",
            "meta_data": [],
            "selected": true
        }))]
    })
}

/// An address as AbstractAddressSchema / BillingAddressSchema answer it (an empty one for a
/// new guest); billing adds `email` (BillingAddressSchema.php @ 0f0ea3c3).
pub fn empty_address(billing: bool) -> Value {
    let mut address = json!({
        "first_name": "", "last_name": "", "company": "", "address_1": "", "address_2": "",
        "city": "", "state": "", "postcode": "", "country": "", "phone": ""
    });
    if billing {
        address["email"] = json!("");
    }
    address
}

/// CartSchema::get_item_response (CartSchema.php @ 01026e4d017edc365c19d48cedbc8549fb1245b1).
/// `shipping_rates` is empty until shipping is calculated
/// (`$cart->has_calculated_shipping() ? ... : []`).
pub fn cart(
    items: Vec<Value>,
    shipping_packages: Vec<Value>,
    billing: Value,
    shipping: Value,
) -> Value {
    let needs = !items.is_empty();
    let count: u64 = items.iter().map(|i| i["quantity"].as_u64().unwrap()).sum();
    let total: u64 = items
        .iter()
        .map(|i| {
            i["totals"]["line_total"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    let calculated = !shipping_packages.is_empty();
    json!({
        "items": items,
        "coupons": [],
        "fees": [],
        "totals": with_currency(json!({
            "total_items": total.to_string(), "total_items_tax": "0", "total_fees": "0",
            "total_fees_tax": "0", "total_discount": "0", "total_discount_tax": "0",
            "total_shipping": if calculated { json!("0") } else { json!(null) },
            "total_shipping_tax": if calculated { json!("0") } else { json!(null) },
            "total_price": total.to_string(), "total_tax": "0", "tax_lines": []
        })),
        "shipping_address": shipping,
        "billing_address": billing,
        "needs_payment": needs,            // $cart->needs_payment()
        "needs_shipping": needs,           // $cart->needs_shipping()
        "payment_requirements": ["products"],
        "has_calculated_shipping": calculated,
        "shipping_rates": shipping_packages,
        "items_count": count,              // $cart->get_cart_contents_count()
        "items_weight": 0,
        "cross_sells": [],
        "errors": [],
        // ids of WC()->payment_gateways->get_available_payment_gateways()
        "payment_methods": ["cod"],
        "extensions": {}
    })
}

/// CheckoutSchema::get_checkout_response (CheckoutSchema.php @ 0165d6565b385395b5e908cf99caccd41689002b).
pub fn checkout(order: &StandInOrder, payment_status: &str) -> Value {
    json!({
        "order_id": order.id,                     // $order->get_id()
        "status": order.status,                   // $order->get_status()
        "order_key": order.key,                   // $order->get_order_key()
        "order_number": order.id.to_string(),     // $order->get_order_number()
        "customer_note": order.customer_note,     // $order->get_customer_note()
        "customer_id": 0,                         // $order->get_customer_id(), 0 for guests
        "billing_address": order.billing_address,
        "shipping_address": order.shipping_address,
        "payment_method": order.payment_method,   // $order->get_payment_method()
        "payment_result": {
            "payment_status": payment_status,     // $payment_result->status
            "payment_details": [],
            "redirect_url": format!(
                "http://store.example/checkout/order-received/{}/?key={}", order.id, order.key
            )
        },
        "additional_fields": {},
        "__experimentalCart": null,
        "extensions": {}
    })
}

/// OrderItemSchema::get_item_response (OrderItemSchema.php @ 037ee46f9304ad2ccc44b743fcba8b151550be31).
/// `key` is the ORDER's key and `id` the ORDER ITEM's id; the product shows only through
/// `sku`, `permalink` (from `$order_item->get_product()`) and `name`.
pub fn order_item(order: &StandInOrder, line: &StandInLine, p: &StandInProduct) -> Value {
    let total = (p.price * u64::from(line.quantity)).to_string();
    json!({
        "key": order.key,                  // $order->get_order_key()
        "id": line.item_id,                // $order_item->get_id()
        "quantity": line.quantity,         // $order_item->get_quantity()
        "quantity_limits": {
            "minimum": line.quantity, "maximum": line.quantity, "multiple_of": 1, "editable": false
        },
        "name": p.name,                    // $order_item->get_name()
        "short_description": "<p>A simple product.</p>",
        "description": "<p>A simple product.</p>",
        "sku": p.sku,                      // $product->get_sku()
        "low_stock_remaining": null,
        "backorders_allowed": false,
        "show_backorder_badge": false,
        "sold_individually": false,
        "permalink": p.permalink(),        // $product->get_permalink()
        "images": [],
        "variation": [],
        "item_data": [],
        "prices": item_prices(p),
        "totals": with_currency(json!({
            "line_subtotal": total, "line_subtotal_tax": "0", "line_total": total, "line_total_tax": "0"
        })),
        "catalog_visibility": "visible"
    })
}

/// OrderSchema::get_item_response (OrderSchema.php @ 7bd2622ec15dbf9d852e75219b0025b5404ec0d9).
pub fn order(order: &StandInOrder, items: Vec<Value>) -> Value {
    let total: u64 = items
        .iter()
        .map(|i| {
            i["totals"]["line_total"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    json!({
        "id": order.id,                    // $order->get_id()
        "status": order.status,            // $order->get_status()
        "items": items,
        "coupons": [],
        "fees": [],
        "totals": with_currency(json!({
            "subtotal": total.to_string(), "total_discount": "0", "total_shipping": "0",
            "total_fees": "0", "total_tax": "0", "total_refund": "0",
            "total_price": total.to_string(), "total_items": total.to_string(),
            "total_items_tax": "0", "total_fees_tax": "0", "total_discount_tax": "0",
            "total_shipping_tax": "0", "tax_lines": []
        })),
        "shipping_address": order.shipping_address,
        "billing_address": order.billing_address, // BillingAddressSchema, from the order
        "needs_payment": false,
        "needs_shipping": true,
        "payment_requirements": ["products"],
        "errors": []
    })
}

/// An address as the order stores it and BillingAddressSchema / ShippingAddressSchema answer
/// it: only the schema's keys are kept (the Checkout route sets each with
/// `$order->{"set_billing_$key"}( $value )` over `array_intersect_key` with the schema).
pub fn stored_address(sent: &Value, billing: bool) -> Value {
    let mut address = empty_address(billing);
    for (key, value) in address.as_object_mut().unwrap() {
        if let Some(text) = sent[key.as_str()].as_str() {
            *value = json!(text);
        }
    }
    address
}

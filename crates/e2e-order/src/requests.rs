//! The Store API requests of one order, as plain data (method, URL, JSON body), so what is
//! sent can be checked without a store. Routes and fields follow the WooCommerce Store API
//! reference (plugins/woocommerce/src/StoreApi/docs in the WooCommerce repository).

use reqwest::{Method, Url};
use serde::Serialize;
use serde_json::{Value, json};

use crate::StoreUrl;

/// One request to the Store API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    /// What this step is, for error messages.
    pub step: &'static str,
    pub method: Method,
    pub url: Url,
    pub body: Option<Value>,
}

/// The buyer: billing and shipping address of the test order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Address {
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub address_1: String,
    pub address_2: String,
    pub city: String,
    pub state: String,
    pub postcode: String,
    pub country: String,
    pub phone: String,
}

impl Address {
    /// A plausible US address; the checkout validates country, state and postcode.
    pub fn test_buyer() -> Self {
        Address {
            first_name: "Storefleet".into(),
            last_name: "E2E".into(),
            company: String::new(),
            address_1: "1 Market Street".into(),
            address_2: String::new(),
            city: "San Francisco".into(),
            state: "CA".into(),
            postcode: "94105".into(),
            country: "US".into(),
            phone: "555-0100".into(),
        }
    }

    /// Billing address as the Store API wants it: the shipping fields plus `email`.
    fn billing(&self, email: &str) -> Value {
        let mut value = json!(self);
        value["email"] = json!(email);
        value
    }
}

/// Published, purchasable products; narrowed to one SKU when given.
pub fn list_products(store: &StoreUrl, sku: Option<&str>) -> ApiRequest {
    let mut url = store.endpoint("products");
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("per_page", "100");
        if let Some(sku) = sku {
            query.append_pair("sku", sku);
        }
    }
    ApiRequest {
        step: "list products",
        method: Method::GET,
        url,
        body: None,
    }
}

/// The (empty) guest cart; its response carries the `Cart-Token` and `Nonce` headers.
pub fn get_cart(store: &StoreUrl) -> ApiRequest {
    ApiRequest {
        step: "open cart",
        method: Method::GET,
        url: store.endpoint("cart"),
        body: None,
    }
}

pub fn add_item(store: &StoreUrl, product_id: u64, quantity: u32) -> ApiRequest {
    ApiRequest {
        step: "add to cart",
        method: Method::POST,
        url: store.endpoint("cart/add-item"),
        body: Some(json!({ "id": product_id, "quantity": quantity })),
    }
}

/// Sets the addresses first, as the block checkout does, so shipping rates are calculated.
pub fn update_customer(store: &StoreUrl, address: &Address, email: &str) -> ApiRequest {
    ApiRequest {
        step: "set addresses",
        method: Method::POST,
        url: store.endpoint("cart/update-customer"),
        body: Some(
            json!({ "billing_address": address.billing(email), "shipping_address": address }),
        ),
    }
}

/// Places the order, paid by Cash on Delivery (`cod`).
pub fn checkout(store: &StoreUrl, address: &Address, email: &str) -> ApiRequest {
    ApiRequest {
        step: "checkout",
        method: Method::POST,
        url: store.endpoint("checkout"),
        body: Some(json!({
            "billing_address": address.billing(email),
            "shipping_address": address,
            "customer_note": "Placed by Storefleet e2e-order",
            "payment_method": "cod",
            "payment_data": [],
        })),
    }
}

/// Reads a guest order back; guests prove access with the order key and billing e-mail.
pub fn get_order(store: &StoreUrl, order_id: u64, order_key: &str, email: &str) -> ApiRequest {
    let mut url = store.endpoint(&format!("order/{order_id}"));
    url.query_pairs_mut()
        .append_pair("key", order_key)
        .append_pair("billing_email", email);
    ApiRequest {
        step: "read order back",
        method: Method::GET,
        url,
        body: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> StoreUrl {
        StoreUrl::parse("http://store-7016ff.localhost").unwrap()
    }

    #[test]
    fn product_listing_filters_by_sku_when_asked() {
        let all = list_products(&store(), None);
        assert_eq!(all.method, Method::GET);
        assert_eq!(
            all.url.as_str(),
            "http://store-7016ff.localhost/wp-json/wc/store/v1/products?per_page=100"
        );
        let one = list_products(&store(), Some("tee & mug"));
        assert_eq!(one.url.query(), Some("per_page=100&sku=tee+%26+mug"));
    }

    #[test]
    fn add_item_posts_product_and_quantity() {
        let req = add_item(&store(), 42, 1);
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.url.path(), "/wp-json/wc/store/v1/cart/add-item");
        assert_eq!(req.body, Some(json!({ "id": 42, "quantity": 1 })));
    }

    #[test]
    fn checkout_pays_cash_on_delivery_with_full_addresses() {
        let req = checkout(&store(), &Address::test_buyer(), "buyer+e2e@example.com");
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.url.path(), "/wp-json/wc/store/v1/checkout");
        let body = req.body.unwrap();
        assert_eq!(body["payment_method"], "cod");
        assert_eq!(body["billing_address"]["email"], "buyer+e2e@example.com");
        assert!(
            body["shipping_address"].get("email").is_none(),
            "shipping addresses have no e-mail"
        );
        for field in [
            "first_name",
            "last_name",
            "address_1",
            "city",
            "state",
            "postcode",
            "country",
        ] {
            assert!(
                body["billing_address"][field]
                    .as_str()
                    .is_some_and(|v| !v.is_empty()),
                "billing {field}"
            );
            assert!(
                body["shipping_address"][field]
                    .as_str()
                    .is_some_and(|v| !v.is_empty()),
                "shipping {field}"
            );
        }
    }

    #[test]
    fn order_lookup_carries_key_and_encoded_email() {
        let req = get_order(
            &store(),
            147,
            "wc_order_VPffqyvgWVqWL",
            "buyer+e2e@example.com",
        );
        assert_eq!(req.url.path(), "/wp-json/wc/store/v1/order/147");
        assert_eq!(
            req.url.query(),
            Some("key=wc_order_VPffqyvgWVqWL&billing_email=buyer%2Be2e%40example.com")
        );
    }
}

//! The Store API requests of one order, as plain data (method, URL, JSON body), so what is
//! sent can be checked without a store. Routes are WooCommerce's `src/StoreApi/Routes/V1/`,
//! body fields the writable properties of the schemas in `src/StoreApi/Schemas/V1/`
//! (woocommerce/woocommerce, under plugins/woocommerce/); docs/e2e-order.md lists each one.

use reqwest::{Method, Url};
use serde_json::{Value, json};

use crate::StoreUrl;
use crate::input::{BillingEmail, Sku};
use crate::mark;

/// One request to the Store API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    /// What this step is, for error messages.
    pub step: &'static str,
    pub method: Method,
    pub url: Url,
    pub body: Option<Value>,
}

/// Where the test order goes. Names are not part of it: every order carries the test-order
/// mark ([`crate::mark`]) as its billing and shipping name, whatever the address.
#[derive(Debug, Clone, PartialEq)]
pub struct Address {
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

    /// Shipping address as the Store API wants it: the properties of `AbstractAddressSchema`
    /// (woocommerce/woocommerce, plugins/woocommerce/src/StoreApi/Schemas/V1/), with the
    /// test-order mark as the name.
    fn shipping(&self) -> Value {
        json!({
            "first_name": mark::FIRST_NAME,
            "last_name": mark::LAST_NAME,
            "company": self.company,
            "address_1": self.address_1,
            "address_2": self.address_2,
            "city": self.city,
            "state": self.state,
            "postcode": self.postcode,
            "country": self.country,
            "phone": self.phone,
        })
    }

    /// Billing address: the shipping fields plus `email` (`BillingAddressSchema`).
    fn billing(&self, email: &BillingEmail) -> Value {
        let mut value = self.shipping();
        value["email"] = json!(email.as_str());
        value
    }
}

/// Published, purchasable products; narrowed to one SKU when given.
pub fn list_products(store: &StoreUrl, sku: Option<&Sku>) -> ApiRequest {
    let mut url = store.endpoint("products");
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("per_page", "100");
        if let Some(sku) = sku {
            query.append_pair("sku", sku.as_str());
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
pub fn update_customer(store: &StoreUrl, address: &Address, email: &BillingEmail) -> ApiRequest {
    ApiRequest {
        step: "set addresses",
        method: Method::POST,
        url: store.endpoint("cart/update-customer"),
        body: Some(
            json!({ "billing_address": address.billing(email), "shipping_address": address.shipping() }),
        ),
    }
}

/// Places the order, paid by Cash on Delivery (`cod`), marked as a test order by its billing
/// name and its customer note.
pub fn checkout(store: &StoreUrl, address: &Address, email: &BillingEmail) -> ApiRequest {
    ApiRequest {
        step: "checkout",
        method: Method::POST,
        url: store.endpoint("checkout"),
        body: Some(json!({
            "billing_address": address.billing(email),
            "shipping_address": address.shipping(),
            "customer_note": mark::CUSTOMER_NOTE,
            "payment_method": "cod",
            "payment_data": [],
        })),
    }
}

/// Reads a guest order back; guests prove access with the order key and billing e-mail.
pub fn get_order(
    store: &StoreUrl,
    order_id: u64,
    order_key: &str,
    email: &BillingEmail,
) -> ApiRequest {
    let mut url = store.endpoint(&format!("order/{order_id}"));
    url.query_pairs_mut()
        .append_pair("key", order_key)
        .append_pair("billing_email", email.as_str());
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

    fn email() -> BillingEmail {
        "buyer+e2e@example.com".parse().unwrap()
    }

    #[test]
    fn product_listing_filters_by_sku_when_asked() {
        let all = list_products(&store(), None);
        assert_eq!(all.method, Method::GET);
        assert_eq!(
            all.url.as_str(),
            "http://store-7016ff.localhost/wp-json/wc/store/v1/products?per_page=100"
        );
        let one = list_products(&store(), Some(&"tee & mug".parse().unwrap()));
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
        let req = checkout(&store(), &Address::test_buyer(), &email());
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.url.path(), "/wp-json/wc/store/v1/checkout");
        let body = req.body.unwrap();
        assert_eq!(body["payment_method"], "cod");
        assert_eq!(body["billing_address"]["email"], "buyer+e2e@example.com");
        assert!(
            body["shipping_address"].get("email").is_none(),
            "shipping addresses have no e-mail"
        );
        for field in ["address_1", "city", "state", "postcode", "country"] {
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
    fn every_order_is_marked_as_a_storefleet_test_order() {
        let mut address = Address::test_buyer();
        address.company = "Acme".into();
        for req in [
            checkout(&store(), &address, &email()),
            update_customer(&store(), &address, &email()),
        ] {
            let body = req.body.unwrap();
            for which in ["billing_address", "shipping_address"] {
                assert_eq!(body[which]["first_name"], "Storefleet", "{which}");
                assert_eq!(body[which]["last_name"], "Test order", "{which}");
                assert_eq!(body[which]["company"], "Acme", "{which}");
            }
        }
        let body = checkout(&store(), &address, &email()).body.unwrap();
        let note = body["customer_note"].as_str().expect("customer_note");
        assert!(note.starts_with("Storefleet test order"), "{note}");
        assert!(
            note.contains("stock"),
            "the note must say it took stock: {note}"
        );
    }

    #[test]
    fn order_lookup_carries_key_and_encoded_email() {
        let req = get_order(&store(), 147, "wc_order_VPffqyvgWVqWL", &email());
        assert_eq!(req.url.path(), "/wp-json/wc/store/v1/order/147");
        assert_eq!(
            req.url.query(),
            Some("key=wc_order_VPffqyvgWVqWL&billing_email=buyer%2Be2e%40example.com")
        );
    }
}

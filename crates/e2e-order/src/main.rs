//! `e2e-order <store-url>`: places a Cash on Delivery order in a running store through the
//! WooCommerce Store API and confirms the order exists. Exit status 0 only if it does.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use e2e_order::{BillingEmail, DEFAULT_EMAIL, OrderOptions, Sku, StoreUrl, place_cod_order};

/// Place a Cash on Delivery order in a WooCommerce store and confirm it.
///
/// Every run places a REAL order that stays in the store and takes stock: if the store tracks
/// the product's stock, it goes down by one, and the store sends its order mails if it can
/// send mail. The order is marked so the shop owner can tell it from a sale: billing name
/// "Storefleet Test order" and a customer note saying it is a Storefleet test order. Cancel it
/// in wp-admin (WooCommerce > Orders) to put the stock back. See docs/e2e-order.md.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Base URL of the store, e.g. http://store-7016ff.localhost
    store_url: String,
    /// SKU to buy (default: the first purchasable simple product in stock)
    #[arg(long)]
    sku: Option<Sku>,
    /// Billing e-mail of the test order
    #[arg(long, default_value = DEFAULT_EMAIL)]
    email: BillingEmail,
    /// Timeout per HTTP request, in seconds (at least 1)
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let store = match StoreUrl::parse(&args.store_url) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("e2e-order: {e}");
            return ExitCode::from(2);
        }
    };
    let http = match reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(args.timeout))
        .user_agent(concat!("storefleet-e2e-order/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            eprintln!("e2e-order: HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = OrderOptions {
        sku: args.sku,
        email: args.email,
        ..OrderOptions::default()
    };
    match place_cod_order(&http, &store, &options).await {
        Ok(order) => {
            println!(
                "e2e-order: order #{} placed at {store} (status {}, Cash on Delivery, product {} {:?}) \
                 and read back; it stays in the store as a Storefleet test order and took stock",
                order.order_id, order.status, order.product.id, order.product.name
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("e2e-order: {e}");
            ExitCode::FAILURE
        }
    }
}

<?php
/**
 * Shop settings of the setup Job, run by `wp eval-file` with WordPress and WooCommerce loaded.
 * Every value comes from the environment. Every step compares before it writes and logs what
 * it changed, so a second run on a ready store logs no change.
 */

function storefleet_env( $name ) {
    $value = getenv( $name );
    if ( false === $value || '' === $value ) {
        WP_CLI::error( "environment variable $name is not set" );
    }
    return $value;
}

function storefleet_option( $name, $value ) {
    if ( get_option( $name ) === $value ) {
        return;
    }
    update_option( $name, $value );
    WP_CLI::log( "setup: set option $name" );
}

if ( ! class_exists( 'WooCommerce' ) ) {
    WP_CLI::error( 'WooCommerce is not active' );
}

// Site identity: values win, so a renamed store gets its new title on the next setup run.
$previous_title = get_option( 'blogname' );
storefleet_option( 'home', storefleet_env( 'SITE_URL' ) );
storefleet_option( 'siteurl', storefleet_env( 'SITE_URL' ) );
storefleet_option( 'blogname', storefleet_env( 'SITE_TITLE' ) );
// WooCommerce stored the title of the day it was installed as the "From" name of its e-mails
// (WC_Install::create_options saves the default of class-wc-settings-emails.php, the site title).
// It follows the title (a rename, or a claimed pool store whose title was the pool's), unless the
// owner gave it a name of their own. (Saved through esc_attr: "Bob's" is stored as "Bob&#039;s".)
$from_name = get_option( 'woocommerce_email_from_name' );
if ( in_array( $from_name, array( $previous_title, esc_attr( $previous_title ) ), true ) ) {
    storefleet_option( 'woocommerce_email_from_name', storefleet_env( 'SITE_TITLE' ) );
}

// Where the shop is and what it charges in.
storefleet_option( 'woocommerce_default_country', storefleet_env( 'STORE_COUNTRY' ) );
storefleet_option( 'woocommerce_currency', storefleet_env( 'STORE_CURRENCY' ) );
// New installs of WooCommerce (9.1+) start in "coming soon" mode, hiding the shop from visitors.
storefleet_option( 'woocommerce_coming_soon', 'no' );

// Shop, cart, checkout and my-account pages; create_pages() only adds the missing ones.
$missing_pages = array();
foreach ( array( 'shop', 'cart', 'checkout', 'myaccount' ) as $page ) {
    $id = wc_get_page_id( $page );
    if ( $id <= 0 || 'publish' !== get_post_status( $id ) ) {
        $missing_pages[] = $page;
    }
}
if ( $missing_pages ) {
    WC_Install::create_pages();
    WP_CLI::log( 'setup: created pages: ' . implode( ', ', $missing_pages ) );
}

// Cash on Delivery: enabled, for every shipping method and for virtual goods too. Settings
// the owner changed (title, instructions) are kept.
$cod = get_option( 'woocommerce_cod_settings', array() );
$cod = is_array( $cod ) ? $cod : array();
if ( 'yes' !== ( $cod['enabled'] ?? '' ) ) {
    $defaults = array(
        'title'              => 'Cash on delivery',
        'description'        => 'Pay with cash upon delivery.',
        'instructions'       => 'Pay with cash upon delivery.',
        'enable_for_methods' => array(),
        'enable_for_virtual' => 'yes',
    );
    update_option( 'woocommerce_cod_settings', array_merge( $defaults, $cod, array( 'enabled' => 'yes' ) ) );
    WP_CLI::log( 'setup: enabled Cash on Delivery' );
}

// A physical product needs a shipping method at checkout. Only when no zone has any method
// yet, add free shipping to "locations not covered by your other zones".
$has_shipping = ! empty( WC_Shipping_Zones::get_zone( 0 )->get_shipping_methods() );
foreach ( WC_Shipping_Zones::get_zones() as $zone ) {
    $has_shipping = $has_shipping || ! empty( $zone['shipping_methods'] );
}
if ( ! $has_shipping ) {
    WC_Shipping_Zones::get_zone( 0 )->add_shipping_method( 'free_shipping' );
    WP_CLI::log( 'setup: added free shipping' );
}

// One simple product, in stock, with a price; the SKU makes sure it is made only once.
$sku = storefleet_env( 'PRODUCT_SKU' );
if ( ! wc_get_product_id_by_sku( $sku ) ) {
    try {
        $product = new WC_Product_Simple();
        $product->set_name( storefleet_env( 'PRODUCT_NAME' ) );
        $product->set_sku( $sku );
        $product->set_regular_price( storefleet_env( 'PRODUCT_PRICE' ) );
        $product->set_manage_stock( true );
        $product->set_stock_quantity( (int) storefleet_env( 'PRODUCT_STOCK' ) );
        $product->set_stock_status( 'instock' );
        $product->set_catalog_visibility( 'visible' );
        $product->set_status( 'publish' );
        $id = $product->save();
    } catch ( Exception $e ) {
        WP_CLI::error( "creating product $sku: " . $e->getMessage() );
    }
    WP_CLI::log( "setup: created product $sku (id $id)" );
}

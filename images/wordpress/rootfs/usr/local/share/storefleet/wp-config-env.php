<?php
// wp-config.php of the Storefleet real-pod WordPress image: like the official image's
// wp-config-docker.php, every setting comes from the environment at runtime.
function storefleet_env( $name, $default ) {
	$value = getenv( $name );
	return false === $value ? $default : $value;
}

define( 'DB_NAME', storefleet_env( 'WORDPRESS_DB_NAME', 'wordpress' ) );
define( 'DB_USER', storefleet_env( 'WORDPRESS_DB_USER', 'example username' ) );
define( 'DB_PASSWORD', storefleet_env( 'WORDPRESS_DB_PASSWORD', 'example password' ) );
define( 'DB_HOST', storefleet_env( 'WORDPRESS_DB_HOST', 'mysql' ) );
define( 'DB_CHARSET', storefleet_env( 'WORDPRESS_DB_CHARSET', 'utf8mb4' ) );
define( 'DB_COLLATE', storefleet_env( 'WORDPRESS_DB_COLLATE', '' ) );

foreach ( array( 'AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT' ) as $key ) {
	define( $key, storefleet_env( 'WORDPRESS_' . $key, 'put your unique phrase here' ) );
}

$table_prefix = storefleet_env( 'WORDPRESS_TABLE_PREFIX', 'wp_' );
define( 'WP_DEBUG', (bool) storefleet_env( 'WORDPRESS_DEBUG', '' ) );

// Behind a TLS-terminating proxy, as in the official image.
if ( isset( $_SERVER['HTTP_X_FORWARDED_PROTO'] ) && strpos( $_SERVER['HTTP_X_FORWARDED_PROTO'], 'https' ) !== false ) {
	$_SERVER['HTTPS'] = 'on';
}

$storefleet_extra = storefleet_env( 'WORDPRESS_CONFIG_EXTRA', '' );
if ( $storefleet_extra ) {
	eval( $storefleet_extra );
}

if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';

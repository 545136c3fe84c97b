<?php
/**
 * A claimed pool store's identity (docs/pool.md), run by setup.sh with `wp eval-file` (WordPress
 * loaded, core only). Once per identity generation, the administrator's password becomes the one the
 * credentials Secret holds now, so the pool's stops working; a fresh install (generation 0) already
 * has it. One WordPress load instead of three `wp` commands: a claim is mostly its setup Job, and each
 * `wp` loading WordPress costs about 0.45 s there (docs/benchmarks.md, bench 7).
 * As `wp user update <login> --user_pass=... --skip-email`: wp_update_user(), no "Password Changed" mail.
 * WP-CLI's eval-file (wp-cli/eval-command, EvalFile_Command) runs the file inside a method, WordPress
 * loaded: the `return` below ends the file, not the process.
 */

$generation = getenv( 'IDENTITY_GENERATION' );
$generation = ( false === $generation || '' === $generation ) ? '0' : $generation;
if ( (string) get_option( 'storefleet_identity_generation', '0' ) === $generation ) {
    return;
}
$login    = getenv( 'ADMIN_USER' );
$password = getenv( 'ADMIN_PASSWORD' );
$user     = $login ? get_user_by( 'login', $login ) : false;
if ( ! $user || ! $password ) {
    fwrite( STDERR, "setup: error: no administrator '$login' or no ADMIN_PASSWORD for identity generation $generation\n" );
    exit( 1 );
}
add_filter( 'send_password_change_email', '__return_false' );
$result = wp_update_user( array( 'ID' => $user->ID, 'user_pass' => $password ) );
if ( is_wp_error( $result ) ) {
    fwrite( STDERR, 'setup: error: ' . $result->get_error_message() . "\n" );
    exit( 1 );
}
update_option( 'storefleet_identity_generation', $generation );
echo "setup: set the administrator's password of identity generation $generation\n";

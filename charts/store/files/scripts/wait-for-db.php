<?php
// Exits 0 once the database WordPress is configured for (same env as wp-config.php) accepts
// a login; setup.sh retries it until then.
mysqli_report( MYSQLI_REPORT_OFF );
$link = mysqli_init();
mysqli_options( $link, MYSQLI_OPT_CONNECT_TIMEOUT, 5 );
$ok = @mysqli_real_connect(
    $link,
    getenv( 'WORDPRESS_DB_HOST' ),
    getenv( 'WORDPRESS_DB_USER' ),
    getenv( 'WORDPRESS_DB_PASSWORD' ),
    getenv( 'WORDPRESS_DB_NAME' )
);
if ( ! $ok ) {
    fwrite( STDERR, 'database not ready: ' . mysqli_connect_error() . "\n" );
    exit( 1 );
}
exit( 0 );

<?php
/**
 * Plugin Name: Storefleet mail relay
 * Description: Sends the store's mail through the platform's SMTP relay. Installed by the platform (store chart); settings come from the environment.
 *
 * wp_mail() (wp-includes/pluggable.php) applies the wp_mail_from and wp_mail_from_name filters, calls
 * setFrom(), switches PHPMailer to PHP's mail() with isMail() (the images have no sendmail, so that
 * mail is lost), then fires phpmailer_init right before send(): the last word on transport and sender.
 */

defined( 'ABSPATH' ) || exit;

// No relay (or a pod without the settings): leave WordPress's mail as it is.
if ( '' === (string) getenv( 'STOREFLEET_SMTP_HOST' ) ) {
	return;
}

/** The platform's From address: the relay only sends for addresses it is allowed to. */
function storefleet_mail_from() {
	return (string) getenv( 'STOREFLEET_MAIL_FROM' );
}

/** The platform's From name, else the store's title (WooCommerce sets the same by default). */
function storefleet_mail_from_name( $name = '' ) {
	$platform = (string) getenv( 'STOREFLEET_MAIL_FROM_NAME' );
	if ( '' !== $platform ) {
		return $platform;
	}
	$title = get_bloginfo( 'name' );
	return '' !== $title ? $title : $name;
}

// Late, so code that reads the filters sees the address that is really used.
add_filter( 'wp_mail_from', 'storefleet_mail_from', PHP_INT_MAX );
add_filter( 'wp_mail_from_name', 'storefleet_mail_from_name', PHP_INT_MAX );

add_action(
	'phpmailer_init',
	static function ( $phpmailer ) {
		$phpmailer->isSMTP();
		$phpmailer->Host = (string) getenv( 'STOREFLEET_SMTP_HOST' );
		$phpmailer->Port = (int) getenv( 'STOREFLEET_SMTP_PORT' );
		// PHPMailer's names: 'ssl' is TLS from the first byte (465), 'tls' is STARTTLS (587).
		$modes                 = array(
			'tls'      => 'ssl',
			'starttls' => 'tls',
			'none'     => '',
		);
		$phpmailer->SMTPSecure = $modes[ (string) getenv( 'STOREFLEET_SMTP_TLS' ) ] ?? 'tls';
		// `none` means none: no opportunistic STARTTLS against a certificate nobody can check.
		$phpmailer->SMTPAutoTLS = false;
		$username               = (string) getenv( 'STOREFLEET_SMTP_USERNAME' );
		$phpmailer->SMTPAuth    = '' !== $username;
		if ( $phpmailer->SMTPAuth ) {
			$phpmailer->Username = $username;
			$phpmailer->Password = (string) getenv( 'STOREFLEET_SMTP_PASSWORD' );
		}
		// PHPMailer waits 300 s by default; a page (checkout, lost password) should not hang that long
		// on a relay that does not answer.
		$phpmailer->Timeout = 15;
		// Over whatever a plugin set (WooCommerce sets the shop's own address): the envelope sender
		// (MAIL FROM) is the From too, since wp_mail() leaves Sender empty.
		$phpmailer->setFrom( storefleet_mail_from(), storefleet_mail_from_name( $phpmailer->FromName ), false );
	},
	PHP_INT_MAX
);

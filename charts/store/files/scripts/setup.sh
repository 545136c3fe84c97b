#!/bin/sh
# Makes a fresh WooCommerce store shoppable with no manual step. Runs in the official WP-CLI
# image, on the WordPress volume, against the store's database. Every step looks before it
# changes anything, so a re-run (Job retry, or a new Job after a settings change) changes
# nothing that is already right. Settings come from the environment only (templates/_setup-pod.tpl).
set -eu

log() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# wait_for WHAT CMD...: runs CMD every 5 s until it succeeds, for at most WAIT_SECONDS.
wait_for() {
  what=$1
  shift
  deadline=$(( $(date +%s) + WAIT_SECONDS ))
  until out=$("$@" 2>&1); do
    [ "$(date +%s)" -lt "$deadline" ] || fail "gave up waiting for $what after ${WAIT_SECONDS}s: $out"
    sleep 5
  done
  log "$what: ready"
}

# The WordPress container's entrypoint copies WordPress onto the volume and writes
# wp-config.php last, so a complete wp-config.php means the files are all there.
wordpress_files_ready() {
  grep -q "wp-settings.php" /var/www/html/wp-config.php
}

cd /var/www/html
wait_for "WordPress files" wordpress_files_ready
wait_for "database" php /opt/storefleet/wait-for-db.php

if wp core is-installed; then
  log "WordPress is installed"
else
  log "installing WordPress"
  # The admin password is in this process's argv, visible only inside this pod.
  wp core install --url="$SITE_URL" --title="$SITE_TITLE" \
    --admin_user="$ADMIN_USER" --admin_password="$ADMIN_PASSWORD" \
    --admin_email="$ADMIN_EMAIL" --skip-email
fi

# A claimed pool store (docs/pool.md): once per identity generation, the administrator's password
# from the credentials Secret, so the pool's stops working (identity.php; environment, not argv).
wp eval-file /opt/storefleet/identity.php

# An installed WooCommerce is kept at whatever version it has (no downgrade of an update).
# `is-active` first: it answers no for a plugin that is not installed (WP-CLI's
# Plugin_Command::is_active halts 1 when the fetcher finds none), so on a store already set up (a
# re-run, a claim, a settings change) one WordPress load answers both questions.
if ! wp plugin is-active woocommerce; then
  if ! wp plugin is-installed woocommerce; then
    log "installing WooCommerce $WOOCOMMERCE_VERSION"
    wp plugin install woocommerce --version="$WOOCOMMERCE_VERSION"
  fi
  log "activating WooCommerce"
  wp plugin activate woocommerce
fi

# Site and shop settings, pages, Cash on Delivery, shipping, the first product (PHP: WordPress
# and WooCommerce APIs directly, values read from the environment, never from argv).
wp eval-file /opt/storefleet/shop.php

if [ "$(wp option get permalink_structure)" != "/%postname%/" ]; then
  log "setting pretty permalinks"
  wp rewrite structure '/%postname%/' --hard
fi

log "store is shoppable at $SITE_URL"

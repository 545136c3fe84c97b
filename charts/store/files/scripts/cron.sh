#!/bin/sh
# WordPress's scheduled events (WooCommerce's Action Scheduler among them), run by a CronJob
# instead of WP-Cron's page-load loopback requests, which the store's NetworkPolicies block
# and which would wait for visitors anyway (DISABLE_WP_CRON is set in wp-config.php).
set -eu
cd /var/www/html
if ! wp core is-installed; then
  echo "wp-cron: store not set up yet, nothing to run"
  exit 0
fi
wp cron event run --due-now

#!/bin/bash
# Stand-in for the official wordpress image's entrypoint, same contract: on an empty
# /var/www/html it copies WordPress there, and it writes wp-config.php (which reads the
# WORDPRESS_* environment at runtime, as the official wp-config-docker.php does) when missing.
# wp-config.php is written last and atomically: the setup Job takes it as "files complete".
set -euo pipefail
HTML=/var/www/html

log() { printf 'entrypoint: %s\n' "$*"; }

if [[ "${1:-}" == apache2* ]]; then
  if [ ! -e "$HTML/index.php" ] && [ ! -e "$HTML/wp-includes/version.php" ]; then
    log "WordPress not found in $HTML - copying now..."
    # The folder's entries, not ".": the volume root is not ours to chmod or utime (hostPath: root's).
    find /usr/src/wordpress -mindepth 1 -maxdepth 1 -printf '%P\0' |
      tar -C /usr/src/wordpress --null -T - -c | tar -C "$HTML" -x --no-same-owner
    if [ ! -e "$HTML/.htaccess" ]; then
      cat >"$HTML/.htaccess" <<'HTACCESS'
# BEGIN WordPress
<IfModule mod_rewrite.c>
RewriteEngine On
RewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]
RewriteBase /
RewriteRule ^index\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.php [L]
</IfModule>
# END WordPress
HTACCESS
    fi
    log "complete! WordPress has been successfully copied to $HTML"
  fi
  if [ ! -s "$HTML/wp-config.php" ] && [ -n "${WORDPRESS_DB_HOST:-}" ]; then
    log "writing wp-config.php"
    cp /usr/local/share/storefleet/wp-config-env.php "$HTML/.wp-config.php.tmp"
    mv -f "$HTML/.wp-config.php.tmp" "$HTML/wp-config.php"
  fi
fi
exec "$@"

#!/bin/sh
# Runs inside the new root filesystem (chroot) after the packages are installed.
set -eu
# Debian spreads WordPress over symlinks into /etc and /usr/share/javascript; the entrypoint
# copies a self-contained tree onto the volume, like the official image's /usr/src/wordpress.
cp -aL /usr/share/wordpress /usr/src/wordpress
rm -f /usr/src/wordpress/wp-config.php /usr/src/wordpress/.htaccess
chown -R 33:33 /usr/src/wordpress
# Apache as uid 33: its run, lock and log folders must be writable; logs go to the container log.
a2enmod -q rewrite >/dev/null
mkdir -p /var/log/apache2 /var/www/html
chown 33:33 /var/log/apache2 /var/www/html
chmod 0777 /var/log/apache2
ln -sfT /dev/stderr /var/log/apache2/error.log
ln -sfT /dev/stdout /var/log/apache2/access.log
ln -sfT /dev/stdout /var/log/apache2/other_vhosts_access.log
a2enconf -q storefleet-wordpress >/dev/null
chmod 0755 /usr/local/bin/*

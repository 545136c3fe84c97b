#!/bin/sh
# Runs inside the new root filesystem (chroot) after the packages are installed.
set -eu
# uid/gid 999 as in the official image (the chart's podSecurityContext sets them).
groupmod -g 999 mysql
usermod -u 999 -g 999 mysql
# The package's postinst initialised a data directory: the entrypoint does that on the volume.
rm -rf /var/lib/mysql /var/log/mysql
mkdir -p /var/lib/mysql
chown 999:999 /var/lib/mysql
chmod 0755 /usr/local/bin/*

#!/bin/bash
# Stand-in for the official mariadb image's entrypoint, same environment contract: on an empty
# /var/lib/mysql it creates the system tables, sets MARIADB_ROOT_PASSWORD (root@'%' too),
# creates MARIADB_DATABASE and MARIADB_USER/MARIADB_PASSWORD with all rights on it, and a
# `healthcheck` user for healthcheck.sh. The init server runs with networking off, so the
# readiness probe (TCP) only passes once the real server is up.
set -euo pipefail
DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

log() { printf 'entrypoint: %s\n' "$*"; }

# SQL string literal: backslashes and single quotes escaped.
sql_str() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\\\'}"; }
# SQL identifier: backticks doubled.
# shellcheck disable=SC2016 # literal backticks
sql_id() { printf '`%s`' "${1//\`/\`\`}"; }

init_db() {
  : "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD is required to initialise the database}"
  log "initialising a new database in $DATADIR"
  mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve >/dev/null
  mariadbd --datadir="$DATADIR" --skip-networking --socket="$SOCKET" &
  local pid=$!
  for _ in $(seq 1 60); do
    mariadb-admin --socket="$SOCKET" -uroot ping >/dev/null 2>&1 && break
    sleep 1
  done
  local hc_password
  hc_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    echo "DROP USER IF EXISTS ''@'localhost', ''@$(sql_str "$(hostname)"), 'root'@$(sql_str "$(hostname)");"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_str "$MARIADB_ROOT_PASSWORD");"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY $(sql_str "$MARIADB_ROOT_PASSWORD");"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    echo "CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY $(sql_str "$hc_password");"
    echo "CREATE USER 'healthcheck'@'127.0.0.1' IDENTIFIED BY $(sql_str "$hc_password");"
    if [ -n "${MARIADB_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS $(sql_id "$MARIADB_DATABASE");"
    fi
    if [ -n "${MARIADB_USER:-}" ] && [ -n "${MARIADB_PASSWORD:-}" ]; then
      echo "CREATE USER $(sql_str "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_str "$MARIADB_PASSWORD");"
      if [ -n "${MARIADB_DATABASE:-}" ]; then
        echo "GRANT ALL ON $(sql_id "$MARIADB_DATABASE").* TO $(sql_str "$MARIADB_USER")@'%';"
      fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$SOCKET" -uroot
  printf '[mariadb-client]\nport=3306\nsocket=%s\nuser=healthcheck\npassword=%s\n' \
    "$SOCKET" "$hc_password" >"$DATADIR/.my-healthcheck.cnf"
  chmod 600 "$DATADIR/.my-healthcheck.cnf"
  mariadb-admin --socket="$SOCKET" -uroot --password="$MARIADB_ROOT_PASSWORD" shutdown
  wait "$pid" || true
  log "database initialised"
}

if [ "${1:-}" = mariadbd ] || [ "${1:-}" = mysqld ]; then
  if [ ! -d "$DATADIR/mysql" ]; then
    init_db
  fi
  log "starting $*"
fi
exec "$@"

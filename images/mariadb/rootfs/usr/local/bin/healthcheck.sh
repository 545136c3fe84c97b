#!/bin/bash
# Stand-in for the official mariadb image's healthcheck.sh, for the checks the chart uses:
#   --connect              the server accepts TCP connections (not the entrypoint's init server)
#   --innodb_initialized   InnoDB is usable
set -uo pipefail
CNF=/var/lib/mysql/.my-healthcheck.cnf
[ $# -gt 0 ] || { echo "usage: healthcheck.sh --connect | --innodb_initialized ..." >&2; exit 2; }
for check in "$@"; do
  case "$check" in
    --connect)
      # `ping` over TCP: an answer, even "access denied", means the server is listening
      mariadb-admin --no-defaults --protocol=tcp -h 127.0.0.1 -P 3306 --connect-timeout=3 ping >/dev/null 2>&1 ||
        { echo "healthcheck: no TCP connection" >&2; exit 1; } ;;
    --innodb_initialized)
      out=$(mariadb --defaults-extra-file="$CNF" -N -B -e \
        "SELECT 1 FROM information_schema.ENGINES WHERE engine='InnoDB' AND support IN ('YES','DEFAULT','ENABLED')" 2>&1)
      [ "$out" = 1 ] || { echo "healthcheck: InnoDB not initialised: $out" >&2; exit 1; } ;;
    *) echo "healthcheck: unknown check $check" >&2; exit 2 ;;
  esac
done

#!/usr/bin/env bash
# Shared by scripts/realpods/up and down (sourced). STATE is the real-pod cluster's state folder.
# shellcheck disable=SC2034 # the variables are for the scripts that source this file
REALPODS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$REALPODS/../.." && pwd)
CACHE=${STOREFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/storefleet}
KUBE_BIN=${KUBE_BIN_DIR:-$CACHE/kube-1.20.2/bin}
NODE_NAME=realpods-node
# containerd keeps its images and snapshots across runs (a warm `up` imports nothing); its
# runtime state, socket and everything of the Kubernetes node live in STATE.
CONTAINERD_ROOT=/var/lib/storefleet-realpods/containerd
SOCKET=$STATE/containerd/containerd.sock
BRIDGE=sfrp0
POD_SUBNET=10.244.0.0/24
GATEWAY=10.244.0.1 # also the cluster DNS stand-in's address
PAUSE_IMAGE=storefleet.local/pause:3.4.1-realpods

log() { printf '[realpods] %s\n' "$*" >&2; }
die() { printf '[realpods] error: %s\n' "$*" >&2; exit 1; }

# start NAME CMD...: detached in its own session, pid in $STATE/pids/NAME, log in $STATE/logs/NAME.log
start() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$STATE/pids/$name"
}

alive() { [ -f "$STATE/pids/$1" ] && kill -0 "$(cat "$STATE/pids/$1")" 2>/dev/null; }

# stop NAME: TERM to its session, KILL after 10 s
stop() {
  local f=$STATE/pids/$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

ctr_() { ctr --address "$SOCKET" -n k8s.io "$@"; }

# The API server reaches kubelet (logs, exec) by the node's host name first: /etc/hosts names it.
# Rewritten in place (not renamed): /etc/hosts may be a bind mount.
HOSTS_MARK="# storefleet realpods node"
hosts_entry() { # hosts_entry add|remove
  local kept
  kept=$(grep -v "$HOSTS_MARK\$" /etc/hosts || true)
  if [ "$1" = add ]; then
    printf '%s\n%s %s %s\n' "$kept" "$GATEWAY" "$NODE_NAME" "$HOSTS_MARK" >/etc/hosts
  else
    printf '%s\n' "$kept" >/etc/hosts
  fi
}

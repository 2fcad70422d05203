#!/usr/bin/env bash
# Makes this machine able to run sandpool's tests, idempotently:
# installs what is missing (Docker engine via apt), starts what is not running
# (dockerd on its unix socket, no bridge network), installs npm dependencies,
# and builds the sandbox image. Safe to run again and again.
set -euo pipefail

log() { echo "[setup] $*" >&2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUDO=""
if [[ "$(id -u)" != "0" ]]; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [[ $apt_updated == 0 ]]; then
    log "apt-get update"
    $SUDO apt-get update -qq >&2
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >&2
}

# --- Docker engine ---------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  command -v docker >/dev/null 2>&1 || apt_install docker.io
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    # A stale pid file from a killed daemon makes dockerd refuse to start.
    if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
      $SUDO rm -f /var/run/docker.pid
    fi
    log "starting dockerd (no iptables, no bridge: sandboxes run with NetworkMode none)"
    $SUDO nohup dockerd --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 \
      >/tmp/sandpool-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /tmp/sandpool-dockerd.log"; tail -20 /tmp/sandpool-dockerd.log >&2 || true; exit 1; }
  log "Docker engine is up"
fi

# --- Redis and nginx for the replica tests and `npm run cluster` (started per use) ---
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
command -v nginx >/dev/null 2>&1 || apt_install nginx
# docker-compose (v1) validates the compose files in a test.
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose

# --- Chromium for the browser test (Debian's package; playwright-core drives it) ---
command -v chromium >/dev/null 2>&1 || apt_install chromium

# --- npm dependencies --------------------------------------------------------
if [[ ! -d "$root/node_modules/.bin" ]]; then
  log "npm ci"
  (cd "$root" && npm ci --no-audit --no-fund >&2)
fi

# --- sandbox image -----------------------------------------------------------
"$root/pool/build.sh"

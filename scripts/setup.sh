#!/usr/bin/env bash
# Makes this machine able to run sandpool's tests, idempotently:
# installs what is missing (the Docker engine, Redis, nginx, docker-compose,
# Chromium via apt; promtool and amtool unpacked from Debian's packages), starts the engine when it is not running
# (scripts/lib/docker-engine.sh), installs npm dependencies, and builds the
# sandbox image. Safe to run again and again.
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

# --- Docker engine (the provisioning `npm start` and `npm run images` share) ---
"$root/scripts/lib/docker-engine.sh"

# --- Redis and nginx for the replica tests and `npm run cluster` (started per use) ---
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
command -v nginx >/dev/null 2>&1 || apt_install nginx
# docker-compose (v1): the compose files, checked in a test and run by `npm run test:deploy`.
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose

# --- promtool and amtool: the monitoring kit's checks (test/integration/ops-kit.test.ts) ---
"$root/scripts/lib/prom-tools.sh" >/dev/null

# --- Chromium for the browser test (Debian's package; playwright-core drives it) ---
command -v chromium >/dev/null 2>&1 || apt_install chromium

# --- npm dependencies --------------------------------------------------------
if [[ ! -d "$root/node_modules/.bin" ]]; then
  log "npm ci"
  (cd "$root" && npm ci --no-audit --no-fund >&2)
fi

# --- sandbox image -----------------------------------------------------------
"$root/pool/build.sh"

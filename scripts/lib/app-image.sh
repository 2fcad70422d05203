#!/usr/bin/env bash
# Builds the app image (Dockerfile) as IMAGE.
#
# With a registry that serves the Dockerfile's public base (node:<version>-slim)
# this is a plain `docker build .`. Without one, the base is assembled from the
# same Node version (scripts/lib/offline-node-base.sh), and that base has no
# npm and no network: production node_modules (npm ci on the host, where the
# npm registry answers; cached in ~/.cache/sandpool per lock file) and dist/
# (compiled here) go into the build context as prebuilt/, which the
# Dockerfile's build stage takes instead of installing and compiling.
# Skips the build when an image with the same content hash exists
# (FORCE_BUILD=1 to force).
#
# Usage: scripts/lib/app-image.sh IMAGE
set -euo pipefail

image="${1:?usage: app-image.sh IMAGE}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
log() { echo "[app-image] $*" >&2; }

node_image="$(sed -n 's/^ARG NODE_IMAGE=//p' Dockerfile)"
node_version="$(sed -n 's/^node:\([0-9.]*\)-slim$/\1/p' <<<"$node_image")"
[[ -n "$node_version" ]] || { log "Dockerfile's ARG NODE_IMAGE ($node_image) is not node:<version>-slim"; exit 1; }
# What the image is made of: rebuild only when it changes.
context=(Dockerfile package.json package-lock.json tsconfig.json src scripts test web)
hash="$(find "${context[@]}" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
if [[ "${FORCE_BUILD:-0}" != "1" ]] && \
   [[ "$(docker image inspect -f '{{ index .Config.Labels "sandpool.build-hash" }}' "$image" 2>/dev/null || true)" == "$hash" ]]; then
  log "$image is up to date ($hash)"
  exit 0
fi

if docker image inspect "$node_image" >/dev/null 2>&1 || docker pull "$node_image" >/dev/null 2>&1; then
  log "building $image on $node_image"
  docker build -q --label "sandpool.build-hash=$hash" -t "$image" . >/dev/null
  log "built $image"
  exit 0
fi

base="sandpool-base:node$node_version"
scripts/lib/offline-node-base.sh "$node_version" "$base"

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sandpool"
modules="$cache_dir/app-modules-$(cat package.json package-lock.json | sha256sum | cut -c1-16)"
if [[ ! -d "$modules/node_modules" ]]; then
  log "installing production node_modules (npm ci --omit=dev) into $modules"
  mkdir -p "$cache_dir"
  rm -rf "$cache_dir"/app-modules-*
  staging="$(mktemp -d "$cache_dir/app-modules.XXXXXX")"
  cp package.json package-lock.json "$staging/"
  (cd "$staging" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund >/dev/null)
  mv "$staging" "$modules"
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
log "compiling dist/ for $image"
npx tsc -p . --outDir "$stage/prebuilt/dist"
rm -rf "$stage/prebuilt/dist/test"

log "building $image on $base (no registry)"
tar -c "${context[@]}" -C "$stage" prebuilt -C "$modules" --transform 's,^node_modules,prebuilt/node_modules,' node_modules |
  docker build -q --build-arg "NODE_IMAGE=$base" --label "sandpool.build-hash=$hash" -t "$image" - >/dev/null
log "built $image"

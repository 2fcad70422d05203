#!/usr/bin/env bash
# Builds the sandbox image (default tag sandpool-sandbox:latest).
#
# Works without an image registry: when the public base (node:20-slim) is
# neither present nor pullable, a base image is assembled from this host's node
# binary and the shared libraries it links, imported with `docker import`.
# Skips the build when an image with the same content hash already exists.
#
# Usage: pool/build.sh [IMAGE]   (env: POOL_IMAGE, BASE_IMAGE, FORCE_BUILD=1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${1:-${POOL_IMAGE:-sandpool-sandbox:latest}}"
public_base="node:20-slim"
offline_base="sandpool-base:node$(node -p 'process.versions.node')"

log() { echo "[pool/build] $*" >&2; }

docker info >/dev/null 2>&1 || { log "Docker engine is not reachable"; exit 1; }

# Content hash of what goes into the image: rebuild only when it changes.
hash="$(cd "$here" && cat Dockerfile package.json package-lock.json | sha256sum | cut -c1-16)"
if [[ "${FORCE_BUILD:-0}" != "1" ]] && \
   [[ "$(docker image inspect -f '{{ index .Config.Labels "sandpool.build-hash" }}' "$image" 2>/dev/null || true)" == "$hash" ]]; then
  log "$image is up to date ($hash)"
  exit 0
fi

if [[ ! -d "$here/node_modules/@modelcontextprotocol/server-filesystem" ]]; then
  log "installing the MCP server into pool/node_modules"
  (cd "$here" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >&2)
fi

build_offline_base() {
  if docker image inspect "$offline_base" >/dev/null 2>&1; then return 0; fi
  log "no registry: assembling $offline_base from the host's node binary"
  local root; root="$(mktemp -d)"
  trap 'rm -rf "$root"' RETURN
  local node_bin; node_bin="$(readlink -f "$(command -v node)")"
  local sh_bin; sh_bin="$(readlink -f /bin/sh)"
  mkdir -p "$root/usr/local/bin" "$root/bin" "$root/tmp" "$root/etc" "$root/workspace"
  chmod 1777 "$root/tmp"
  cp "$node_bin" "$root/usr/local/bin/node"
  cp "$sh_bin" "$root/bin/sh"
  # Every shared library node and sh link against, at the same paths.
  local lib
  for lib in $( { ldd "$node_bin"; ldd "$sh_bin"; } | grep -oE '/[^ ]+' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\n' >"$root/etc/group"
  tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$offline_base" >/dev/null
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

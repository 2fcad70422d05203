#!/usr/bin/env bash
# Prints a directory holding promtool and amtool (Prometheus's and
# Alertmanager's checkers), getting them first when needed, idempotently:
# the ones on PATH if both are there, else Debian's (packages prometheus and
# prometheus-alertmanager, `apt-get download`ed and unpacked into
# ~/.cache/sandpool; nothing is installed, no daemon starts). Used by
# scripts/setup.sh and test/integration/ops-kit.test.ts.
set -euo pipefail
log() { echo "[prom-tools] $*" >&2; }

if command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
  dirname "$(command -v promtool)"
  exit 0
fi

packages=(prometheus prometheus-alertmanager)
as_root=()
[[ "$(id -u)" == "0" ]] || as_root=(sudo -n)
versions() { apt-cache show --no-all-versions "${packages[@]}" 2>/dev/null | awk '/^Package: /{p=$2} /^Version: /{print p"="$2}'; }
known="$(versions)"
if [[ "$(grep -c . <<<"$known")" != "${#packages[@]}" ]]; then
  log "apt knows no version of ${packages[*]}: apt-get update"
  "${as_root[@]}" apt-get update -qq >&2 || { log "apt-get update failed"; exit 1; }
  known="$(versions)"
fi
dir="${XDG_CACHE_HOME:-$HOME/.cache}/sandpool/prom-tools-$(sha256sum <<<"$known" | cut -c1-12)"
if [[ -x "$dir/promtool" && -x "$dir/amtool" ]]; then
  echo "$dir"
  exit 0
fi
log "getting promtool and amtool from Debian's ${packages[*]} into $dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "${packages[@]}" >/dev/null 2>&1) || { log "apt-get download ${packages[*]} failed"; exit 1; }
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
mkdir -p "$dir"
install -m 755 "$work/x/usr/bin/promtool" "$work/x/usr/bin/amtool" "$dir/"
echo "$dir"

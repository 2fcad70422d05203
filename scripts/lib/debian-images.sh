#!/usr/bin/env bash
# Assembles the Redis, nginx and monitoring images of the compose files and
# the swarm stack without an image registry, from Debian's packages (`apt-get
# download`): the binaries the stack runs, the libraries they link (from the
# downloaded packages, else the host's, at the same paths), users, and the
# directories they write, imported with `docker import`. Rebuilt only when
# this script or a package's version changes (label sandpool.debian-image).
#
# Usage: scripts/lib/debian-images.sh KIND IMAGE
#   redis:          redis-server and redis-cli (Debian's Redis 7), as uid 999, data in /data
#   nginx:          nginx with what nginx/entrypoint.sh needs (sh, envsubst, getent, sort, sleep)
#   prometheus:     prometheus and promtool (Debian's 2.42), as nobody, data in /prometheus
#   alertmanager:   prometheus-alertmanager and amtool (0.25), as nobody, data in /alertmanager
#   nginx-exporter: prometheus-nginx-exporter (0.11), as nobody, on :9113
#   redis-exporter: prometheus-redis-exporter (1.45), as nobody, on :9121
# The monitoring binaries are Go programs linking only libc: no shell, no
# other file (the compose file gives them their configuration by mount).
set -euo pipefail

usage='usage: debian-images.sh redis|nginx|prometheus|alertmanager|nginx-exporter|redis-exporter IMAGE'
kind="${1:?$usage}"
image="${2:?$usage}"
log() { echo "[debian-images] $*" >&2; }
path_env='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

case "$kind" in
  redis)
    # Linked by redis and on few hosts (libssl3: the version the binaries were built against): from their packages too.
    packages=(redis-tools libjemalloc2 liblzf1 libssl3)
    binaries=(/usr/bin/redis-check-rdb /usr/bin/redis-cli)
    files=()
    ;;
  nginx)
    # libssl3: the version nginx was built against, which the host may not have yet.
    packages=(nginx nginx-common gettext-base libc-bin coreutils dash libssl3)
    binaries=(/usr/sbin/nginx /usr/bin/envsubst /usr/bin/getent /usr/bin/sort /bin/sleep /bin/dash)
    files=(/etc/nginx/mime.types)
    ;;
  prometheus)
    packages=(prometheus)
    binaries=(/usr/bin/prometheus /usr/bin/promtool)
    # The classic web UI's templates and assets (Debian serves them from here).
    dirs=(/usr/share/prometheus/web)
    ;;
  alertmanager)
    packages=(prometheus-alertmanager)
    binaries=(/usr/bin/prometheus-alertmanager /usr/bin/amtool)
    # Its notification templates (default.tmpl: it refuses a configuration without them) and web UI.
    dirs=(/usr/share/prometheus/alertmanager)
    ;;
  nginx-exporter)
    packages=(prometheus-nginx-exporter)
    binaries=(/usr/bin/prometheus-nginx-exporter)
    ;;
  redis-exporter)
    packages=(prometheus-redis-exporter)
    binaries=(/usr/bin/prometheus-redis-exporter)
    ;;
  *) log "unknown image kind $kind; $usage"; exit 2 ;;
esac
files=("${files[@]+"${files[@]}"}")
dirs=("${dirs[@]+"${dirs[@]}"}")

as_root=()
[[ "$(id -u)" == "0" ]] || as_root=(sudo -n)
# The candidate version of each package, one `pkg=version` a line (empty when apt does not know it).
versions() {
  apt-cache show --no-all-versions "${packages[@]}" 2>/dev/null | awk '/^Package: /{p=$2} /^Version: /{print p"="$2}'
}
known="$(versions)"
if [[ "$(grep -c . <<<"$known")" != "${#packages[@]}" ]]; then
  log "apt knows no version of some of ${packages[*]}: apt-get update"
  "${as_root[@]}" apt-get update -qq >&2 || { log "apt-get update failed: no apt lists, and no root to fetch them"; exit 1; }
  known="$(versions)"
fi
stamp="$( { cat "${BASH_SOURCE[0]}"; echo "$known"; } | sha256sum | cut -c1-16)"
if [[ "$(docker image inspect -f '{{ index .Config.Labels "sandpool.debian-image" }}' "$image" 2>/dev/null || true)" == "$stamp" ]]; then
  log "$image is up to date ($stamp)"
  exit 0
fi

log "assembling $image from Debian's ${packages[*]}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/extracted" "$work/root"
(cd "$work/debs" && apt-get download -q "${packages[@]}" >/dev/null 2>&1) || {
  log "apt-get download ${packages[*]} failed"
  exit 1
}
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/extracted"; done

root="$work/root"
place() { mkdir -p "$root$(dirname "$2")"; cp -L "$1" "$root$2"; }
for f in "${binaries[@]}" "${files[@]}"; do place "$work/extracted$f" "$f"; done
for d in "${dirs[@]}"; do mkdir -p "$root$(dirname "$d")"; cp -a "$work/extracted$d" "$root$d"; done
# Every library the binaries link: the packages' own first, then the host's.
pkg_libs="$work/extracted/usr/lib/x86_64-linux-gnu:$work/extracted/lib/x86_64-linux-gnu"
for bin in "${binaries[@]}"; do
  if LD_LIBRARY_PATH="$pkg_libs" ldd "$root$bin" | grep -q 'not found'; then
    log "$bin links libraries neither the packages nor this host have:"
    LD_LIBRARY_PATH="$pkg_libs" ldd "$root$bin" | grep 'not found' >&2
    exit 1
  fi
  for lib in $(LD_LIBRARY_PATH="$pkg_libs" ldd "$root$bin" | grep -oE '/[^ ]+' | sort -u); do
    if [[ "$lib" == "$work/extracted/"* ]]; then place "$lib" "${lib#"$work/extracted"}"; else place "$lib" "$lib"; fi
  done
done
mkdir -p "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
# Users and hosts from files, names from DNS (Docker's resolver): glibc's own defaults differ by version.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"

owned=()
owner=0
case "$kind" in
  redis)
    ln -s redis-check-rdb "$root/usr/bin/redis-server"
    printf 'root:x:0:0:root:/root:/nonexistent\nredis:x:999:999:redis:/data:/nonexistent\n' >"$root/etc/passwd"
    printf 'root:x:0:\nredis:x:999:\n' >"$root/etc/group"
    mkdir -p "$work/owned/data"
    owned=(data)
    owner=999
    changes=("$path_env" 'USER 999:999' 'WORKDIR /data' 'EXPOSE 6379' 'CMD ["redis-server"]')
    ;;
  nginx)
    ln -s dash "$root/bin/sh"
    printf 'root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/nonexistent:/nonexistent\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnginx:x:101:\n' >"$root/etc/group"
    mkdir -p "$root/etc/nginx/conf.d" "$root/var/lib/nginx" "$root/var/cache/nginx" "$root/var/log/nginx" "$root/run"
    ln -s /run "$root/var/run"
    # As in the public image: the logs are the container's output.
    ln -s /dev/stderr "$root/var/log/nginx/error.log"
    ln -s /dev/stdout "$root/var/log/nginx/access.log"
    changes=("$path_env" 'EXPOSE 80' 'CMD ["nginx", "-g", "daemon off;"]')
    ;;
  *)
    # The monitoring programs: nobody (65534), writing only their data directory.
    printf 'root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    owner=65534
    case "$kind" in
      prometheus)
        mkdir -p "$work/owned/prometheus" "$root/etc/prometheus"
        owned=(prometheus)
        changes=("$path_env" 'USER 65534:65534' 'WORKDIR /prometheus' 'EXPOSE 9090' 'ENTRYPOINT ["/usr/bin/prometheus"]'
          'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.console.templates=/usr/share/prometheus/web/templates"]')
        ;;
      alertmanager)
        mkdir -p "$work/owned/alertmanager" "$root/etc/alertmanager"
        owned=(alertmanager)
        changes=("$path_env" 'USER 65534:65534' 'WORKDIR /alertmanager' 'EXPOSE 9093' 'ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]'
          'CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager", "--cluster.listen-address="]')
        ;;
      nginx-exporter)
        changes=("$path_env" 'USER 65534:65534' 'EXPOSE 9113' 'ENTRYPOINT ["/usr/bin/prometheus-nginx-exporter"]')
        ;;
      redis-exporter)
        changes=("$path_env" 'USER 65534:65534' 'EXPOSE 9121' 'ENTRYPOINT ["/usr/bin/prometheus-redis-exporter"]')
        ;;
    esac
    ;;
esac

# Everything root's, but the directories the unprivileged user writes (a named volume starts with their owner).
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$work/rootfs.tar" .
if (( ${#owned[@]} > 0 )); then
  tar -C "$work/owned" --numeric-owner --owner="$owner" --group="$owner" -rf "$work/rootfs.tar" "${owned[@]}"
fi
import_args=()
for change in "${changes[@]}" "LABEL sandpool.debian-image=$stamp"; do import_args+=(-c "$change"); done
docker import "${import_args[@]}" "$work/rootfs.tar" "$image" >/dev/null
log "assembled $image"

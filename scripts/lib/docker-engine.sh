#!/usr/bin/env bash
# Makes a Docker engine answer at DOCKER_SOCKET (default /var/run/docker.sock)
# when this user may: installs docker.io with apt when dockerd is missing and
# starts the engine, as root or through sudo that asks no password (a script
# cannot answer a prompt). Shared by `npm test` (scripts/setup.sh: a failure
# stops it), `npm start` (scripts/start.sh: a failure falls back to the
# unisolated process runtime, loudly) and `npm run images`.
#
# Exit 0: the engine answers. Exit 1: it does not and cannot be made to from
# here; the reason is on stderr.
#
# With systemd (a usual host) the distribution's docker service is started.
# Elsewhere (containers, CI, WSL) dockerd is started here, in its own session
# so that a terminal's Ctrl-C to `npm start` does not reach it, without
# iptables and without the default bridge: sandboxes run with NetworkMode none,
# user-defined networks and ports published by the userland proxy still work,
# but containers get no NAT to the outside. A DOCKER_SOCKET other than the
# default gets a private engine whose state lives beside the socket.
set -euo pipefail

socket="${DOCKER_SOCKET:-/var/run/docker.sock}"
export DOCKER_HOST="unix://$socket"
log() { echo "[docker-engine] $*" >&2; }
answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers; then exit 0; fi

as_root=()
if [[ "$(id -u)" != "0" ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  elif [[ -S "$socket" ]]; then
    log "an engine listens on $socket but this user may not use it: add the user to group $(stat -c %G "$socket") (sudo usermod -aG $(stat -c %G "$socket") $(id -un)) and log in again"
    exit 1
  else
    log "no Docker engine at $socket, and this user cannot install or start one (not root, no password-less sudo)"
    exit 1
  fi
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || { log "dockerd is not installed and there is no apt-get to install it: install Docker Engine (https://docs.docker.com/engine/install/)"; exit 1; }
  log "installing docker.io with apt"
  "${as_root[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq docker.io >&2
  # Its package starts the service where systemd runs.
  if answers; then log "Docker engine is up"; exit 0; fi
fi

default_socket=0
[[ "$socket" == /var/run/docker.sock || "$socket" == /run/docker.sock ]] && default_socket=1

if [[ $default_socket == 1 && -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
  log "starting the docker service (systemd)"
  "${as_root[@]}" systemctl start docker >&2 || true
else
  if [[ $default_socket == 1 ]]; then
    state_args=()
    pid_file=/var/run/docker.pid
    log_file=/tmp/sandpool-dockerd.log
  else
    dir="$(dirname "$socket")"
    "${as_root[@]}" mkdir -p "$dir"
    echo '{}' | "${as_root[@]}" tee "$dir/daemon.json" >/dev/null
    pid_file="$dir/docker.pid"
    log_file="$dir/dockerd.log"
    state_args=("--host=unix://$socket" "--data-root=$dir/data" "--exec-root=$dir/exec" "--pidfile=$pid_file" "--config-file=$dir/daemon.json")
  fi
  # A stale pid file from a killed daemon makes dockerd refuse to start.
  if [[ -f "$pid_file" ]] && ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    "${as_root[@]}" rm -f "$pid_file"
  fi
  if [[ ! -f "$pid_file" ]]; then
    log "starting dockerd on $socket (no iptables, no bridge: sandboxes run with NetworkMode none); log in $log_file"
    # The log is opened by the daemon's own (root) shell: the private state directory is root's.
    "${as_root[@]}" setsid -f bash -c 'log=$1; shift; exec "$@" >"$log" 2>&1 </dev/null' _ "$log_file" \
      dockerd --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 "${state_args[@]}"
  fi
fi

for _ in $(seq 1 60); do
  answers && { log "Docker engine is up"; exit 0; }
  sleep 1
done
log "the Docker engine did not come up on $socket; see ${log_file:-journalctl -u docker}"
[[ -n "${log_file:-}" ]] && tail -n 20 "$log_file" >&2
exit 1

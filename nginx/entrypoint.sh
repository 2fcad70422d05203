#!/bin/sh
# nginx in front of the replicas in docker-compose.scale.yml and the swarm
# stack, with the public nginx image or the one `npm run images` assembles
# from Debian's packages (nginx 1.22, whose upstream servers cannot `resolve`).
#
# nginx resolves the replicas' name (SANDPOOL_UPSTREAM_NAME, default app) only
# when it loads its configuration, and a recreated or rescheduled replica comes
# back at another address. So this renders sandpool.conf.template, starts
# nginx, and renders and reloads it whenever the set of addresses behind the
# name changes (looked up every SANDPOOL_RESOLVE_EVERY seconds, default 2). A
# reload starts new workers; connections open on the old ones stay until they
# close.
#
# Each address becomes a `server` line of its own (SANDPOOL_UPSTREAMS, port
# SANDPOOL_UPSTREAM_PORT, default 3000): nginx's `hash ... consistent` hashes
# over server lines, and the addresses behind one name would share a line and
# get round robin, so a user's requests (an MCP session's, Socket.IO polling)
# would not stay on one replica.
#
# Needs sh, envsubst, getent, sort and sleep: both images have them.
set -eu
here=${0%/*}
name=${SANDPOOL_UPSTREAM_NAME:-app}
port=${SANDPOOL_UPSTREAM_PORT:-3000}
server_args=${SANDPOOL_UPSTREAM_ARGS:-max_fails=1 fail_timeout=5s}
every=${SANDPOOL_RESOLVE_EVERY:-2}

addresses() {
  getent ahosts "$name" 2>/dev/null | while read -r address _; do echo "$address"; done | sort -u
}

# The configuration for these addresses. Only ${SANDPOOL_*} are replaced: nginx's own $variables stay.
render() {
  SANDPOOL_UPSTREAMS=$(for address in $1; do
    case $address in *:*) address="[$address]" ;; esac
    printf 'server %s:%s %s; ' "$address" "$port" "$server_args"
  done)
  export SANDPOOL_UPSTREAMS
  formats=$(export -p | while IFS= read -r line; do
    case $line in
      'export SANDPOOL_'*=*) assignment=${line#export }; printf '${%s} ' "${assignment%%=*}" ;;
    esac
  done)
  envsubst "$formats" <"$here/sandpool.conf.template" >/etc/nginx/conf.d/default.conf
}

# nginx refuses to start without an upstream server (no replica yet).
until [ -n "$(addresses)" ]; do
  echo "sandpool: waiting for $name to resolve" >&2
  sleep 1
done
known=$(addresses)
render "$known"
nginx -c "$here/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
# Running, and not a zombie this shell has yet to reap (kill -0 would say yes to one).
running() {
  [ -r "/proc/$nginx_pid/stat" ] && read -r _ _ state _ <"/proc/$nginx_pid/stat" && [ "$state" != Z ]
}
# QUIT: nginx's graceful stop (open requests finish).
trap 'kill -QUIT "$nginx_pid" 2>/dev/null || true' TERM QUIT INT

echo "sandpool: $name at" $known >&2
while running; do
  sleep "$every" &
  # A signal interrupts the wait, not the loop: nginx is asked to stop and the loop ends with it.
  wait $! || true
  now=$(addresses)
  if [ -n "$now" ] && [ "$now" != "$known" ]; then
    echo "sandpool: $name now at" $now "- reloading nginx" >&2
    render "$now"
    nginx -c "$here/nginx.conf" -s reload || true
    known=$now
  fi
done
wait "$nginx_pid"

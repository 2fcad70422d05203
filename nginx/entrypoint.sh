#!/bin/sh
# nginx in front of the replicas in docker-compose.scale.yml and the swarm
# stack, with the public nginx image or the one `npm run images` assembles
# from Debian's packages (nginx 1.22, whose upstream servers cannot `resolve`).
#
# nginx resolves the replicas' name (SANDPOOL_UPSTREAM_NAME, default app) only
# when it loads its configuration, and a recreated or rescheduled replica comes
# back at another address. So this renders sandpool.conf.template, starts
# nginx, and reloads it whenever the set of addresses behind the name changes
# (looked up every SANDPOOL_RESOLVE_EVERY seconds, default 2). A reload starts
# new workers; connections open on the old ones stay until they close.
#
# Needs sh, envsubst, getent, sort and sleep: both images have them.
set -eu
here=${0%/*}
name=${SANDPOOL_UPSTREAM_NAME:-app}
every=${SANDPOOL_RESOLVE_EVERY:-2}

# Only ${SANDPOOL_*} are replaced: nginx's own $variables stay.
formats=$(export -p | while IFS= read -r line; do
  case $line in
    'export SANDPOOL_'*=*) assignment=${line#export }; printf '${%s} ' "${assignment%%=*}" ;;
  esac
done)

addresses() {
  getent ahosts "$name" 2>/dev/null | while read -r address _; do echo "$address"; done | sort -u
}

# One `server` line per address, not one for the name: nginx's consistent hash
# places a server by the name written in its `server` line, so the addresses
# behind `server app:3000` would all share the same points and nginx would
# pick among them round-robin: users would not stick to a replica (seen on the
# swarm lab: the same ?uid= went to a different replica on each request).
# SANDPOOL_UPSTREAMS naming the service ("server app:3000 ...;") is repeated
# for each address; one that names no such server is used as it is.
template_upstreams=${SANDPOOL_UPSTREAMS:-}
render() {
  case $template_upstreams in
    *"server $name:"*)
      SANDPOOL_UPSTREAMS=$(for address in $(addresses); do
        case $address in *:*) address="[$address]" ;; esac
        # No sed in the image assembled from Debian's packages: the shell's own pattern removal.
        printf '%sserver %s:%s\n    ' "${template_upstreams%%"server $name:"*}" "$address" "${template_upstreams#*"server $name:"}"
      done)
      export SANDPOOL_UPSTREAMS ;;
  esac
  envsubst "$formats" <"$here/sandpool.conf.template" >/etc/nginx/conf.d/default.conf
}

# nginx refuses to start while an upstream name does not resolve (no replica yet).
until [ -n "$(addresses)" ]; do
  echo "sandpool: waiting for $name to resolve" >&2
  sleep 1
done
render
nginx -c "$here/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
# Running, and not a zombie this shell has yet to reap (kill -0 would say yes to one).
running() {
  [ -r "/proc/$nginx_pid/stat" ] && read -r _ _ state _ <"/proc/$nginx_pid/stat" && [ "$state" != Z ]
}
# QUIT: nginx's graceful stop (open requests finish).
trap 'kill -QUIT "$nginx_pid" 2>/dev/null || true' TERM QUIT INT

known=$(addresses)
echo "sandpool: $name at" $known >&2
while running; do
  sleep "$every" &
  # A signal interrupts the wait, not the loop: nginx is asked to stop and the loop ends with it.
  wait $! || true
  now=$(addresses)
  if [ -n "$now" ] && [ "$now" != "$known" ]; then
    echo "sandpool: $name now at" $now "- reloading nginx" >&2
    render
    nginx -c "$here/nginx.conf" -s reload || true
    known=$now
  fi
done
wait "$nginx_pid"

#!/usr/bin/env bash
# npm test: prepare the machine (scripts/setup.sh), compile, run every test
# with Node's built-in runner. Extra arguments are passed to `node --test`.
#
# Lanes run side by side, each one file at a time:
# - two shared-engine lanes: the integration tests that use the machine's
#   Docker engine. Each test narrows what it checks to its own replicas and
#   containers, so two files can share the engine; most of a file's time is
#   waiting (clusters starting, heartbeats, grace periods), not CPU. The
#   second lane's files are listed below, chosen so both lanes take about the
#   same time (test-output/file-times-*.txt of a run shows each file's);
#   a new file joins the first lane.
# - the third lane: tests that never touch that engine (the unit tier,
#   Redis-only tests, the process runtime, and start.test and
#   docker-restart.test, which bring up engines of their own), then a few
#   shared-engine files (listed below) in the time it has left.
# Then, once every lane is done, orphans.test alone: it counts what its
# replica's start-up sweep removes, and any replica starting elsewhere sweeps
# the same orphans.
# The first lane reports as it goes; the other lanes' reports follow it.
# Where the time went, per file: test-output/file-times-*.txt, printed at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
npx tsc -p .
mkdir -p test-output

it=dist/test/integration
isolated=(dist/test/unit/*.test.js "$it/start.test.js" "$it/docker-restart.test.js" "$it/process-runtime.test.js"
  "$it/state-redis.test.js" "$it/redis-memory.test.js" "$it/quota-redis.test.js")
second=("$it/load-smoke.test.js" "$it/workspaces.test.js" "$it/cluster.test.js" "$it/mcp-gateway.test.js"
  "$it/pool.test.js" "$it/mcp-notifications.test.js" "$it/sandbox-limits.test.js" "$it/images.test.js")
# Shared-engine files the third lane runs after its own.
third_tail=("$it/http.test.js" "$it/agent.test.js")
# Alone, after every lane: orphans.test counts what its replica's start-up sweep removes, and any replica
# starting on the host sweeps the same orphans.
alone=("$it/orphans.test.js")
first=()
for f in "$it"/*.test.js; do
  [[ " ${isolated[*]} ${second[*]} ${third_tail[*]} ${alone[*]} " == *" $f "* ]] || first+=("$f")
done
times=./dist/scripts/lib/test-file-times.js

# lane NAME FILES...: a runner writing its report to test-output/NAME.log (stdout for "shared-1").
lane() {
  local name=$1
  shift
  local destination=test-output/$name.log
  [[ $name == shared-1 ]] && destination=stdout
  node --test --test-concurrency=1 "${extra[@]}" \
    --test-reporter=spec --test-reporter-destination="$destination" \
    --test-reporter="$times" --test-reporter-destination="test-output/file-times-$name.txt" \
    "$@"
}
extra=("$@")

started=$SECONDS
set +e
lane third "${isolated[@]}" "${third_tail[@]}" &
isolated_pid=$!
lane shared-2 "${second[@]}" &
second_pid=$!
lane shared-1 "${first[@]}"
first_rc=$?
wait "$second_pid"
second_rc=$?
wait "$isolated_pid"
isolated_rc=$?
lane alone "${alone[@]}"
alone_rc=$?
set -e
for name in shared-2 third alone; do
  echo
  echo "== lane $name =="
  cat "test-output/$name.log"
done
for name in shared-1 shared-2 third alone; do
  echo "== where the time went: lane $name =="
  cat "test-output/file-times-$name.txt"
done
echo "npm test: $((SECONDS - started)) s of tests; lanes exit: shared-1 $first_rc, shared-2 $second_rc, third $isolated_rc, alone $alone_rc"
[[ $first_rc -eq 0 && $second_rc -eq 0 && $alone_rc -eq 0 && $isolated_rc -eq 0 ]]

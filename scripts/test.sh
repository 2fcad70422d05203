#!/usr/bin/env bash
# npm test: prepare the machine (scripts/setup.sh), compile, run every test
# with Node's built-in runner. Extra arguments are passed to `node --test`.
#
# Two lanes run side by side, each one file at a time:
# - the shared-engine lane: every test that uses the machine's Docker engine
#   (one after another: they share the engine and two cores, and
#   docker-restart.test restarts that engine under everyone on it);
# - the isolated lane: tests that never touch that engine (the unit tier,
#   Redis-only tests, the process runtime, and start.test, which brings up an
#   engine of its own). Its report is printed after the first lane's.
# Where the time went, per file: test-output/file-times-*.txt.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
npx tsc -p .
mkdir -p test-output

isolated=(dist/test/unit/*.test.js
  dist/test/integration/start.test.js
  dist/test/integration/process-runtime.test.js
  dist/test/integration/state-redis.test.js
  dist/test/integration/redis-memory.test.js
  dist/test/integration/quota-redis.test.js)
shared=()
for f in dist/test/integration/*.test.js; do
  [[ " ${isolated[*]} " == *" $f "* ]] || shared+=("$f")
done
times=./dist/scripts/lib/test-file-times.js

started=$SECONDS
node --test --test-concurrency=1 "$@" \
  --test-reporter=spec --test-reporter-destination=test-output/isolated-lane.log \
  --test-reporter="$times" --test-reporter-destination=test-output/file-times-isolated.txt \
  "${isolated[@]}" &
isolated_pid=$!
set +e
node --test --test-concurrency=1 "$@" \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter="$times" --test-reporter-destination=test-output/file-times-shared.txt \
  "${shared[@]}"
shared_rc=$?
wait "$isolated_pid"
isolated_rc=$?
set -e
echo
echo "== isolated lane (unit tier, Redis-only, process runtime, private engine) =="
cat test-output/isolated-lane.log
echo
echo "== where the time went: shared-engine lane =="
cat test-output/file-times-shared.txt
echo "== isolated lane =="
cat test-output/file-times-isolated.txt
echo "npm test: $((SECONDS - started)) s of tests; shared-engine lane exit $shared_rc, isolated lane exit $isolated_rc"
[[ $shared_rc -eq 0 && $isolated_rc -eq 0 ]]

#!/usr/bin/env bash
# npm test: prepare the machine (scripts/setup.sh), compile, run every test
# with Node's built-in runner (through scripts/lib/run-tests.ts, which keeps
# the order below). Extra arguments go to it (`--test-name-pattern RE`).
#
# One runner takes every file but two, three at a time: a file starts as soon
# as one of the three ends. Files that use the machine's Docker engine share
# it: each narrows what it checks to its own replicas and containers, and most
# of a file's time is waiting (clusters starting, heartbeats, grace periods),
# not CPU. The longest files go first (`slowest` below, longest first, from
# test-output/file-times.txt of a run) so the short ones fill the end instead
# of one long file running alone; files not listed follow, the unit tier last.
# Then docker-restart.test and orphans.test alone: one restarts the shared
# engine under whatever runs on it, the other counts what a start-up sweep
# removes (any replica starting elsewhere sweeps too).
# Where the time went, per file: test-output/file-times.txt and
# test-output/file-times-alone.txt, printed at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
npx tsc -p .
mkdir -p test-output

it=dist/test/integration
slowest=(load-smoke park quotas start workspaces mcp-gateway-nginx mcp-gateway pool chat cluster
  cluster-trust browser http mcp-notifications images socket-proxy overflow)
alone=("$it/orphans.test.js" "$it/docker-restart.test.js")
files=()
for name in "${slowest[@]}"; do files+=("$it/$name.test.js"); done
for f in "$it"/*.test.js dist/test/unit/*.test.js; do
  [[ " ${files[*]} ${alone[*]} " == *" $f "* ]] || files+=("$f")
done
runner=dist/scripts/lib/run-tests.js

started=$SECONDS
set +e
node "$runner" --concurrency 3 --times test-output/file-times.txt "$@" "${files[@]}"
rc=$?
node "$runner" --concurrency 1 --times test-output/file-times-alone.txt "$@" "${alone[@]}"
alone_rc=$?
set -e
echo "== where the time went =="
cat test-output/file-times.txt
echo "== where the time went: alone =="
cat test-output/file-times-alone.txt
echo "npm test: $((SECONDS - started)) s of tests; exit: three at a time $rc, alone $alone_rc"
[[ $rc -eq 0 && $alone_rc -eq 0 ]]

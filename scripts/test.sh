#!/usr/bin/env bash
# npm test: prepare the machine (scripts/setup.sh), compile, run every test
# with Node's built-in runner. Extra arguments are passed to `node --test`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
npx tsc -p .
mkdir -p test-output
# Test files run one after another: they share one Docker engine and two cores,
# and parallel container churn would only make each of them slower.
exec node --test --test-concurrency=1 --test-reporter=spec "$@" $(ls dist/test/unit/*.test.js dist/test/integration/*.test.js)

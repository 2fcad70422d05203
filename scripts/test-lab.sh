#!/usr/bin/env bash
# npm run test:lab: the stack on a three-node Docker Swarm of network
# namespaces on this machine (test/deploy/lab.test.ts, docs/multi-node.md).
# Prepares the machine like npm run test:deploy, then runs the lab test alone.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
npx tsc -p .
scripts/images.sh
exec node --test --test-concurrency=1 --test-reporter=spec "$@" dist/test/deploy/lab.test.js

#!/usr/bin/env bash
# npm run test:deploy: the deployments end to end (test/deploy): both compose
# files, the monitoring profile, the swarm stack, and the lab (the stack on a
# three-node swarm of network namespaces, docs/multi-node.md), on the images
# `npm run images` builds. Prepares the machine like npm test
# (scripts/setup.sh), compiles, builds the images, then runs the files one
# after another, in name order (each brings a whole stack up; the lab's own
# engines share nothing with the others' stacks).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
npx tsc -p .
scripts/images.sh
exec node --test --test-concurrency=1 --test-reporter=spec "$@" dist/test/deploy/*.test.js

#!/usr/bin/env bash
# npm run test:deploy: the deployments end to end (test/deploy): both compose
# files, the monitoring profile and the swarm stack, on the images `npm run
# images` builds. Prepares the machine like npm test (scripts/setup.sh),
# compiles, builds the images, then runs the files one after another (each
# brings a whole stack up).
# The lab (the stack on a three-node swarm of network namespaces,
# docs/multi-node.md) is `npm run test:lab`: inside a fresh-clone test:deploy
# its partition step was once taken by swarm for a node loss, so it does not
# gate every change until it has passed there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
npx tsc -p .
scripts/images.sh
exec node --test --test-concurrency=1 --test-reporter=spec "$@" $(ls dist/test/deploy/*.test.js | grep -v /lab.test.js)

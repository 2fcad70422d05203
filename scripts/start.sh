#!/usr/bin/env bash
# npm start: compile; make sure a Docker engine answers, installing and
# starting it when this user may (scripts/lib/docker-engine.sh, as npm test
# does); build the sandbox image; then run the server in the foreground
# (exec: signals reach node directly). Where no engine can be had,
# POOL_RUNTIME=auto serves unisolated child processes, and this says so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The docker CLI (engine check, image build) talks to the engine the server will use.
if [[ -n "${DOCKER_SOCKET:-}" ]]; then export DOCKER_HOST="unix://$DOCKER_SOCKET"; fi
npx tsc -p .
if [[ "${POOL_RUNTIME:-auto}" == "process" ]]; then
  echo "[start] POOL_RUNTIME=process: sandboxes are child processes (NOT isolated)" >&2
elif scripts/lib/docker-engine.sh; then
  pool/build.sh
else
  {
    echo "[start] ************************************************************************"
    echo "[start] no Docker engine answers, and none could be started (see above):"
    echo "[start] POOL_RUNTIME=auto will run sandboxes as plain child processes, NOT isolated."
    echo "[start] Do not let anyone you do not trust use this server."
    echo "[start] ************************************************************************"
  } >&2
fi
exec node dist/src/main.js

#!/usr/bin/env bash
# npm start: compile, build the sandbox image when a Docker engine answers,
# then run the server in the foreground (exec: signals reach node directly).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
npx tsc -p .
if docker info >/dev/null 2>&1; then
  pool/build.sh
else
  echo "[start] no Docker engine answers: POOL_RUNTIME=auto will use the process runtime (NOT isolated)" >&2
fi
exec node dist/src/main.js

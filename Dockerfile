# sandpool app image (multi-stage, non-root). The sandboxes it starts come from
# pool/Dockerfile; in the compose files and the swarm stack the same image also
# runs the Docker socket proxy (src/socket-proxy), the only process that sees
# the engine's socket.
ARG NODE_IMAGE=node:26.12.1-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# scripts/images.sh, when no registry serves NODE_IMAGE, builds on a base with
# no npm and no network: it puts prebuilt/ in the context (node_modules for
# production and dist/, made on the host, where the npm registry answers), and
# the two steps below find nothing to do. A plain build has no prebuilt/.
COPY package.json package-lock.json prebuil[t] ./
RUN [ -d node_modules ] || npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
COPY test ./test
# Tests compile with the rest (one tsconfig) but do not ship.
RUN [ -f dist/src/main.js ] || (npx tsc -p . && rm -rf dist/test && npm prune --omit=dev --ignore-scripts)

FROM ${NODE_IMAGE}
ENV NODE_ENV=production PORT=3000
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY web ./web
# Where the Docker socket proxy listens; a named volume mounted here starts
# with this owner (node, 1000), so the unprivileged proxy can create its
# socket. Node rather than mkdir/chown: the offline base has no coreutils.
# The same for the users' workspace snapshots of a single replica (WORKSPACE_STORE=fs).
RUN node -e "const fs = require('node:fs'); for (const d of ['/run/sandpool', '/var/lib/sandpool/workspaces']) { fs.mkdirSync(d, { recursive: true }); fs.chownSync(d, 1000, 1000); }"
# Only the proxy gets the engine's socket, and its group at run time (user node:DOCKER_GID).
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/main.js"]

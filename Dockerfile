# sandpool app image (multi-stage, non-root). The sandboxes it starts come from
# pool/Dockerfile; this container talks to the host's Docker engine through
# the mounted socket.
ARG NODE_IMAGE=node:26.12.1-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
COPY test ./test
# Tests compile with the rest (one tsconfig) but do not ship.
RUN npx tsc -p . && rm -rf dist/test && npm prune --omit=dev --ignore-scripts

FROM ${NODE_IMAGE}
ENV NODE_ENV=production PORT=3000
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY web ./web
# Where the Docker socket proxy (compose service docker-proxy) listens; a named
# volume mounted here starts with this owner, so the unprivileged proxy can create its socket.
RUN mkdir -p /run/sandpool && chown node:node /run/sandpool
# Only the proxy gets the engine's socket, and its group at run time (group_add: DOCKER_GID).
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/main.js"]

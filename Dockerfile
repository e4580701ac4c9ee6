# syntax=docker/dockerfile:1
# The mesh-sidecar image: `docker build -t mesh-sidecar .` then
# `docker run --rm -p 15000:15000 -p 15006:15006 -e APP_URL=http://host.docker.internal:8080 mesh-sidecar`.
# Two stages: the first installs every dependency and compiles the TypeScript; the second holds
# only the compiled code, the config schema and the production dependencies, runs as a non-root
# numeric user (so Kubernetes' runAsNonRoot can verify it) and writes nothing outside /tmp, so it
# runs with a read-only root filesystem.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Dependencies first, so the layer is reused while only the sources change. No install scripts:
# the build needs none, and the dev-only native addons would need a compiler.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY schemas ./schemas
COPY services ./services
COPY proxy ./proxy
COPY bridge ./bridge
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mesh-sidecar" \
      org.opencontainers.image.description="HTTP ingress/egress proxy and REST-to-Kafka bridge, one per pod" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and not writable by the runtime user: the code cannot be changed at run time.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/schemas ./schemas
USER 65532:65532
# admin (probes, metrics), egress, bridge, ingress: see the README's listener table.
EXPOSE 15000 15001 15002 15006
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:15000/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node flags: services/sidecar/node-flags.ts says why (a test keeps the two the same).
ENTRYPOINT ["node", "--max-semi-space-size=32", "--no-allocation-site-pretenuring", "/app/dist/services/sidecar/bin.js"]

# Fieldseal's container image: see docs/operations.md ("Container image") for how to build and run it.
#
# Build stage: the locked dependencies (dev ones too, for the TypeScript compiler), the compiled dist/,
# then scripts/runtime-layout.sh assembles exactly what the runtime stage holds (the test
# test/deploy/runtime-layout.test.ts runs the same script and this file's ENTRYPOINT, CMD and ENV).
FROM node:26.10.0-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: the `node` and `@bufbuild/buf` dev packages only fetch binaries this build does not
# use (the image's own node compiles; gen/ is committed).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY gen ./gen
COPY src ./src
COPY scripts/runtime-layout.sh ./scripts/runtime-layout.sh
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json \
  && bash scripts/runtime-layout.sh /src /runtime

# Runtime stage: node, the production dependencies and the compiled output, owned by root and read-only;
# the server runs as an unprivileged numeric user and writes only to FIELDSEAL_DATA_DIR (a volume when
# the key store is local; nothing at all with the aws key store and a mounted config file).
FROM node:26.10.0-bookworm-slim
ENV NODE_ENV=production \
    FIELDSEAL_HOST=0.0.0.0 \
    FIELDSEAL_PORT=7070 \
    FIELDSEAL_DATA_DIR=/var/lib/fieldseal
COPY --from=build /runtime /app
# The server needs node only: npm, npx and the package managers the base image carries are removed, so
# neither they nor their bundled dependencies (which image scanners report) are in the runtime image.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /opt/yarn-* \
    /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg \
  && mkdir -p /var/lib/fieldseal && chown 65532:65532 /var/lib/fieldseal && chmod 0700 /var/lib/fieldseal
WORKDIR /app
USER 65532:65532
EXPOSE 7070
# Exec form, no shell and no init: node is PID 1 and receives SIGTERM itself. `fieldseal serve` handles
# SIGTERM and SIGINT (drain, then exit 0) and SIGHUP (reload principals); it starts no child processes,
# so there are no zombies to reap. Kubernetes probes gRPC health, /readyz and /healthz (the Helm chart);
# for plain Docker, docs/operations.md shows a HEALTHCHECK line.
ENTRYPOINT ["node", "/app/bin/fieldseal.js"]
CMD ["serve"]

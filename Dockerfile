# syntax=docker/dockerfile:1
# convserve in a container: the HTTP API (`convserve serve`, the default command) or a job worker
# (`convserve worker --concurrency 1`, see compose.yaml). Models live in the /models volume, jobs in /data.
#
#   docker build -t convserve .
#   docker run -p 8080:8080 -v convserve-models:/models -v convserve-data:/data \
#     -e CONVSERVE_API_KEYS_FILE=/run/secrets/api-keys.json convserve
#
# The build reaches the npm registry only. onnxruntime-node's install script, which would download the CUDA
# execution provider from NuGet, is not run (npm ci --ignore-scripts); sharp and esbuild need no install
# script (their binaries are npm packages of their own).
#
# CUDA variant (build arg ONNXRUNTIME_NODE_INSTALL=cuda12): runs onnxruntime-node's installer for the CUDA 12
# provider in the runtime stage (it downloads from NuGet), on a base image with CUDA 12, cuDNN 9 and Node:
#   docker build --build-arg ONNXRUNTIME_NODE_INSTALL=cuda12 \
#     --build-arg RUNTIME_IMAGE=<a CUDA 12 + cuDNN 9 runtime image with Node 22> -t convserve:cuda .
#   docker run --gpus all … convserve:cuda

ARG NODE_IMAGE=node:22-bookworm-slim
ARG RUNTIME_IMAGE=${NODE_IMAGE}

# ---- build: all dependencies, TypeScript → dist/ (server, CLI, web page bundle)
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
COPY web ./web
RUN npm run build

# ---- runtime: production dependencies and the built files, as a non-root user
FROM ${RUNTIME_IMAGE} AS runtime
# "skip": CPU only, nothing downloaded. "cuda12": the CUDA 12 execution provider (see above).
ARG ONNXRUNTIME_NODE_INSTALL=skip
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && if [ "$ONNXRUNTIME_NODE_INSTALL" != "skip" ]; then \
      node node_modules/onnxruntime-node/script/install.js "--onnxruntime-node-install=$ONNXRUNTIME_NODE_INSTALL"; \
    fi \
 && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY samples ./samples
# The committed MNIST model, so that a new models volume starts with it (Docker copies it into an empty volume).
COPY models/mnist-cnn /models/mnist-cnn
RUN mkdir -p /data && chown -R node:node /models /data

# Listening on every interface makes the API reachable from outside the container: API keys are then required.
# Give them with CONVSERVE_API_KEYS_FILE (a JSON file of key ids, SHA-256 hashes and scopes, e.g. a mounted
# secret) or CONVSERVE_API_KEYS (the same JSON inline); `convserve keys add <id>` creates one.
# glibc malloc: big blocks mapped on their own and unmapped when freed, free heap tops returned, two heaps for all
# threads, so the memory of a load goes back to the OS afterwards (docs/memory.md has the measurements).
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    CONVSERVE_MODELS_DIR=/models \
    CONVSERVE_DATA_DIR=/data \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    MALLOC_TRIM_THRESHOLD_=131072
VOLUME ["/models", "/data"]
EXPOSE 8080
USER node

# Liveness of the API role, with the Node the image already has (slim images have no curl).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# SIGTERM (docker stop) lets in-flight requests finish and checkpoints running jobs before exiting.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]

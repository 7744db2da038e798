#!/usr/bin/env bash
# Makes a fresh clone runnable: npm dependencies, the TypeScript build, and `tfos setup`
# (Spark, Hadoop, Livy, native TensorFlow). Every step is skipped when already done, and all
# downloads are cached outside the repository (~/.npm, pip's and Maven's caches, TFOS_HOME).
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=node_modules/.tfos-installed
if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "[tfos] installing npm dependencies" >&2
  # --ignore-scripts: @tensorflow/tfjs-node's own installer downloads libtensorflow from a host
  # that may be unreachable; `tfos setup` runs that installer itself and falls back to PyPI's build.
  npm ci --ignore-scripts --no-audit --no-fund >&2
  touch "$stamp"
fi

echo "[tfos] compiling TypeScript" >&2
npx --no-install tsc -p tsconfig.json

node bin/tfos.js setup "$@" >&2

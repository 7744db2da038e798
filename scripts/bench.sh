#!/usr/bin/env bash
# `npm run bench [-- name ...]`: benchmarks (startup, allreduce, feed, ingest, step; cifar10 and
# step-levers when named), tables (.md) and rows (.json) in bench-results/.
# Uses the local stack when it is up (more routes measured); never starts or stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
node dist/bench/main.js "$@"

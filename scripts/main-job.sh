#!/usr/bin/env bash
# The README's main job (`npm start`): trains the CIFAR-10 example (the seed experiment's CNN) on an
# embedded local Spark cluster of 2 TF workers (all-reduce) for a few minutes, with one progress bar
# for the cluster, and ends by printing the test accuracy (full 10,000-image test split) and where
# the plot, the TensorBoard logs and the model are. Installs what is missing first; the dataset is
# ingested once into the cache (TFOS_HOME) from ../shared/datasets/cifar10, or generated when absent.
# Extra arguments go to the training function (examples/cifar10/train.ts), e.g.
#   npm start -- --model fast --epochs 10 --max-steps 100000
# A run started with the --model-dir of an earlier one resumes from its newest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

home="${TFOS_HOME:-$HOME/.cache/tfjs-on-spark}"
data="$home/data/cifar10"
src="${TFOS_CIFAR10_DIR:-../shared/datasets/cifar10}"
if [ ! -f "$data/train/_SUCCESS" ] || [ ! -f "$data/test/_SUCCESS" ]; then
  echo "[tfos] ingesting CIFAR-10 into $data" >&2
  node bin/tfos.js data cifar10 --src "$src" --dest "$data" --overwrite >&2
fi
run="${TFOS_RUN_DIR:-$home/runs/cifar10-$(date -u +%Y%m%d-%H%M%S)}"

exec node bin/tfos.js run dist/examples/cifar10/train.js --via local --cluster-size "${TFOS_WORKERS:-2}" \
  -- --data "file://$data" --model seed --epochs 1 --max-steps 300 --batch 128 --eval-every 100 \
  --checkpoint-every 100 --model-dir "$run/model" --log-dir "$run/logs" "$@"

#!/usr/bin/env bash
# The README's main job (`npm start`): trains the CIFAR-10 example on an embedded local Spark
# cluster (2 TF workers, all-reduce). Installs what is missing first; the dataset is ingested
# once into the cache (TFOS_HOME) from ../shared/datasets/cifar10, or generated when that is absent.
# Extra arguments go to the training function, e.g. `npm start -- --epochs 2 --max-steps 100`.
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

exec node bin/tfos.js run examples/cifar10/train.js --via local --cluster-size "${TFOS_WORKERS:-2}" \
  -- --data "file://$data" --epochs 1 --batch 64 "$@"

#!/usr/bin/env bash
# Spark resource discovery script for GPUs (spark.{worker,executor}.resource.gpu.discoveryScript):
# prints this machine's NVIDIA GPU indexes in the JSON form Spark expects.
set -euo pipefail
ids=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ' | paste -sd, - || true)
printf '{"name":"gpu","addresses":[%s]}\n' "$(echo "$ids" | sed -E 's/([0-9]+)/"\1"/g')"

#!/usr/bin/env bash
# `npm run lint`: ESLint (typescript-eslint, type-checked), Prettier, and ruff for the Python that
# runs inside Spark. ruff comes from PyPI into its own small environment under TFOS_HOME (once).
set -euo pipefail
cd "$(dirname "$0")/.."

RUFF_VERSION=0.17.5
lint_env="${TFOS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tfjs-on-spark}/lint-python"
ruff="$lint_env/bin/ruff"
if [ ! -x "$ruff" ] || [ "$("$ruff" --version)" != "ruff $RUFF_VERSION" ]; then
  echo "[tfos] installing ruff $RUFF_VERSION into $lint_env (once)" >&2
  rm -rf "$lint_env"
  python3 -m venv "$lint_env"
  "$lint_env/bin/python" -m pip install -q --disable-pip-version-check "ruff==$RUFF_VERSION" >&2
fi

echo "[tfos] eslint" >&2
npx --no-install eslint .
echo "[tfos] prettier --check" >&2
npx --no-install prettier --check --log-level warn .
echo "[tfos] ruff" >&2
"$ruff" check .
"$ruff" format --check .

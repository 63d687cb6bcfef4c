#!/usr/bin/env bash
# Installs uv if it is missing, then the locked Python environment (.venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v uv >/dev/null 2>&1; then
  echo "[setup] installing uv from PyPI"
  python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --frozen --quiet
# The rep console's front end (console/web), bundled with esbuild from npm.
bash scripts/build-console.sh

#!/usr/bin/env bash
# Bundles the rep console's front end (console/web: TypeScript and livekit-client from npm)
# into console/web/dist/app.js with esbuild. npm packages are installed only when
# package-lock.json changed since the last install (its hash is kept in node_modules).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../console/web"
command -v npm >/dev/null 2>&1 || { echo "[console] npm (Node.js >= 18) is required" >&2; exit 1; }
lock_hash=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat node_modules/.lock-hash 2>/dev/null)" != "$lock_hash" ]; then
  echo "[console] npm ci (package-lock.json changed)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.lock-hash
fi
npm run --silent build

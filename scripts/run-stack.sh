#!/usr/bin/env bash
# Runs the local LiveKit stack (redis, livekit-server, livekit-sip) in the foreground on
# loopback until Ctrl-C. Arguments go to `python -m localstack` (see --help), e.g.
#   scripts/run-stack.sh --no-sip        # without the SIP bridge
#   scripts/run-stack.sh --free-ports    # beside another running stack
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec uv run python -m localstack "$@"

#!/usr/bin/env bash
# The project's main job: sets up .venv if needed (scripts/setup.sh), builds the tiny demo checkpoint if absent and
# runs the full stack (controller + simulated arm, simulated cameras, policy node, websocket bridge) until Ctrl-C.
# Arguments go to lerobot-ros-demo (e.g. scripts/demo.sh --duration 30).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/lerobot-ros-demo" "$@"

#!/usr/bin/env bash
# The project's test command: sets up .venv if needed (scripts/setup.sh), then runs the whole pytest suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k controller -x).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"

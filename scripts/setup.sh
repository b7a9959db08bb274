#!/usr/bin/env bash
# Builds (or refreshes) the project's virtual environment .venv from scratch on a machine with no ROS install:
# Python 3.12, the pinned requirements.lock (lerobot, torch, ROS 2 wheels, ...), the lerobot_ros_msgs interfaces built
# with cmake into the venv prefix, and this package in editable mode. Re-running it is a no-op when nothing changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${LEROBOT_ROS_VENV:-$ROOT/.venv}
STAMP=$VENV/.lerobot_ros_setup_stamp

step() { printf '\n[setup %s] %s\n' "$1" "$2"; }

find_python312() {
  local c
  for c in "${PYTHON312:-}" "$(command -v python3.12 || true)" \
           "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.12.*/bin/python3.12; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}

# What the venv depends on: if none of it changed since the last successful run, there is nothing to do.
fingerprint() {
  (cd "$ROOT" && cat requirements.lock scripts/setup.sh setup.py setup.cfg package.xml msg/CMakeLists.txt msg/package.xml msg/msg/*.msg) \
    | sha256sum | cut -d' ' -f1
}

want=$(fingerprint)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "[setup] $VENV is up to date (delete $STAMP to force a rebuild)"
  exit 0
fi

step 1/5 "finding Python 3.12 (lerobot 0.6 needs it)"
if ! PY=$(find_python312); then
  echo "ERROR: Python 3.12 not found. Install it (e.g. 'pyenv install 3.12') or set PYTHON312=/path/to/python3.12." >&2
  exit 1
fi
echo "using $PY"

step 2/5 "creating $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip==25.3

step 3/5 "installing pinned dependencies (first run downloads ~5 GB: torch + CUDA libs, lerobot, ROS 2 wheels)"
# --no-deps: the lock is complete; it also lets openpi-client (which pins numpy<2) sit beside lerobot (numpy>=2).
"$VENV/bin/python" -m pip install --no-deps --progress-bar off -r "$ROOT/requirements.lock" 2>&1 \
  | grep -vE "^(WARNING: Location|Looking in|Requirement already satisfied)" || true
"$VENV/bin/python" -c "import lerobot, torch, rclpy, openpi_client" \
  || { echo "ERROR: dependency install incomplete (see pip output above)" >&2; exit 1; }

step 4/5 "building the lerobot_ros_msgs interfaces into the venv"
# The ROS wheels' exported CMake files name the build farm's Python; point them at this venv's (see README).
PYINC=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NPINC=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
{ grep -rlZ "/opt/python/cp3" "$VENV/share" --include='*.cmake' 2>/dev/null || true; } \
  | xargs -0 -r sed -i -E \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NPINC#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$PYINC#g"
BUILD=$ROOT/build/msg
mkdir -p "$ROOT/build"
rm -rf "$BUILD"
(
  export PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" VIRTUAL_ENV="$VENV"
  cmake -S "$ROOT/msg" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
        -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release > "$ROOT/build/msg-cmake.log" 2>&1 \
    || { tail -40 "$ROOT/build/msg-cmake.log"; exit 1; }
  cmake --build "$BUILD" -j"$(nproc)" >> "$ROOT/build/msg-cmake.log" 2>&1 || { tail -40 "$ROOT/build/msg-cmake.log"; exit 1; }
  cmake --install "$BUILD" >> "$ROOT/build/msg-cmake.log" 2>&1 || { tail -40 "$ROOT/build/msg-cmake.log"; exit 1; }
)
"$VENV/bin/python" -c "from lerobot_ros_msgs.msg import ActionChunk, ControllerStatus, ObservationSummary" \
  || { echo "ERROR: lerobot_ros_msgs built but does not import; see build/msg-cmake.log" >&2; exit 1; }

step 5/5 "installing lerobot_ros (editable)"
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import lerobot_serve_ros, lerobot_control_ros"

# colcon (on a robot: `colcon build` from the repo root) must not take the venv's or our build's ROS packages for
# workspace packages.
touch "$VENV/COLCON_IGNORE" "$ROOT/build/COLCON_IGNORE"

echo "$want" > "$STAMP"
echo
echo "[setup] done: $VENV"

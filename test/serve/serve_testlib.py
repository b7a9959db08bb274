"""Helpers shared by the serve tests and the serve benchmark: free ports, /healthz polling, synthetic observations,
a `lerobot-serve` child process stopped by pid."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from lerobot_serve_ros.ros_env import ManagedProcess, free_port, python_module_cmd  # noqa: F401 (free_port re-exported to the tests)


def healthz(port: int, timeout: float = 2.0) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as r:
        return json.loads(r.read())


def wait_healthy(port: int, proc: ManagedProcess | None = None, deadline_s: float = 90.0) -> dict:
    """Poll /healthz until it answers (model load + warm-up take seconds on busy cores)."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"lerobot-serve exited early:\n{proc.log_tail(40)}")
        try:
            return healthz(port)
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"lerobot-serve not healthy on port {port} within {deadline_s} s ({last})"
                       + (f"\n{proc.log_tail(40)}" if proc else ""))


def make_obs(meta: dict, seed: int = 0, size: tuple[int, int] | None = None) -> dict:
    rng = np.random.default_rng(seed)
    obs = {}
    for key, shape in meta["image_shapes"].items():
        shp = (*size, 3) if size else tuple(shape)
        obs[key] = rng.integers(0, 256, shp, dtype=np.uint8)
    if meta.get("state_key"):
        obs[meta["state_key"]] = rng.uniform(-1, 1, meta["state_dim"]).astype(np.float32)
    return obs


class ServeProcess:
    """A `lerobot-serve` child process on 127.0.0.1, stopped by pid."""

    def __init__(self, checkpoint: Path, log_dir: Path, *extra: str):
        self.port = free_port()
        self.proc = ManagedProcess(
            args=python_module_cmd("lerobot_serve_ros.serve_cli", f"--policy.path={checkpoint}",
                                   "--policy.device=cpu", "--host=127.0.0.1", f"--port={self.port}", *extra),
            env=os.environ.copy(), log_path=log_dir / f"serve_{self.port}.log",
            name=f"lerobot-serve:{self.port}")

    def start(self) -> "ServeProcess":
        self.proc.start()
        wait_healthy(self.port, self.proc)
        return self

    def stop(self) -> int | None:
        return self.proc.stop()

"""Keeping ROS 2 processes we start on this machine, isolated, and cleaned up (no rclpy import).

Tests, benchmarks and the demo all start real ROS processes. Fast DDS otherwise multicasts discovery out of the real
network interface and shares one domain with every other run, so each run gets: loopback-only discovery, a
loopback-only Fast DDS profile (UDP on 127.0.0.1 + 16 MiB shared-memory segments for images), and its own
ROS_DOMAIN_ID. Processes are stopped by the pid we started, never by name, and the /dev/shm files Fast DDS leaves
behind after a kill -9 are removed.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

FASTDDS_PROFILE_NAME = "fastdds_localhost.xml"
_SHM_PREFIXES = ("fastrtps_", "fastdds_", "sem.fastrtps_", "sem.fastdds_")


def fastdds_profile_path() -> Path:
    """The loopback-only profile: from the source tree, or from the installed share/ when colcon-installed."""
    here = Path(__file__).resolve().parent.parent / "config" / FASTDDS_PROFILE_NAME
    if here.exists():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("lerobot_ros")) / "config" / FASTDDS_PROFILE_NAME
    except Exception as exc:  # pragma: no cover - only on a broken install
        raise FileNotFoundError(f"{FASTDDS_PROFILE_NAME} not found next to the package nor in its share/") from exc


_CLAIM_DIR = Path("/tmp/lerobot_ros_domain_ids")
_claimed: list[int] = []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pick_domain_id() -> int:
    """A ROS_DOMAIN_ID no other live process of ours holds (valid ids on Linux are 0..101; 0 is everyone's default).

    Claims are files /tmp/lerobot_ros_domain_ids/<id> holding the claimer's pid; a claim whose pid is dead is free
    again. A process never gets the same id twice while others are free, so a test's leftovers can't hear the next.
    """
    _CLAIM_DIR.mkdir(parents=True, exist_ok=True)
    candidates = list(range(1, 102))
    random.Random(os.getpid() ^ time.monotonic_ns()).shuffle(candidates)
    candidates.sort(key=lambda i: i in _claimed)  # ids this process already used go last
    for domain_id in candidates:
        claim = _CLAIM_DIR / str(domain_id)
        try:
            holder = int(claim.read_text() or 0)
        except (FileNotFoundError, ValueError):
            holder = 0
        if holder and holder != os.getpid() and _pid_alive(holder):
            continue
        claim.write_text(str(os.getpid()))
        _claimed.append(domain_id)
        return domain_id
    raise RuntimeError("all ROS domain ids 1..101 are claimed by live processes; see /tmp/lerobot_ros_domain_ids")


def localhost_ros_env(domain_id: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """A full environment for a ROS process confined to loopback in its own domain.

    Starts from `base` (default: os.environ) so LD_LIBRARY_PATH and the venv's ROS-wheel bootstrap survive.
    """
    env = dict(os.environ if base is None else base)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(pick_domain_id() if domain_id is None else domain_id)
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(fastdds_profile_path())
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def shm_snapshot() -> set[str]:
    """Names of Fast DDS files in /dev/shm now; pass to `cleanup_shm` later to remove only what appeared since."""
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith(_SHM_PREFIXES)}
    except FileNotFoundError:
        return set()


def shm_in_use() -> set[str]:
    """Fast DDS /dev/shm names some live process has open or mapped (other runs on this machine included)."""
    used: set[str] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/maps") as f:
                used.update(line.rsplit("/dev/shm/", 1)[1].strip() for line in f if "/dev/shm/" in line)
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("/dev/shm/"):
                    used.add(target[len("/dev/shm/"):])
        except OSError:  # gone meanwhile, or not ours to read
            continue
    used = {n.removesuffix(" (deleted)") for n in used}
    # a port's named mutex is opened only briefly: it belongs to the port while the port's segment is in use
    used.update(f"sem.{n}_mutex" for n in list(used) if n.startswith(("fastdds_port", "fastrtps_port")))
    return used


def cleanup_shm(before: set[str]) -> list[str]:
    """Remove Fast DDS shared-memory files created since `before` (left by processes we killed). Returns them.
    Files a live process still has open or mapped are kept: they may belong to a concurrent run."""
    removed = []
    in_use = shm_in_use()
    for name in shm_snapshot() - before - in_use:
        try:
            os.unlink(os.path.join("/dev/shm", name))
            removed.append(name)
        except OSError:
            pass
    return removed


@dataclass
class ManagedProcess:
    """A child process we started and therefore may stop: SIGINT, then SIGTERM, then SIGKILL, by its pid only."""

    args: list[str]
    env: dict[str, str]
    log_path: Path | None = None
    name: str = ""
    proc: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> "ManagedProcess":
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """Simulate a crash: no shutdown code runs in the child."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Ask nicely, then insist. Returns the exit code (None if it was never started)."""
        if self.proc is None:
            return None
        for sig, wait in ((signal.SIGINT, timeout * 0.6), (signal.SIGTERM, timeout * 0.3), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        return self.proc.poll()

    def log_tail(self, n: int = 60) -> str:
        if not self.log_path or not Path(self.log_path).exists():
            return ""
        return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])


def wait_until(pred: Callable[[], Any], timeout: float, what: str, poll: float = 0.02) -> Any:
    """Poll `pred` until it returns something truthy (returned) or `timeout` s pass (TimeoutError naming `what`):
    every wait on another process has a deadline, never sleep-and-hope."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    """A TCP port free on loopback right now, for a server process we are about to start."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_module_cmd(module: str, *args: str) -> list[str]:
    """Run a module of this project with the current interpreter (the venv's), so the ROS-wheel bootstrap applies."""
    return [sys.executable, "-m", module, *args]

"""The fixed-rate loop: read hardware -> ControllerCore.step -> write hardware, on a dedicated thread (no rclpy).

Timing (measured on these machines, see the team's ros2-on-pypi notes): an absolute-deadline thread
(`deadline = start + k * period`, sleep until `spin_s` before it, then spin) holds 500 Hz with ~2 % CPU, while an
rclpy timer costs ~18 % and drops missed ticks. Deadlines are absolute, so one late tick does not shift the
following ones; when the loop falls more than `max_catchup` periods behind (a stall) it skips ahead and counts the
skipped ticks as misses instead of bursting commands to the arm.

Priority: on a busy machine the scheduler's latency, not Python, dominates the jitter. Like ros2_control's
controller manager (thread priority 50), the loop thread asks for SCHED_FIFO at `priority` (0 = leave it alone); it
needs root or an rtprio limit (`/etc/security/limits.conf`: `@robot - rtprio 99`), and without it the loop runs
at normal priority with one warning. The thread sleeps most of each period, so it cannot starve the machine.
`start()` also freezes the garbage collector's view of everything allocated so far (gc.freeze): without it, a full
collection triggered in the loop scans the whole rclpy/numpy heap, a multi-millisecond stall (measured: the
benchmark's rare >1 ms misses disappeared with it).

PeriodStats keeps a window of recent periods (for status / diagnostics) and run totals (for benchmarks).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


def set_fifo_priority(priority: int) -> str:
    """SCHED_FIFO for the calling thread. Returns "" or why it was refused (the thread keeps normal scheduling).

    The process's other Python threads matter too: a normal-priority thread preempted while it holds the GIL stalls
    the loop thread however high its priority, so controller_node gives its executor thread a FIFO priority just
    below the loop's (it only does low-rate I/O and sleeps in between)."""
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(priority))
        return ""
    except (OSError, AttributeError) as exc:
        return (f"SCHED_FIFO priority {priority} refused ({exc}); normal scheduling "
                "(grant rtprio in /etc/security/limits.conf for real-time scheduling)")


class PeriodStats:
    """Loop periods (seconds). Thread-safe enough for one writer (the loop) and readers taking snapshots."""

    def __init__(self, period: float, window: int = 2500, miss_threshold_s: float = 0.001):
        self.period = period
        self.miss_threshold_s = miss_threshold_s  # a period longer than period + this is a deadline miss
        self._buf = np.zeros(window)
        self._n = 0  # periods recorded ever
        self.misses = 0
        self.skipped = 0
        self.max_s = 0.0
        self.all_periods: list[float] | None = None  # set to [] to keep every period (benchmarks)

    def add(self, p: float) -> None:
        self._buf[self._n % len(self._buf)] = p
        self._n += 1
        if p > self.max_s:
            self.max_s = p
        if p > self.period + self.miss_threshold_s:
            self.misses += 1
        if self.all_periods is not None:
            self.all_periods.append(p)

    @property
    def count(self) -> int:
        return self._n

    def window(self) -> np.ndarray:
        return self._buf[: min(self._n, len(self._buf))].copy()

    def summary(self) -> dict[str, float]:
        w = self.window()
        if not len(w):
            return {"rate_hz": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "window_max_ms": 0.0,
                    "misses": self.misses, "skipped": self.skipped, "count": 0}
        return {"rate_hz": float(1.0 / w.mean()), "p50_ms": float(np.percentile(w, 50) * 1e3),
                "p99_ms": float(np.percentile(w, 99) * 1e3), "max_ms": self.max_s * 1e3,
                "window_max_ms": float(w.max() * 1e3), "misses": self.misses, "skipped": self.skipped,
                "count": self._n}


def summarize_periods(periods: np.ndarray, period: float, miss_threshold_s: float = 0.001) -> dict[str, float]:
    """Benchmark summary of a whole run: p50/p99/max, p99 of |period - nominal|, misses over the threshold."""
    p = np.asarray(periods)
    if not len(p):
        return {"n": 0}
    return {"n": int(len(p)), "p50_ms": float(np.percentile(p, 50) * 1e3), "p99_ms": float(np.percentile(p, 99) * 1e3),
            "max_ms": float(p.max() * 1e3), "p99_abs_err_ms": float(np.percentile(np.abs(p - period), 99) * 1e3),
            "misses": int(np.sum(p > period + miss_threshold_s))}


class DeadlineLoop:
    """Calls `tick(now_monotonic)` every `period` seconds on its own thread until stopped or tick returns False."""

    def __init__(self, rate_hz: float, tick: Callable[[float], bool], name: str = "control-loop",
                 spin_s: float = 0.0003, max_catchup: int = 5, miss_threshold_s: float = 0.001,
                 switch_interval_s: float | None = 0.0002, priority: int = 0):
        if rate_hz <= 0:
            raise ValueError("rate_hz must be > 0")
        self.period = 1.0 / rate_hz
        self.tick = tick
        self.name = name
        self.spin_s = spin_s
        self.max_catchup = max_catchup
        self.stats = PeriodStats(self.period, miss_threshold_s=miss_threshold_s)
        self.switch_interval_s = switch_interval_s
        self.priority = priority
        self.priority_applied = False
        self.priority_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> "DeadlineLoop":
        # Everything allocated so far (rclpy, numpy, the node) goes to the permanent generation: a full collection
        # triggered by the loop's own small allocations then scans only what came later, not the whole heap.
        gc.freeze()
        if self.switch_interval_s:
            # the GIL is handed over every 5 ms by default: longer than our period when another thread is busy
            sys.setswitchinterval(self.switch_interval_s)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _set_priority(self) -> None:
        if self.priority <= 0:
            return
        self.priority_error = set_fifo_priority(self.priority)
        self.priority_applied = not self.priority_error
        if self.priority_error:
            log.warning("control loop: %s", self.priority_error)

    def _run(self) -> None:
        self._set_priority()
        period, spin = self.period, self.spin_s
        clock, sleep = time.perf_counter, time.sleep
        start = clock()
        k = 0
        last = None
        try:
            while not self._stop.is_set():
                k += 1
                deadline = start + k * period
                remaining = deadline - clock()
                if remaining > spin:
                    sleep(remaining - spin)
                while clock() < deadline:
                    pass
                now = clock()
                if last is not None:
                    self.stats.add(now - last)
                last = now
                if self.tick(now) is False:
                    break
                behind = int((clock() - start) / period) - k
                if behind > self.max_catchup:  # stalled: skip ahead instead of bursting commands
                    self.stats.skipped += behind
                    k += behind
        except BaseException as exc:  # noqa: BLE001 - the owner must learn that the loop died
            self.error = exc
            log.exception("control loop crashed")
            raise

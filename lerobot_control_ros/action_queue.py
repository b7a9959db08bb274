"""A time-stamped plan of future actions, fed by overlapping action chunks (no rclpy import).

Each chunk row i is due at `t0 + (i + start_index) * dt`, t0 being the time of the observation the chunk was
computed from. Rows whose time has passed when the chunk arrives are dropped (latency compensation); rows that
overlap the plan already queued are merged with one of chunk_merge's functions (the old plan is evaluated at the
new row's time by interpolation, because chunks from different observations are not aligned in time); `sample(now)`
interpolates linearly between neighbouring rows so a 500 Hz loop never steps between 30 Hz actions, and returns
None outside the plan: the queue never extrapolates, the caller decides what to do (the controller holds).

Threading: one writer lock for push/pop/clear; `sample`, `depth`, `time_left`, `remaining` read an immutable snapshot
(a tuple swapped atomically under the GIL) and never block, so the control loop never waits on the ROS thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from lerobot_control_ros.chunk_merge import MergeFn, get_merge_fn

_EMPTY_T = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True)
class PushResult:
    """What happened to one chunk. accepted + dropped == rows of the chunk, unless it was refused (reason set)."""

    accepted: int = 0  # rows now in the plan (merged ones included; a kept interpolation anchor included)
    dropped: int = 0  # rows already in the past when the chunk arrived (latency compensation)
    merged: int = 0  # accepted rows that overlapped the queued plan and were merged with it
    reason: str = ""  # non-empty when the whole chunk was refused

    @property
    def ok(self) -> bool:
        return not self.reason


class ActionQueue:
    """Future actions on the caller's clock (seconds). See the module docstring for the rules."""

    def __init__(self, merge: str | MergeFn = "weighted_average"):
        self.merge_fn: MergeFn = get_merge_fn(merge) if isinstance(merge, str) else merge
        self._lock = threading.Lock()
        self._plan: tuple[np.ndarray, np.ndarray | None] = (_EMPTY_T, None)  # (times (N,), actions (N, A))
        self.last_chunk_id: int = 0
        self.last_chunk_t0: float | None = None
        self.chunks_accepted = 0
        self.chunks_refused = 0

    # ------------------------------------------------------------------ writers
    def push_chunk(self, actions: np.ndarray, t0: float, dt: float, now: float, chunk_id: int = 0,
                   start_index: int = 0) -> PushResult:
        actions = np.asarray(actions, dtype=np.float64)
        refusal = self._validate(actions, t0, dt, start_index)
        if refusal:
            self.chunks_refused += 1
            return PushResult(reason=refusal)
        n = actions.shape[0]
        times = t0 + (np.arange(n, dtype=np.float64) + start_index) * dt
        with self._lock:
            old_t, old_a = self._plan
            if old_a is not None and old_a.shape[1] != actions.shape[1]:
                self.chunks_refused += 1
                return PushResult(reason=f"chunk has {actions.shape[1]} action columns, the queue holds "
                                         f"{old_a.shape[1]}")
            if self.last_chunk_t0 is not None and t0 < self.last_chunk_t0:
                self.chunks_refused += 1
                return PushResult(reason=f"chunk observation time {t0:.6f} is older than the last accepted chunk's "
                                         f"({self.last_chunk_t0:.6f}): out of order, refused")
            # latency compensation: drop past rows, but keep the last past row as an interpolation anchor when a
            # future row follows it (interpolating inside the chunk is not extrapolating).
            first_future = int(np.searchsorted(times, now, side="right"))
            keep_from = max(first_future - 1, 0) if first_future < n else n
            dropped = keep_from
            times, actions = times[keep_from:], actions[keep_from:]
            merged = 0
            if len(times) and len(old_t):
                # old plan is defined on [old_t[0], old_t[-1]]: merge the new rows inside it, keep old rows before
                # the new chunk's first row, and let the new chunk own everything after.
                inside = (times >= old_t[0]) & (times <= old_t[-1])
                if inside.any():
                    old_at_new = np.stack([np.interp(times[inside], old_t, old_a[:, j])
                                           for j in range(old_a.shape[1])], axis=1)
                    actions = actions.copy()
                    actions[inside] = self.merge_fn(old_at_new, actions[inside])
                    merged = int(inside.sum())
                head = old_t < times[0]
                times = np.concatenate([old_t[head], times])
                actions = np.concatenate([old_a[head], actions])
            elif not len(times):
                times, actions = old_t, old_a
            self._plan = (times, actions) if actions is not None and len(times) else (_EMPTY_T, None)
            self.last_chunk_id = int(chunk_id)
            self.last_chunk_t0 = float(t0)
            self.chunks_accepted += 1
        return PushResult(accepted=n - dropped, dropped=dropped, merged=merged)

    @staticmethod
    def _validate(actions: np.ndarray, t0: float, dt: float, start_index: int) -> str:
        if actions.ndim != 2:
            return f"actions must be 2-D (T, A), got shape {actions.shape}"
        if actions.shape[1] == 0:
            return "actions have zero columns"
        if not np.all(np.isfinite(actions)):
            return "actions contain NaN or inf"
        if not (np.isfinite(dt) and dt > 0):
            return f"dt must be a positive number of seconds, got {dt}"
        if not np.isfinite(t0):
            return f"t0 must be finite, got {t0}"
        if start_index < 0:
            return f"start_index must be >= 0, got {start_index}"
        return ""

    def pop_until(self, now: float) -> int:
        """Forget rows no longer needed at `now` (older than the row just before `now`). Returns how many."""
        with self._lock:
            t, a = self._plan
            if not len(t):
                return 0
            i = int(np.searchsorted(t, now, side="right"))  # rows [0, i) are <= now
            cut = i - 1 if i < len(t) else len(t)  # keep the anchor row before `now` while a later row exists
            if t[-1] == now:
                cut = len(t) - 1
            if cut <= 0:
                return 0
            self._plan = (t[cut:], a[cut:]) if cut < len(t) else (_EMPTY_T, None)
            return cut

    def clear(self) -> None:
        """Empty the plan (pause, reset, e-stop); also forgets the last chunk's time, so a restarted producer's
        chunks are accepted."""
        with self._lock:
            self._plan = (_EMPTY_T, None)
            self.last_chunk_t0 = None

    # ------------------------------------------------------------------ readers (lock-free snapshot)
    def sample(self, now: float) -> np.ndarray | None:
        """The planned action at `now`, linearly interpolated; None when the plan does not cover `now`."""
        t, a = self._plan
        n = len(t)
        if n == 0 or now < t[0] or now > t[-1]:
            return None
        i = int(np.searchsorted(t, now, side="right"))  # t[i-1] <= now < t[i]
        if i >= n:
            return a[n - 1].copy()  # now == t[-1]
        t_lo, t_hi = t[i - 1], t[i]
        w = (now - t_lo) / (t_hi - t_lo) if t_hi > t_lo else 1.0
        return a[i - 1] + w * (a[i] - a[i - 1])

    def depth(self, now: float) -> int:
        """Rows still due in the future."""
        t, _ = self._plan
        return int(len(t) - np.searchsorted(t, now, side="right"))

    def time_left(self, now: float) -> float:
        """Seconds of plan left after `now` (0 when empty or over)."""
        t, _ = self._plan
        return float(max(t[-1] - now, 0.0)) if len(t) else 0.0

    def remaining(self, now: float) -> np.ndarray:
        """Rows not yet due, (N, A) float32 (N may be 0): the `prev_chunk_left_over` for real-time chunking."""
        t, a = self._plan
        if a is None:
            return np.zeros((0, 0), dtype=np.float32)
        return a[np.searchsorted(t, now, side="right"):].astype(np.float32)

    def times(self) -> np.ndarray:
        """Due times of the rows in the plan (for tests, plots and diagnostics)."""
        return self._plan[0].copy()

    def __len__(self) -> int:
        return len(self._plan[0])

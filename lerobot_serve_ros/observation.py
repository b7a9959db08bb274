"""Assembling one observation from several sensor streams, and deciding whether it may be fed to a policy.

Pure (no rclpy): the policy node calls `put` from its subscription callbacks and `check` from its inference thread.
The rule the node lives by: never infer on an incomplete or stale observation. `check` therefore says, per input,
why it cannot be used (never received / older than its limit / last message invalid), so the node can skip, report
the reason (log + diagnostics) and try again on the next tick, instead of commanding a robot from an old picture.

Ages are measured from the *arrival* time on a monotonic clock, not from header stamps: a camera whose clock is
off, or a bag replayed with old stamps, must not make fresh data look stale or stale data look fresh. Header stamps
are kept for the output: the chunk's stamp is the newest input stamp (the time the observation describes).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class InputSample:
    value: Any  # the raw message (decoded lazily) or an array; None when invalid
    received: float  # arrival, monotonic seconds
    stamp_ns: int  # header stamp, or the arrival time on the node's clock when the header was unset
    seq: int  # arrival order across all inputs (lets the node tell new frames from ones it already used)
    error: str | None = None  # the last message of this input could not be used, and why


@dataclass
class Readiness:
    """Result of ObservationBuffer.check: usable samples, and a reason for every input that is not usable."""

    samples: dict[str, InputSample]
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not self.reasons

    @property
    def stamp_ns(self) -> int:
        """Newest input stamp: the time the assembled observation describes."""
        return max((s.stamp_ns for s in self.samples.values()), default=0)

    def summary(self) -> str:
        return "; ".join(f"{name}: {why}" for name, why in self.reasons.items())


class ObservationBuffer:
    """The latest sample of each named input, with a staleness limit per input (seconds; inf = no limit)."""

    def __init__(self, max_age_s: dict[str, float], clock: Callable[[], float] = time.monotonic):
        if not max_age_s:
            raise ValueError("an observation needs at least one input")
        for name, limit in max_age_s.items():
            if not limit > 0:
                raise ValueError(f"staleness limit of {name!r} must be > 0 s, got {limit}")
        self.max_age_s = dict(max_age_s)
        self.clock = clock
        self._latest: dict[str, InputSample] = {}
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.max_age_s)

    def _known(self, name: str) -> None:
        if name not in self.max_age_s:
            raise KeyError(f"unknown input {name!r} (configured: {self.names})")

    def put(self, name: str, value: Any, stamp_ns: int, now: float | None = None) -> InputSample:
        self._known(name)
        s = InputSample(value, self.clock() if now is None else now, int(stamp_ns), next(self._seq))
        with self._lock:
            self._latest[name] = s
        return s

    def put_invalid(self, name: str, error: str, now: float | None = None, seq: int | None = None) -> None:
        """The newest message of `name` is unusable: it replaces the previous one (an older good frame from a camera
        that now sends garbage must not be used). With `seq`, only if no newer message arrived meanwhile."""
        self._known(name)
        with self._lock:
            cur = self._latest.get(name)
            if seq is not None and cur is not None and cur.seq != seq:
                return
            received = self.clock() if now is None else now
            stamp = cur.stamp_ns if (seq is not None and cur is not None) else 0
            self._latest[name] = InputSample(None, received, stamp, next(self._seq), error)

    def latest(self, name: str) -> InputSample | None:
        with self._lock:
            return self._latest.get(name)

    def check(self, now: float | None = None) -> Readiness:
        """Complete and fresh? Every configured input present, valid and younger than its limit."""
        now = self.clock() if now is None else now
        with self._lock:
            latest = dict(self._latest)
        out = Readiness(samples={})
        for name, limit in self.max_age_s.items():
            s = latest.get(name)
            if s is None:
                out.reasons[name] = "never received"
            elif s.error is not None:
                out.reasons[name] = f"invalid: {s.error}"
            elif now - s.received > limit:
                out.reasons[name] = f"stale: last message {now - s.received:.2f} s ago (limit {limit:g} s)"
            else:
                out.samples[name] = s
        return out

    def has_new(self, names: Iterable[str], used: dict[str, int]) -> bool:
        """True when each of `names` has a sample newer than the one recorded in `used` (name -> seq)."""
        with self._lock:
            return all(n in self._latest and self._latest[n].seq > used.get(n, 0) for n in names)

    def freshness(self, now: float | None = None) -> dict[str, str]:
        """One line per input for diagnostics: its age against its limit, or why it is unusable."""
        now = self.clock() if now is None else now
        with self._lock:
            latest = dict(self._latest)
        out = {}
        for name, limit in self.max_age_s.items():
            s = latest.get(name)
            if s is None:
                out[name] = "never received"
            elif s.error is not None:
                out[name] = f"INVALID ({s.error})"
            else:
                age = now - s.received
                state = "ok" if age <= limit else "STALE"
                out[name] = f"{state}: age {age:.3f} s (limit {limit:g} s)"
        return out

    def clear(self) -> None:
        with self._lock:
            self._latest.clear()


class JointOrder:
    """sensor_msgs/JointState (names in any order, possibly more joints than the policy uses) -> the policy's state
    vector in `joint_names` order."""

    def __init__(self, joint_names: Sequence[str]):
        if not joint_names:
            raise ValueError("joint_names is empty: the policy's state vector needs its joint order")
        if len(set(joint_names)) != len(joint_names):
            raise ValueError(f"duplicate names in joint_names {list(joint_names)}")
        self.joint_names = list(joint_names)

    def reorder(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        if len(names) != len(positions):
            raise ValueError(f"JointState has {len(names)} names but {len(positions)} positions")
        index = {n: i for i, n in enumerate(names)}
        missing = [j for j in self.joint_names if j not in index]
        if missing:
            raise ValueError(f"JointState lacks joint(s) {missing} (has {list(names)})")
        out = np.array([positions[index[j]] for j in self.joint_names], dtype=np.float32)
        bad = [j for j, v in zip(self.joint_names, out) if not math.isfinite(float(v))]
        if bad:
            raise ValueError(f"JointState position of {bad} is NaN or inf")
        return out

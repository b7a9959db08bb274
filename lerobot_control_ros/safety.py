"""What every command passes through before it reaches the hardware, and the two timers that make the controller
hold (no rclpy import).

- SafetyLimits.clamp: per-joint position limits, a velocity limit on the command itself (the command may move at most
  max_velocity * dt per tick, so a jump in the plan becomes a ramp) and a step limit on the distance between the
  command and the measured position (a runaway or a stuck joint can never be pulled harder than max_step).
- Watchdog: the policy heartbeat (accepted chunks). Expired while RUNNING -> PAUSED, hold.
- The command timeout on an empty queue is a plain Timer: after it the controller holds where the arm is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClampReport:
    position: bool = False
    velocity: bool = False
    step: bool = False

    @property
    def any(self) -> bool:
        return self.position or self.velocity or self.step


class SafetyLimits:
    """Per-joint limits, all arrays of the hardware's joint count (radians or the hardware's units)."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, max_velocity: np.ndarray, max_step: np.ndarray):
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.max_velocity = np.asarray(max_velocity, dtype=np.float64)
        self.max_step = np.asarray(max_step, dtype=np.float64)
        n = len(self.lower)
        for name, arr in (("upper", self.upper), ("max_velocity", self.max_velocity), ("max_step", self.max_step)):
            if arr.shape != (n,):
                raise ValueError(f"safety limit {name} has {arr.shape[0] if arr.ndim else 0} values, expected {n}")
        if np.any(self.lower >= self.upper):
            bad = np.nonzero(self.lower >= self.upper)[0].tolist()
            raise ValueError(f"position limits: lower must be < upper (joints {bad})")
        if np.any(self.max_velocity <= 0) or np.any(self.max_step <= 0):
            raise ValueError("max_velocity and max_step must be > 0 for every joint")

    def clamp(self, command: np.ndarray, previous: np.ndarray, measured: np.ndarray,
              dt: float) -> tuple[np.ndarray, ClampReport]:
        """The command made safe. `previous` is the last command sent, `dt` the time since it."""
        rep = ClampReport()
        cmd = np.asarray(command, dtype=np.float64)
        lim = np.clip(cmd, self.lower, self.upper)
        rep.position = bool(np.any(lim != cmd))
        max_d = self.max_velocity * max(dt, 0.0)
        vel = np.clip(lim, previous - max_d, previous + max_d)
        rep.velocity = bool(np.any(vel != lim))
        step = np.clip(vel, measured - self.max_step, measured + self.max_step)
        rep.step = bool(np.any(step != vel))
        # the step clamp may push outside the position limits when the arm itself is outside them: limits win
        return np.clip(step, self.lower, self.upper), rep


class Watchdog:
    """Expires when no heartbeat came for `timeout` seconds. `arm(now)` counts as a heartbeat (grace on start)."""

    def __init__(self, timeout: float):
        if timeout <= 0:
            raise ValueError("watchdog timeout must be > 0")
        self.timeout = float(timeout)
        self.last: float | None = None
        self.trips = 0

    def heartbeat(self, now: float) -> None:
        if self.last is None or now > self.last:
            self.last = now

    arm = heartbeat

    def age(self, now: float) -> float:
        return float("inf") if self.last is None else now - self.last

    def expired(self, now: float) -> bool:
        return self.age(now) > self.timeout

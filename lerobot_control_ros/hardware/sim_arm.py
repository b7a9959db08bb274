"""A simulated arm faithful to what the controller relies on: each joint follows its position command with
first-order dynamics (time constant `tau`), its speed saturates at `max_velocity`, and it stops at its position
limits. It integrates over the real time between calls (so a late control tick moves it further, as a real servo
would), and damping mode lets it coast to rest (no gravity model: it stays where it stops).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from lerobot_control_ros.controller_core import SO101_JOINTS
from lerobot_control_ros.hardware.base import Hardware


@dataclass
class SimArmConfig:
    joint_names: list[str] = field(default_factory=lambda: list(SO101_JOINTS))
    tau_s: float = 0.05  # servo time constant
    max_velocity: float = 4.0  # rad/s, physical speed limit of every joint
    lower: list[float] = field(default_factory=lambda: [-2.0, -1.8, -1.75, -1.7, -2.8, -0.2])
    upper: list[float] = field(default_factory=lambda: [2.0, 1.8, 1.75, 1.7, 2.9, 1.8])
    initial: list[float] = field(default_factory=lambda: [0.0] * 6)
    damping_tau_s: float = 0.1  # how fast the joints coast to rest when damped


class SimArm(Hardware):
    def __init__(self, cfg: SimArmConfig | None = None, clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg or SimArmConfig()
        self.joint_names = list(self.cfg.joint_names)
        n = len(self.joint_names)
        self.lower = np.asarray(self.cfg.lower, dtype=np.float64)
        self.upper = np.asarray(self.cfg.upper, dtype=np.float64)
        if not (len(self.lower) == len(self.upper) == len(self.cfg.initial) == n):
            raise ValueError("SimArmConfig: lower/upper/initial must have one value per joint")
        self.clock = clock
        self.q = np.clip(np.asarray(self.cfg.initial, dtype=np.float64), self.lower, self.upper)
        self.v = np.zeros(n)
        self.target: np.ndarray | None = None
        self.damped = False
        self.connected = False
        self.writes = 0
        self.writes_after_damp = 0
        self._t = clock()
        self._lock = threading.Lock()  # a LeRobot Robot wrapper may call from another thread

    def connect(self) -> None:
        self.connected = True
        self._t = self.clock()

    def _advance(self) -> None:
        now = self.clock()
        dt = max(now - self._t, 0.0)
        self._t = now
        if dt == 0.0:
            return
        if self.damped or self.target is None:
            v = self.v * np.exp(-dt / self.cfg.damping_tau_s) if self.damped else np.zeros_like(self.v)
        else:
            v = (self.target - self.q) / self.cfg.tau_s
        v = np.clip(v, -self.cfg.max_velocity, self.cfg.max_velocity)
        if not self.damped and self.target is not None:
            # exact first-order step when not speed-limited, so large dt never overshoots the target
            step = (self.target - self.q) * (1.0 - np.exp(-dt / self.cfg.tau_s))
            step = np.clip(step, -self.cfg.max_velocity * dt, self.cfg.max_velocity * dt)
        else:
            step = v * dt
        q = np.clip(self.q + step, self.lower, self.upper)
        self.v = (q - self.q) / dt
        self.q = q

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            self._advance()
            return self.q.copy(), self.v.copy()

    def write(self, positions: np.ndarray) -> None:
        with self._lock:
            if not self.connected:
                raise RuntimeError("SimArm.write before connect()")
            self._advance()
            if self.damped:
                self.writes_after_damp += 1
                return  # a damped arm ignores position commands, like a torque-off servo
            self.target = np.asarray(positions, dtype=np.float64).copy()
            self.writes += 1

    def damp(self) -> None:
        with self._lock:
            self._advance()
            self.damped = True
            self.target = None

    def disconnect(self) -> None:
        self.connected = False

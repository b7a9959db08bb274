"""Controller = hardware + ControllerCore + DeadlineLoop, without ROS (the node is thin glue over this).

The loop thread is the only caller of the hardware. Other threads talk to it through `core.command`,
`core.push_chunk` (lock-light: the queue's readers never block) and read `snapshot` (an immutable tuple replaced
each tick) for joint_states and status. A hardware error in the loop is treated as an e-stop: the controller cannot
vouch for an arm it cannot read.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lerobot_control_ros.control_loop import DeadlineLoop
from lerobot_control_ros.controller_core import ControllerConfig, ControllerCore, ControlOutput
from lerobot_control_ros.hardware.base import Hardware
from lerobot_control_ros.state_machine import Event, State

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    t: float  # core clock
    positions: np.ndarray
    velocities: np.ndarray
    command: np.ndarray | None
    holding: bool
    state: State


class Controller:
    def __init__(self, cfg: ControllerConfig, hardware: Hardware, rate_hz: float = 500.0,
                 clock: Callable[[], float] = time.time, spin_s: float = 0.0003, miss_threshold_s: float = 0.001,
                 priority: int = 0):
        if list(hardware.joint_names) != list(cfg.joint_names):
            raise ValueError(f"hardware joints {hardware.joint_names} differ from the controller's "
                             f"joint_names {cfg.joint_names} (same names, same order)")
        self.cfg = cfg
        self.hw = hardware
        self.clock = clock
        self.rate_hz = rate_hz
        self.core: ControllerCore | None = None
        self.loop = DeadlineLoop(rate_hz, self._tick, spin_s=spin_s, miss_threshold_s=miss_threshold_s,
                                 priority=priority)
        self.snapshot: Snapshot | None = None
        self.finished = threading.Event()  # set when the core asked to exit (after damping) or the loop died
        self.hw_errors = 0
        self.last_hw_error = ""
        self._damped = False
        self._consecutive_errors = 0

    def start(self, ready_timeout: float = 5.0) -> "Controller":
        """Connect, wait for the first real measurement, build the core holding there, start the loop."""
        self.hw.connect()
        deadline = time.monotonic() + ready_timeout
        while not self.hw.is_ready:
            if time.monotonic() > deadline:
                raise TimeoutError(f"hardware gave no joint positions within {ready_timeout:.1f} s")
            time.sleep(0.01)
        return self.start_loop()

    def start_loop(self) -> "Controller":
        """After hw.connect() and once hw.is_ready: hold where the arm is (IDLE) and start ticking."""
        q, v = self.hw.read()
        now = self.clock()
        self.core = ControllerCore(self.cfg, q, now)
        self.snapshot = Snapshot(now, q, v, None, True, self.core.state)
        self.loop.start()
        return self

    def _tick(self, _t_mono: float) -> bool:
        core = self.core
        try:
            if self._damped:  # damped hardware may be gone (lerobot: disconnected): keep the last reading
                q, v = self.snapshot.positions, np.zeros_like(self.snapshot.positions)
            else:
                q, v = self.hw.read()
            now = self.clock()
            out: ControlOutput = core.step(now, q)
            if out.damp:
                if not self._damped:
                    self.hw.damp()
                    self._damped = True
            elif out.positions is not None:
                self.hw.write(out.positions)
        except Exception as exc:  # noqa: BLE001 - any hardware failure: stop safely, keep the loop alive
            self.hw_errors += 1
            self.last_hw_error = f"{type(exc).__name__}: {exc}"
            if self.hw_errors == 1 or self.hw_errors % 500 == 0:
                log.error("hardware error #%d in the control loop: %s -> e-stop", self.hw_errors, self.last_hw_error)
            core.command(Event.ESTOP, self.clock())
            self._consecutive_errors += 1
            if self._consecutive_errors > max(int(self.rate_hz * 0.5), 1):
                log.error("hardware failing for 0.5 s: giving up the control loop (%s)", self.last_hw_error)
                self.finished.set()
                return False
            return True
        self._consecutive_errors = 0
        self.snapshot = Snapshot(now, q, v, out.positions, out.holding, core.state)
        if out.exit:
            self.finished.set()
            return False
        return True

    def stop(self) -> None:
        """Stop the loop (after the core's own stop sequence, or at process exit) and disconnect the hardware."""
        self.loop.stop()
        try:
            if not self._damped:
                self.hw.damp()
                self._damped = True
        finally:
            self.hw.disconnect()
        self.finished.set()

    def status(self) -> dict:
        st = self.core.status(self.clock()) if self.core else {}
        st.update({f"loop_{k}": v for k, v in self.loop.stats.summary().items()})
        st["hw_errors"] = self.hw_errors
        st["last_hw_error"] = self.last_hw_error
        st["loop_alive"] = self.loop.running
        st["loop_realtime"] = self.loop.priority_applied
        return st

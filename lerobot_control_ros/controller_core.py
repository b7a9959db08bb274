"""The controller's decision of each tick: state machine + action queue + safety + watchdog (no rclpy import).

`ControllerCore.step(now, measured)` is what the 500 Hz loop calls; it returns the (clamped) position command, or
asks for damping, or for the process to exit. Operator commands (`command`) and chunks (`push_chunk`) come from
other threads. Everything is on one caller-chosen clock (seconds), so tests drive it with a fake clock.

Rules (see README "Controller"):
- RUNNING follows the queue, interpolated. Queue empty: keep the last command for `command_timeout_s`, then hold
  the measured position (never extrapolate). No accepted chunk for `watchdog_timeout_s`: PAUSED, hold.
- Holding always means the position measured when the hold began. Leaving PAUSED needs an explicit resume.
- RESETTING follows a minimum-jerk path from the last command to `home`, then IDLE holding home.
- STOP: hold for `stop_settle_s`, then damp for `damping_s`, then exit. ESTOP: queue dropped, hold at once for
  `estop_hold_s` (EMERGENCY_STOP, latched), then damp, then exit.
- Every command goes through SafetyLimits.clamp, hold and reset included.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from lerobot_control_ros.action_queue import ActionQueue, PushResult
from lerobot_control_ros.safety import ClampReport, SafetyLimits, Watchdog
from lerobot_control_ros.state_machine import Event, State, StateMachine, Transition

SO101_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


@dataclass
class ControllerConfig:
    """Defaults: the simulated SO-101-like arm in radians (config/controller_node.yaml documents each field)."""

    joint_names: list[str] = field(default_factory=lambda: list(SO101_JOINTS))
    home: list[float] = field(default_factory=lambda: [0.0] * 6)
    lower: list[float] = field(default_factory=lambda: [-1.92, -1.75, -1.69, -1.66, -2.74, -0.17])
    upper: list[float] = field(default_factory=lambda: [1.92, 1.75, 1.69, 1.66, 2.84, 1.75])
    max_velocity: list[float] = field(default_factory=lambda: [3.0] * 6)  # command slew limit, units/s
    max_step: list[float] = field(default_factory=lambda: [0.35] * 6)  # max |command - measured|
    merge: str = "weighted_average"
    watchdog_timeout_s: float = 1.0
    command_timeout_s: float = 0.2
    # a chunk stamped further ahead than this is refused: the policy machine's clock is not synchronised with ours,
    # and its rows would only keep the watchdog fed while the arm holds
    max_future_stamp_s: float = 0.5
    reset_speed_fraction: float = 0.25  # peak reset speed as a fraction of max_velocity
    reset_min_duration_s: float = 1.0
    home_tolerance: float = 0.05
    reset_settle_timeout_s: float = 2.0
    stop_settle_s: float = 0.5
    estop_hold_s: float = 0.2
    damping_s: float = 1.0

    def validate(self) -> None:
        n = len(self.joint_names)
        if n == 0 or len(set(self.joint_names)) != n:
            raise ValueError(f"joint_names must be non-empty and unique, got {self.joint_names}")
        for name in ("home", "lower", "upper", "max_velocity", "max_step"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} values for {n} joints {self.joint_names}")
        for name in ("watchdog_timeout_s", "command_timeout_s", "reset_speed_fraction", "reset_min_duration_s",
                     "home_tolerance"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if np.any(np.asarray(self.home) < np.asarray(self.lower)) or np.any(np.asarray(self.home) > np.asarray(self.upper)):
            raise ValueError(f"home {self.home} is outside the position limits")


@dataclass
class ControlOutput:
    positions: np.ndarray | None  # command for the hardware; None when damping
    holding: bool
    damp: bool = False
    exit: bool = False
    clamped: ClampReport | None = None


def map_columns(action_names: list[str], joint_names: list[str]) -> np.ndarray:
    """Column index in the chunk for each hardware joint, by name in any order. A `.pos` suffix (LeRobot feature
    names, "shoulder_pan.pos") is accepted. Raises ValueError naming unknown, missing or duplicated names."""
    names = [n[:-4] if n.endswith(".pos") else n for n in action_names]
    unknown = sorted(set(names) - set(joint_names))
    missing = [j for j in joint_names if j not in names]
    dup = sorted({n for n in names if names.count(n) > 1})
    if unknown or missing or dup:
        parts = []
        if unknown:
            parts.append(f"unknown action names {unknown}")
        if missing:
            parts.append(f"no column for joints {missing}")
        if dup:
            parts.append(f"duplicated names {dup}")
        raise ValueError("; ".join(parts) + f" (hardware joints: {list(joint_names)})")
    return np.array([names.index(j) for j in joint_names], dtype=np.intp)


def min_jerk(tau: float) -> float:
    tau = min(max(tau, 0.0), 1.0)
    return tau ** 3 * (10 - 15 * tau + 6 * tau ** 2)


class ControllerCore:
    def __init__(self, cfg: ControllerConfig, initial_positions: np.ndarray, now: float):
        cfg.validate()
        self.cfg = cfg
        self.n = len(cfg.joint_names)
        self.safety = SafetyLimits(cfg.lower, cfg.upper, cfg.max_velocity, cfg.max_step)
        self.queue = ActionQueue(merge=cfg.merge)
        self.watchdog = Watchdog(cfg.watchdog_timeout_s)
        self.sm = StateMachine(now)
        self.home = np.asarray(cfg.home, dtype=np.float64)
        q0 = self._check_positions(initial_positions)
        self.measured = q0.copy()
        self.last_command = q0.copy()
        self.hold = q0.copy()
        self.holding = True
        self.hold_reason = "started"
        self._last_step_t: float | None = None
        self._last_plan_t = now  # last tick the queue had an action for
        self._reset_from = q0.copy()
        self._reset_t0 = now
        self._reset_T = 0.0
        self._damp_from: float | None = None
        self._from_estop = False
        self.exit_requested = False
        self.chunks_refused = 0
        self.last_refusal = ""
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ inputs from other threads
    def push_chunk(self, actions: np.ndarray, t0: float, dt: float, now: float, chunk_id: int = 0,
                   start_index: int = 0) -> PushResult:
        """Actions already in hardware joint order (see map_columns)."""
        state = self.sm.state
        if state not in (State.IDLE, State.RUNNING, State.PAUSED):
            result = PushResult(reason=f"controller is {state.name}: chunk {chunk_id} ignored")
        elif np.asarray(actions).ndim != 2 or np.asarray(actions).shape[1] != self.n:
            result = PushResult(reason=f"chunk {chunk_id} has shape {np.asarray(actions).shape}, expected (T, {self.n})")
        elif t0 > now + self.cfg.max_future_stamp_s:
            result = PushResult(reason=f"chunk {chunk_id} observation stamp is {t0 - now:.3f} s in the future "
                                       f"(limit {self.cfg.max_future_stamp_s} s): are the clocks synchronised?")
        else:
            result = self.queue.push_chunk(actions, t0, dt, now, chunk_id=chunk_id, start_index=start_index)
        if result.ok and result.accepted > 0:
            self.watchdog.heartbeat(now)
        elif not result.ok:
            self.chunks_refused += 1
            self.last_refusal = result.reason
        return result

    def command(self, event: Event | str, now: float) -> Transition:
        """An operator command (start, pause, resume, reset, stop, estop)."""
        with self._lock:
            return self._transition(Event(event), now)

    # ------------------------------------------------------------------ the tick
    def step(self, now: float, measured: np.ndarray) -> ControlOutput:
        with self._lock:
            return self._step(now, self._check_positions(measured))

    def _step(self, now: float, measured: np.ndarray) -> ControlOutput:
        self.measured = measured
        dt = 0.0 if self._last_step_t is None else max(now - self._last_step_t, 0.0)
        self._last_step_t = now
        state = self.sm.state
        if state == State.RUNNING and self.watchdog.expired(now):
            self.watchdog.trips += 1
            self._transition(Event.WATCHDOG, now, reason=(
                f"policy heartbeat lost: no chunk for {self.watchdog.age(now):.2f} s "
                f"(watchdog {self.cfg.watchdog_timeout_s:.2f} s); holding, resume to continue"))
            state = self.sm.state

        if state == State.RUNNING:
            action = self.queue.sample(now)
            if action is not None:
                target, self.holding = action, False
                self._last_plan_t = now
                self.hold_reason = ""
                self.queue.pop_until(now)
            elif now - self._last_plan_t <= self.cfg.command_timeout_s:
                target, self.holding = self.last_command, True  # brief gap: keep the last command
                self.hold_reason = "queue empty (within command timeout)"
            else:
                if self.hold_reason != "command timeout":
                    self.hold = measured.copy()
                    self.hold_reason = "command timeout"
                target, self.holding = self.hold, True
        elif state == State.RESETTING:
            tau = (now - self._reset_t0) / self._reset_T if self._reset_T > 0 else 1.0
            target = self._reset_from + min_jerk(tau) * (self.home - self._reset_from)
            self.holding = False
            if tau >= 1.0:
                err = float(np.max(np.abs(measured - self.home)))
                late = now - (self._reset_t0 + self._reset_T) > self.cfg.reset_settle_timeout_s
                if err <= self.cfg.home_tolerance or late:
                    msg = (f"reset done: home reached (max error {err:.3f})" if not late else
                           f"reset done but home NOT reached within {self.cfg.home_tolerance}: max error {err:.3f}")
                    self._transition(Event.RESET_DONE, now, reason=msg)
                    target = self.hold
        elif state == State.EMERGENCY_STOP:
            target, self.holding = self.hold, True
            if now - self.sm.since >= self.cfg.estop_hold_s:
                self._transition(Event.ESTOP_HELD, now, reason="e-stop: held, now damping")
        elif state == State.DAMPING:
            settle = 0.0 if self._from_estop else self.cfg.stop_settle_s
            if now - self.sm.since < settle:
                target, self.holding = self.hold, True
            else:
                if self._damp_from is None:
                    self._damp_from = now
                    self.sm.reason = ("e-stop: " if self._from_estop else "safe stop: ") + "damping, then exit"
                self.exit_requested = now - self._damp_from >= self.cfg.damping_s
                return ControlOutput(None, holding=False, damp=True, exit=self.exit_requested)
        else:  # IDLE, PAUSED
            target, self.holding = self.hold, True

        # A hold target is a position the arm was measured at: jump the command there at once (ramping it from an
        # earlier command that ran ahead of the arm would drag the arm on, then back). Plans and resets are ramped.
        previous = target if target is self.hold else self.last_command
        cmd, rep = self.safety.clamp(target, previous, measured, dt)
        self.last_command = cmd
        return ControlOutput(cmd.copy(), holding=self.holding, clamped=rep)

    # ------------------------------------------------------------------ transitions and their entry actions
    def _transition(self, event: Event, now: float, reason: str = "") -> Transition:
        t = self.sm.handle(event, now, reason)
        if not t.ok:
            return t
        new = t.new
        if new in (State.PAUSED, State.EMERGENCY_STOP, State.DAMPING) or (new == State.IDLE and t.old != State.RESETTING):
            self.hold = self.measured.copy()
            self.hold_reason = new.name.lower()
        if new in (State.IDLE, State.PAUSED, State.EMERGENCY_STOP, State.DAMPING):
            self.holding = True  # true from this moment (the next tick commands self.hold): status says so at once
        if new == State.IDLE and t.old == State.RESETTING:
            self.hold = self.last_command.copy()
            self.hold_reason = "home"
        if new == State.RUNNING:
            self.watchdog.arm(now)  # the policy gets a full timeout to deliver after start/resume
            self._last_plan_t = now
            self.hold_reason = ""
        if new == State.RESETTING:
            self.queue.clear()
            self._reset_from = self.last_command.copy()
            self._reset_t0 = now
            v = self.safety.max_velocity * self.cfg.reset_speed_fraction
            self._reset_T = max(self.cfg.reset_min_duration_s,
                                float(np.max(1.875 * np.abs(self.home - self._reset_from) / v)))
        if new in (State.EMERGENCY_STOP, State.DAMPING):
            self.queue.clear()
            self._from_estop = self._from_estop or new == State.EMERGENCY_STOP
        return t

    def _check_positions(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.n,) or not np.all(np.isfinite(q)):
            raise ValueError(f"measured positions must be {self.n} finite values, got {q!r}")
        return q

    # ------------------------------------------------------------------ status (any thread)
    @property
    def state(self) -> State:
        return self.sm.state

    def status(self, now: float) -> dict:
        return {"state": self.sm.state, "state_name": self.sm.state.name, "reason": self.sm.reason,
                "holding": bool(self.holding), "hold_reason": self.hold_reason,
                "queue_depth": self.queue.depth(now), "queue_time_s": self.queue.time_left(now),
                "last_chunk_id": self.queue.last_chunk_id, "watchdog_trips": self.watchdog.trips,
                "heartbeat_age_s": self.watchdog.age(now), "chunks_refused": self.chunks_refused,
                "last_refusal": self.last_refusal}

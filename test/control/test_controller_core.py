"""ControllerCore with a fake clock and the simulated arm on the same clock: every behaviour of the issue."""

from __future__ import annotations

import numpy as np
import pytest

from lerobot_control_ros.controller_core import ControllerConfig, ControllerCore, map_columns, min_jerk
from lerobot_control_ros.hardware.sim_arm import SimArm, SimArmConfig
from lerobot_control_ros.state_machine import Event, State

PERIOD = 0.002
N = 6


class Rig:
    """Core + sim arm advanced tick by tick on a fake clock (what DeadlineLoop + Controller do in real time)."""

    def __init__(self, **cfg):
        self.t = 100.0
        self.arm = SimArm(SimArmConfig(), clock=lambda: self.t)
        self.arm.connect()
        self.cfg = ControllerConfig(**cfg)
        self.core = ControllerCore(self.cfg, self.arm.read()[0], self.t)
        self.commands: list[np.ndarray] = []
        self.damped_at: float | None = None

    def run(self, seconds: float):
        for _ in range(int(round(seconds / PERIOD))):
            self.t += PERIOD
            q, _ = self.arm.read()
            out = self.core.step(self.t, q)
            if out.damp:
                if self.damped_at is None:
                    self.arm.damp()
                    self.damped_at = self.t
            else:
                self.arm.write(out.positions)
                self.commands.append(out.positions)
            if out.exit:
                return out
        return out

    def q(self):
        return self.arm.read()[0]

    def chunk(self, value, rows=30, dt=1 / 30, age=0.0, start_index=0, chunk_id=1):
        actions = np.broadcast_to(np.asarray(value, dtype=float), (rows, N)).copy()
        return self.core.push_chunk(actions, t0=self.t - age, dt=dt, now=self.t, chunk_id=chunk_id,
                                    start_index=start_index)

    def cmd(self, event):
        return self.core.command(event, self.t)


def test_idle_holds_and_ignores_the_queue():
    r = Rig()
    r.chunk(0.5)
    r.run(0.3)
    assert r.core.state == State.IDLE
    np.testing.assert_allclose(r.q(), 0.0, atol=1e-9)


def test_running_follows_chunks_and_the_arm_moves():
    r = Rig()
    assert r.cmd(Event.START).ok
    ramp = np.linspace(0, 0.6, 30)[:, None] * np.ones(N)
    r.core.push_chunk(ramp, t0=r.t, dt=1 / 30, now=r.t)
    r.run(0.9)
    assert r.core.state == State.RUNNING
    assert r.q()[0] > 0.45  # tracked most of the ramp (first-order lag)
    cmds = np.array(r.commands)
    # interpolated: at 500 Hz, no command step bigger than the ramp's slope allows (0.6 rad / 0.97 s * 2 ms)
    assert np.max(np.abs(np.diff(cmds[1:, 0]))) < 0.0015  # (the first tick has no dt: it cannot move)


def test_latency_compensation_starts_mid_chunk():
    r = Rig(max_step=[2.0] * 6, max_velocity=[100.0] * 6)
    r.cmd(Event.START)
    ramp = np.arange(30)[:, None] * 0.01 * np.ones(N)  # value = row index * 0.01
    res = r.core.push_chunk(ramp, t0=r.t - 0.2, dt=0.02, now=r.t)  # the observation is 0.2 s old: rows 0..9 past
    assert res.dropped == 10 and res.accepted == 20
    assert r.core.queue.sample(r.t + 1e-6)[0] == pytest.approx(0.10, abs=1e-3)  # row 10, not row 0
    r.run(0.01)
    assert r.commands[-1][0] == pytest.approx(0.105, abs=2e-3)  # executing from row 10 on


def test_empty_queue_keeps_last_command_then_holds_measured_never_extrapolates():
    r = Rig(command_timeout_s=0.2)
    r.cmd(Event.START)
    ramp = np.linspace(0, 0.3, 10)[:, None] * np.ones(N)
    r.core.push_chunk(ramp, t0=r.t, dt=0.02, now=r.t)  # 0.18 s of plan rising at ~1.7 rad/s
    r.run(0.18)
    last_planned = r.commands[-1].copy()
    r.run(0.1)  # queue empty, within the command timeout: the last command, not a continued ramp
    assert r.core.holding and r.core.hold_reason.startswith("queue empty")
    np.testing.assert_allclose(r.commands[-1], last_planned, atol=1e-9)
    r.run(0.15)  # past the timeout: hold where the arm is
    assert r.core.hold_reason == "command timeout" and r.core.state == State.RUNNING
    held = r.q().copy()
    r.run(0.5)
    np.testing.assert_allclose(r.q(), held, atol=0.02)
    assert np.all(np.array(r.commands)[:, 0] <= 0.3 + 1e-9)  # never beyond the plan


def test_watchdog_pauses_and_holds_until_explicit_resume():
    r = Rig(watchdog_timeout_s=1.0)
    r.cmd(Event.START)
    r.chunk(0.4, rows=20)
    r.run(0.5)
    assert r.core.state == State.RUNNING
    r.run(0.49)  # 0.99 s since the chunk
    assert r.core.state == State.RUNNING
    r.run(0.02)
    assert r.core.state == State.PAUSED and "heartbeat lost" in r.core.sm.reason
    assert r.core.watchdog.trips == 1
    held = r.q().copy()
    r.chunk(0.9)  # policy back: chunks are queued but the arm stays put
    r.run(1.0)
    assert r.core.state == State.PAUSED
    np.testing.assert_allclose(r.q(), held, atol=0.01)
    assert r.cmd(Event.RESUME).ok
    r.chunk(0.9, chunk_id=2)
    r.run(1.0)
    assert r.core.state == State.RUNNING and r.q()[0] > 0.8


def test_start_rearms_the_watchdog():
    r = Rig(watchdog_timeout_s=1.0)
    r.run(5.0)  # no chunk for a long time while IDLE
    r.cmd(Event.START)
    r.run(0.9)
    assert r.core.state == State.RUNNING
    r.run(0.2)
    assert r.core.state == State.PAUSED


def test_pause_holds_position_where_the_arm_is():
    r = Rig()
    r.cmd(Event.START)
    r.chunk(1.0, rows=60)
    r.run(0.1)  # mid-motion
    assert r.cmd(Event.PAUSE).ok
    r.run(0.05)
    held = r.q().copy()
    r.run(1.0)
    np.testing.assert_allclose(r.q(), held, atol=0.02)
    assert r.q()[0] < 0.9


def test_reset_moves_smoothly_home_then_idle():
    r = Rig()
    r.cmd(Event.START)
    r.chunk(0.8, rows=60)
    r.run(1.0)
    assert not r.cmd(Event.RESET).ok  # refused while RUNNING
    r.cmd(Event.PAUSE)
    assert r.cmd(Event.RESET).ok
    assert r.core.state == State.RESETTING
    assert r.chunk(0.8, chunk_id=5).reason.startswith("controller is RESETTING")
    n0 = len(r.commands)
    r.run(6.0)
    assert r.core.state == State.IDLE and "home reached" in r.core.sm.reason
    np.testing.assert_allclose(r.q(), 0.0, atol=0.05)
    path = np.array(r.commands[n0:])[:, 0]
    steps = np.diff(path)
    assert np.all(steps <= 1e-12)  # monotonic towards home
    assert np.max(np.abs(steps)) <= 0.25 * 3.0 * PERIOD + 1e-9  # peak speed = reset_speed_fraction * max_velocity


def test_reset_aborted_by_pause_holds():
    r = Rig()
    r.arm.q[:] = 1.0
    r.core = ControllerCore(r.cfg, r.q(), r.t)
    r.cmd(Event.RESET)
    r.run(0.5)
    assert r.cmd(Event.PAUSE).ok
    held = r.q().copy()
    r.run(1.0)
    np.testing.assert_allclose(r.q(), held, atol=0.05)
    assert r.core.state == State.PAUSED


def test_safe_stop_holds_then_damps_then_exits():
    r = Rig(stop_settle_s=0.5, damping_s=1.0)
    r.cmd(Event.START)
    r.chunk(0.5)
    r.run(0.3)
    assert r.cmd(Event.STOP).ok and r.core.state == State.DAMPING
    t_stop = r.t
    out = r.run(3.0)
    assert out.exit and r.core.exit_requested
    assert r.damped_at == pytest.approx(t_stop + 0.5, abs=3 * PERIOD)
    assert r.t == pytest.approx(r.damped_at + 1.0, abs=3 * PERIOD)
    assert not r.cmd(Event.START).ok


def test_estop_latches_holds_then_damps_no_further_commands():
    r = Rig(estop_hold_s=0.2, damping_s=0.5)
    r.cmd(Event.START)
    r.chunk(0.8, rows=60)
    r.run(0.2)
    assert not r.core.holding
    assert r.cmd(Event.ESTOP).ok and r.core.state == State.EMERGENCY_STOP
    st = r.core.status(r.t)  # what controller/status publishes at once, before the loop's next tick
    assert len(r.core.queue) == 0 and st["holding"] and st["queue_depth"] == 0
    for e in (Event.START, Event.RESUME, Event.RESET, Event.PAUSE, Event.STOP):
        t = r.cmd(e)
        assert not t.ok and "latched" in t.message
    assert not r.chunk(0.8, chunk_id=9).ok
    held = r.q().copy()
    r.run(0.19)
    assert r.core.state == State.EMERGENCY_STOP
    np.testing.assert_allclose(r.q(), held, atol=0.03)
    r.run(0.02)
    assert r.core.state == State.DAMPING
    n = len(r.commands)
    out = r.run(1.0)
    assert out.exit and len(r.commands) == n and r.arm.damped


def test_commands_always_within_limits_and_slew():
    r = Rig()
    r.cmd(Event.START)
    r.chunk([5.0, -5.0, 5.0, -5.0, 5.0, -5.0], rows=60)  # far outside every limit, for 2 s
    r.run(0.95)  # (within the watchdog timeout: a pause would jump the command back to the arm)
    cmds = np.array(r.commands)
    assert np.all(cmds <= np.array(r.cfg.upper) + 1e-12) and np.all(cmds >= np.array(r.cfg.lower) - 1e-12)
    assert np.max(np.abs(np.diff(cmds, axis=0))) <= 3.0 * PERIOD + 1e-9


def test_chunk_stamped_in_the_future_is_refused_and_does_not_feed_the_watchdog():
    r = Rig()
    r.cmd(Event.START)
    res = r.core.push_chunk(np.zeros((5, 6)), t0=r.t + 5.0, dt=0.1, now=r.t)
    assert not res.ok and "in the future" in res.reason and r.core.chunks_refused == 1
    ok = r.core.push_chunk(np.zeros((5, 6)), t0=r.t + 0.1, dt=0.1, now=r.t)  # small skew is tolerated
    assert ok.ok and ok.accepted > 0


def test_wrong_width_chunk_and_bad_measurements_are_refused():
    r = Rig()
    res = r.core.push_chunk(np.zeros((5, 4)), t0=r.t, dt=0.1, now=r.t)
    assert not res.ok and "expected (T, 6)" in res.reason and r.core.chunks_refused == 1
    with pytest.raises(ValueError, match="6 finite values"):
        r.core.step(r.t, np.array([np.nan] * 6))


def test_map_columns_by_name_any_order_and_refusals():
    joints = ["a", "b", "c"]
    np.testing.assert_array_equal(map_columns(["c.pos", "a", "b"], joints), [1, 2, 0])
    with pytest.raises(ValueError, match=r"unknown action names \['x'\]"):
        map_columns(["a", "b", "c", "x"], joints)
    with pytest.raises(ValueError, match=r"no column for joints \['c'\]"):
        map_columns(["a", "b"], joints)
    with pytest.raises(ValueError, match="duplicated"):
        map_columns(["a", "a.pos", "b", "c"], joints)


def test_config_validation():
    with pytest.raises(ValueError, match="home has"):
        ControllerCore(ControllerConfig(home=[0.0]), np.zeros(6), 0.0)
    with pytest.raises(ValueError, match="outside the position limits"):
        ControllerCore(ControllerConfig(home=[9.0] * 6), np.zeros(6), 0.0)


def test_min_jerk_profile():
    assert min_jerk(0) == 0 and min_jerk(1) == 1 and min_jerk(0.5) == pytest.approx(0.5)
    assert min_jerk(-1) == 0 and min_jerk(2) == 1

"""The real loop thread with real hardware implementations (no ROS): sim arm, and a LeRobot Robot built by lerobot's
make_robot_from_config from --robot.* flags. Timing quality is measured by benchmarks/, not asserted here."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lerobot_control_ros.control_loop import DeadlineLoop, PeriodStats, summarize_periods
from lerobot_control_ros.controller import Controller
from lerobot_control_ros.controller_core import ControllerConfig
from lerobot_control_ros.hardware.sim_arm import SimArm, SimArmConfig
from lerobot_control_ros.state_machine import Event, State


def test_deadline_loop_ticks_at_rate_and_records_periods():
    ticks = []
    loop = DeadlineLoop(200.0, lambda t: ticks.append(t) or len(ticks) < 100).start()
    deadline = time.monotonic() + 5
    while loop.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not loop.running and len(ticks) == 100  # returning False ends the loop
    s = loop.stats.summary()
    assert s["count"] == 99
    # absolute deadlines: 100 ticks span 99 periods however late single ticks were
    assert ticks[-1] - ticks[0] == pytest.approx(99 / 200.0, abs=0.03)


def test_deadline_loop_skips_ahead_after_a_stall_instead_of_bursting():
    ticks = []

    def tick(t):
        ticks.append(t)
        if len(ticks) == 5:
            time.sleep(0.1)  # 20 periods lost
        return len(ticks) < 15

    loop = DeadlineLoop(200.0, tick, max_catchup=3).start()
    deadline = time.monotonic() + 5
    while loop.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.stats.skipped >= 15 and loop.stats.misses >= 1
    gaps = np.diff(ticks[5:])
    assert np.all(gaps[1:] > 0.5 * loop.period)  # no burst of back-to-back ticks after the stall


def test_period_stats_and_summary():
    s = PeriodStats(0.002, window=4)
    for p in (0.002, 0.0021, 0.0035, 0.002, 0.002):
        s.add(p)
    assert s.misses == 1 and s.count == 5 and len(s.window()) == 4
    assert s.summary()["max_ms"] == pytest.approx(3.5)
    out = summarize_periods(np.array([0.002] * 98 + [0.0031, 0.0025]), 0.002)
    assert out["misses"] == 1 and out["p50_ms"] == pytest.approx(2.0)


def test_sim_arm_first_order_dynamics_and_limits():
    t = [0.0]
    arm = SimArm(SimArmConfig(tau_s=0.1, max_velocity=100.0, lower=[-1.0] * 6, upper=[1.0] * 6), clock=lambda: t[0])
    arm.connect()
    arm.write(np.full(6, 0.5))
    t[0] = 0.1  # one time constant
    np.testing.assert_allclose(arm.read()[0], 0.5 * (1 - np.exp(-1)), rtol=1e-9)
    arm.write(np.full(6, 5.0))  # beyond the stop
    t[0] = 10.0
    np.testing.assert_allclose(arm.read()[0], 1.0)
    slow = SimArm(SimArmConfig(tau_s=0.01, max_velocity=1.0), clock=lambda: t[0])
    slow.connect()
    slow.write(np.full(6, 1.0))
    t[0] += 0.1
    np.testing.assert_allclose(slow.read()[0][:5], 0.1, rtol=1e-9)  # speed-limited: 1 rad/s * 0.1 s
    slow.damp()
    slow.write(np.zeros(6))
    assert slow.writes_after_damp == 1 and slow.target is None


def run_controller(ctrl: Controller, seconds: float):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not ctrl.finished.is_set():
        time.sleep(0.01)


def feed(ctrl: Controller, value: float, rows: int = 60, dt: float = 1 / 30):
    now = ctrl.clock()
    return ctrl.core.push_chunk(np.full((rows, 6), value), t0=now, dt=dt, now=now)


def test_controller_with_sim_arm_runs_stops_and_exits():
    cfg = ControllerConfig(stop_settle_s=0.1, damping_s=0.2)
    ctrl = Controller(cfg, SimArm(), rate_hz=500.0).start()
    try:
        assert ctrl.core.command(Event.START, ctrl.clock()).ok
        feed(ctrl, 0.3)
        run_controller(ctrl, 0.8)
        assert ctrl.snapshot.positions[0] > 0.2 and ctrl.core.state == State.RUNNING
        st = ctrl.status()
        assert st["loop_count"] > 200 and st["loop_alive"]
        assert ctrl.core.command(Event.STOP, ctrl.clock()).ok
        assert ctrl.finished.wait(3.0)
        assert ctrl.hw.damped and not ctrl.loop.running
    finally:
        ctrl.stop()


def test_hardware_error_in_the_loop_becomes_an_estop():
    class FailingArm(SimArm):
        fail = False

        def read(self):
            if self.fail:
                raise OSError("bus timeout")
            return super().read()

    arm = FailingArm()
    ctrl = Controller(ControllerConfig(estop_hold_s=0.05, damping_s=0.05), arm, rate_hz=500.0).start()
    try:
        ctrl.core.command(Event.START, ctrl.clock())
        run_controller(ctrl, 0.05)
        arm.fail = True
        assert ctrl.finished.wait(3.0)  # gave up after 0.5 s of failures
        assert ctrl.core.state == State.EMERGENCY_STOP and "bus timeout" in ctrl.last_hw_error
    finally:
        ctrl.stop()


def test_lerobot_robot_driver_via_make_robot_from_config(tmp_path):
    pytest.importorskip("lerobot")
    from lerobot_control_ros.hardware.lerobot_robot import LeRobotHardware, parse_robot_config
    from lerobot_control_ros.hardware.sim_arm_robot import SimArmRobot

    args = ["--robot.type=lerobot_ros_sim_arm", "--robot.id=test_arm", f"--robot.calibration_dir={tmp_path}",
            "--robot.initial=[0.1,0.1,0.1,0.1,0.1,0.1]"]
    hw = LeRobotHardware(args)
    assert isinstance(hw.robot, SimArmRobot)  # built by lerobot's own factory from the registered type
    assert hw.joint_names == list(ControllerConfig().joint_names)
    ctrl = Controller(ControllerConfig(stop_settle_s=0.05, damping_s=0.05), hw, rate_hz=200.0).start()
    try:
        np.testing.assert_allclose(ctrl.snapshot.positions, 0.1)
        ctrl.core.command(Event.START, ctrl.clock())
        feed(ctrl, 0.4)
        run_controller(ctrl, 0.8)
        assert ctrl.snapshot.positions[0] > 0.3
        ctrl.core.command(Event.STOP, ctrl.clock())
        assert ctrl.finished.wait(3.0)
        assert not hw.robot.is_connected  # damping = lerobot disconnect (torque off)
    finally:
        ctrl.stop()
    with pytest.raises(ValueError, match="--robot"):
        parse_robot_config(["type=so101_follower"])
    so = parse_robot_config(["--robot.type=so101_follower", "--robot.port=/dev/null"])
    assert type(so).__name__ == "SOFollowerRobotConfig" and so.port == "/dev/null"

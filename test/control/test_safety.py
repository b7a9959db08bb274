"""Position limits, velocity (slew) and step clamps; watchdog."""

from __future__ import annotations

import numpy as np
import pytest

from lerobot_control_ros.safety import SafetyLimits, Watchdog


def limits():
    return SafetyLimits(lower=[-1.0, -2.0], upper=[1.0, 2.0], max_velocity=[1.0, 10.0], max_step=[0.5, 0.5])


def test_position_limits_clip_per_joint():
    s = limits()
    cmd, rep = s.clamp(np.array([5.0, -5.0]), previous=np.array([1.0, -2.0]), measured=np.array([1.0, -2.0]), dt=1.0)
    np.testing.assert_allclose(cmd, [1.0, -2.0])
    assert rep.position and not rep.velocity and not rep.step


def test_velocity_clamp_turns_a_jump_into_a_ramp():
    s = limits()
    prev = np.zeros(2)
    cmd, rep = s.clamp(np.array([0.5, 0.5]), previous=prev, measured=prev, dt=0.002)
    np.testing.assert_allclose(cmd, [0.002, 0.02])  # 1 rad/s and 10 rad/s for 2 ms
    assert rep.velocity and not rep.position


def test_step_clamp_bounds_distance_to_measured():
    s = limits()
    cmd, rep = s.clamp(np.array([0.9, 1.9]), previous=np.array([0.9, 1.9]), measured=np.zeros(2), dt=0.002)
    np.testing.assert_allclose(cmd, [0.5, 0.5])
    assert rep.step and not rep.velocity


def test_limits_win_over_step_when_arm_is_outside():
    s = limits()
    cmd, _ = s.clamp(np.array([1.5, 0.0]), previous=np.array([1.5, 0.0]), measured=np.array([1.6, 0.0]), dt=0.1)
    assert cmd[0] == pytest.approx(1.0)


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="lower must be < upper"):
        SafetyLimits([1.0], [0.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="expected 2"):
        SafetyLimits([0.0, 0.0], [1.0, 1.0], [1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="> 0"):
        SafetyLimits([0.0], [1.0], [0.0], [1.0])


def test_watchdog():
    w = Watchdog(1.0)
    assert w.expired(0.0)  # never fed
    w.heartbeat(10.0)
    assert not w.expired(11.0) and w.expired(11.0001)
    w.heartbeat(9.0)  # an older beat never moves it back
    assert w.last == 10.0

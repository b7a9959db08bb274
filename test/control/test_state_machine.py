"""Every (state, event) pair: allowed ones go where the table says, all others are refused with a reason."""

from __future__ import annotations

import itertools

import pytest

from lerobot_control_ros.state_machine import TRANSITIONS, Event, State, StateMachine

EXPECTED = {
    (State.IDLE, Event.START): State.RUNNING,
    (State.IDLE, Event.RESET): State.RESETTING,
    (State.IDLE, Event.STOP): State.DAMPING,
    (State.IDLE, Event.ESTOP): State.EMERGENCY_STOP,
    (State.RUNNING, Event.PAUSE): State.PAUSED,
    (State.RUNNING, Event.WATCHDOG): State.PAUSED,
    (State.RUNNING, Event.STOP): State.DAMPING,
    (State.RUNNING, Event.ESTOP): State.EMERGENCY_STOP,
    (State.PAUSED, Event.RESUME): State.RUNNING,
    (State.PAUSED, Event.RESET): State.RESETTING,
    (State.PAUSED, Event.STOP): State.DAMPING,
    (State.PAUSED, Event.ESTOP): State.EMERGENCY_STOP,
    (State.RESETTING, Event.RESET_DONE): State.IDLE,
    (State.RESETTING, Event.PAUSE): State.PAUSED,
    (State.RESETTING, Event.STOP): State.DAMPING,
    (State.RESETTING, Event.ESTOP): State.EMERGENCY_STOP,
    (State.EMERGENCY_STOP, Event.ESTOP_HELD): State.DAMPING,
}


def test_table_is_exactly_the_documented_one():
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize("state,event", list(itertools.product(State, Event)))
def test_every_pair(state, event):
    sm = StateMachine(now=0.0)
    sm.state = state
    t = sm.handle(event, now=1.0)
    if (state, event) in EXPECTED:
        assert t.ok and sm.state == EXPECTED[(state, event)] and sm.since == 1.0
        assert t.old == state and t.new == sm.state
    else:
        assert not t.ok and sm.state == state and sm.since == 0.0
        assert t.message.startswith(f"{event.value} refused: ") and len(t.message) > len(event.value) + 12


def test_refusal_reasons_tell_the_operator_what_to_do():
    sm = StateMachine()
    sm.state = State.PAUSED
    assert "resume" in sm.handle(Event.START, 0).message
    sm.state = State.RUNNING
    assert "pause first" in sm.handle(Event.RESET, 0).message
    sm.state = State.EMERGENCY_STOP
    assert "latched" in sm.handle(Event.RESUME, 0).message
    sm.state = State.DAMPING
    assert "terminal" in sm.handle(Event.ESTOP, 0).message


def test_history_and_reason():
    sm = StateMachine()
    sm.handle(Event.START, 1.0)
    sm.handle(Event.PAUSE, 2.0, reason="operator")
    assert [t.new for t in sm.history] == [State.RUNNING, State.PAUSED]
    assert sm.reason == "operator"

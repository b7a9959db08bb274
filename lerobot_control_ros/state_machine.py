"""The controller's states and the only transitions allowed between them (no rclpy import).

One table (`TRANSITIONS`) is the whole policy: an operator command or an internal event that is not in it for the
current state is refused with a reason, and nothing changes. The numeric values are those of
lerobot_ros_msgs/ControllerStatus.

    IDLE            holding; the policy is ignored. start -> RUNNING, reset -> RESETTING.
    RUNNING         executing the action queue (holding when it is empty). pause / watchdog -> PAUSED.
    PAUSED          holding the position measured when it paused; only an explicit resume goes back to RUNNING.
    RESETTING       moving smoothly to the home pose; arrival -> IDLE; pause aborts it (hold where it is).
    EMERGENCY_STOP  latched: holding at once, queue dropped, every command refused; after a short hold -> DAMPING.
    DAMPING         terminal: the hardware's damping mode (safe stop ends here too, after settling), then exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class State(IntEnum):
    IDLE = 0
    RUNNING = 1
    PAUSED = 2
    RESETTING = 3
    EMERGENCY_STOP = 4
    DAMPING = 5


class Event(str, Enum):
    # operator commands (services)
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    RESET = "reset"
    STOP = "stop"
    ESTOP = "estop"
    # internal events (the core raises them)
    WATCHDOG = "watchdog"  # policy heartbeat lost while RUNNING
    RESET_DONE = "reset_done"  # home pose reached
    ESTOP_HELD = "estop_held"  # e-stop hold time over: damp


OPERATOR_EVENTS = (Event.START, Event.PAUSE, Event.RESUME, Event.RESET, Event.STOP, Event.ESTOP)

_ANY_LIVE = (State.IDLE, State.RUNNING, State.PAUSED, State.RESETTING)

TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.IDLE, Event.START): State.RUNNING,
    (State.IDLE, Event.RESET): State.RESETTING,
    (State.RUNNING, Event.PAUSE): State.PAUSED,
    (State.RUNNING, Event.WATCHDOG): State.PAUSED,
    (State.PAUSED, Event.RESUME): State.RUNNING,
    (State.PAUSED, Event.RESET): State.RESETTING,
    (State.RESETTING, Event.RESET_DONE): State.IDLE,
    (State.RESETTING, Event.PAUSE): State.PAUSED,
    (State.EMERGENCY_STOP, Event.ESTOP_HELD): State.DAMPING,
    **{(s, Event.STOP): State.DAMPING for s in _ANY_LIVE},
    **{(s, Event.ESTOP): State.EMERGENCY_STOP for s in _ANY_LIVE},
}

# Why a refused command was refused, in words an operator can act on.
_HINTS: dict[tuple[State, Event], str] = {
    (State.RUNNING, Event.START): "already RUNNING",
    (State.PAUSED, Event.START): "PAUSED: use resume to continue the policy (or reset to go home)",
    (State.RUNNING, Event.RESUME): "already RUNNING",
    (State.IDLE, Event.RESUME): "IDLE: use start",
    (State.IDLE, Event.PAUSE): "IDLE is already holding; nothing to pause",
    (State.PAUSED, Event.PAUSE): "already PAUSED",
    (State.RUNNING, Event.RESET): "pause first: reset is refused while the policy drives the arm",
    (State.RESETTING, Event.RESET): "already RESETTING",
    (State.RESETTING, Event.START): "RESETTING: wait for IDLE (or pause to abort the reset)",
    (State.RESETTING, Event.RESUME): "RESETTING: wait for IDLE (or pause to abort the reset)",
}


@dataclass(frozen=True)
class Transition:
    ok: bool
    old: State
    new: State
    event: Event
    message: str


class StateMachine:
    """Current state, why, and since when (caller's clock). Not thread-safe on its own: ControllerCore locks it."""

    def __init__(self, now: float = 0.0):
        self.state = State.IDLE
        self.reason = "started; holding"
        self.since = now
        self.history: list[Transition] = []

    def allowed(self, event: Event) -> bool:
        return (self.state, event) in TRANSITIONS

    def handle(self, event: Event, now: float, reason: str = "") -> Transition:
        event = Event(event)
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            return Transition(False, self.state, self.state, event, self.refusal(event))
        old = self.state
        self.state, self.since = new, now
        self.reason = reason or f"{event.value} ({old.name} -> {new.name})"
        t = Transition(True, old, new, event, self.reason)
        self.history.append(t)
        return t

    def refusal(self, event: Event) -> str:
        hint = _HINTS.get((self.state, event))
        if hint is None:
            if self.state == State.EMERGENCY_STOP:
                hint = "EMERGENCY_STOP is latched: restart the controller after checking the robot"
            elif self.state == State.DAMPING:
                hint = "DAMPING is terminal: the controller is shutting down"
            else:
                hint = f"not allowed in {self.state.name}"
        return f"{event.value} refused: {hint}"

"""The standard launch_ros pattern for bringing a lifecycle node up from a launch file, written once for every
launch/*.launch.py of this package: emit ChangeState(configure), and on reaching `inactive` emit activate.

Imports of launch/launch_ros happen inside the functions, at launch time: those packages exist only on a robot with
a ROS install (and the CI launch checker swaps in stand-ins while it evaluates a launch file).
"""

from __future__ import annotations


def is_true(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")


def change_state(node, transition_id: int):
    """An action asking `node` (a launch_ros LifecycleNode action) for one lifecycle transition."""
    from launch.actions import EmitEvent
    from launch.events import matches_action
    from launch_ros.events.lifecycle import ChangeState

    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id))


def on_state(node, goal_state: str, actions: list):
    """Run `actions` when `node` reaches `goal_state` ("inactive", "active", ...)."""
    from launch.actions import RegisterEventHandler
    from launch_ros.event_handlers import OnStateTransition

    return RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, goal_state=goal_state,
                                                  entities=actions))


def activate_on_inactive(node):
    """Once `node` is configured (inactive), activate it."""
    from lifecycle_msgs.msg import Transition

    return on_state(node, "inactive", [change_state(node, Transition.TRANSITION_ACTIVATE)])


def bring_up(node) -> list:
    """`node` plus the actions that configure and then activate it."""
    from lifecycle_msgs.msg import Transition

    return [node, activate_on_inactive(node), change_state(node, Transition.TRANSITION_CONFIGURE)]

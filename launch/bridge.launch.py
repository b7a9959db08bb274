"""bridge_node alone: one loaded policy served over the openpi websocket protocol from inside ROS, every request
and reply also published on bridge/observation_summary and bridge/action_chunk (record them with ros2 bag).

    ros2 launch lerobot_ros bridge.launch.py policy_path:=/path/to/checkpoint device:=cuda port:=8000
    # then, on the robot: ros2 launch lerobot_ros policy.launch.py server_url:=ws://127.0.0.1:8000

Arguments (empty = keep the params file's value): params_file (default: the package's config/bridge_node.yaml),
policy_path, device, port, namespace, activate (true: configure + activate here; false: leave it to a lifecycle
manager).
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition


def _bridge_node(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    params_file = arg("params_file") or os.path.join(FindPackageShare("lerobot_ros").perform(context), "config",
                                                     "bridge_node.yaml")
    overrides = {name: arg(name) for name in ("policy_path", "device") if arg(name)}
    if arg("port"):
        overrides["port"] = int(arg("port"))
    bridge = LifecycleNode(package="lerobot_ros", executable="bridge_node", name="bridge_node",
                           namespace=arg("namespace"), parameters=[params_file] + ([overrides] if overrides else []),
                           output="screen")
    if arg("activate").lower() not in ("true", "1", "yes"):
        return [bridge]
    transition = lambda tid: EmitEvent(event=ChangeState(  # noqa: E731
        lifecycle_node_matcher=matches_action(bridge), transition_id=tid))
    return [bridge,
            RegisterEventHandler(OnStateTransition(target_lifecycle_node=bridge, goal_state="inactive",
                                                   entities=[transition(Transition.TRANSITION_ACTIVATE)])),
            transition(Transition.TRANSITION_CONFIGURE)]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value="", description="bridge_node params YAML"),
        DeclareLaunchArgument("policy_path", default_value="", description="checkpoint folder or hub id"),
        DeclareLaunchArgument("device", default_value="", description="auto | cpu | cuda | cuda:N | mps"),
        DeclareLaunchArgument("port", default_value="", description="websocket port"),
        DeclareLaunchArgument("namespace", default_value="", description="the robot's namespace"),
        DeclareLaunchArgument("activate", default_value="true", choices=["true", "false"],
                              description="configure and activate the lifecycle node from this launch"),
        OpaqueFunction(function=_bridge_node),
    ])

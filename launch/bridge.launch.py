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
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from lerobot_control_ros.launch_lifecycle import bring_up, is_true


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
    if not is_true(arg("activate")):
        return [bridge]
    return bring_up(bridge)


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

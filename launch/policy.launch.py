"""policy_node alone: cameras + joint states -> action_chunk, for a robot whose controller is already running.

    ros2 launch lerobot_ros policy.launch.py policy_path:=/path/to/checkpoint device:=cuda
    ros2 launch lerobot_ros policy.launch.py server_url:=ws://gpu-box:8000          # model on another machine
    ros2 launch lerobot_ros policy.launch.py params_file:=/my/policy_node.yaml namespace:=arm1

Arguments (empty = keep the params file's value): params_file (default: the package's config/policy_node.yaml),
policy_path, device, server_url, namespace, activate (true: configure + activate the lifecycle node here; false:
leave it unconfigured for a lifecycle manager).
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from lerobot_control_ros.launch_lifecycle import bring_up, is_true

OVERRIDABLE = ("policy_path", "device", "server_url")


def _policy_node(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    params_file = arg("params_file") or os.path.join(FindPackageShare("lerobot_ros").perform(context), "config",
                                                     "policy_node.yaml")
    overrides = {name: arg(name) for name in OVERRIDABLE if arg(name)}
    node = LifecycleNode(package="lerobot_ros", executable="policy_node", name="policy_node",
                         namespace=arg("namespace"), parameters=[params_file] + ([overrides] if overrides else []),
                         output="screen")
    if not is_true(arg("activate")):
        return [node]
    return bring_up(node)


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value="", description="policy_node params YAML"),
        DeclareLaunchArgument("policy_path", default_value="", description="checkpoint folder or hub id"),
        DeclareLaunchArgument("device", default_value="", description="auto | cpu | cuda | cuda:N | mps"),
        DeclareLaunchArgument("server_url", default_value="", description="ws://host:port of a remote policy server"),
        DeclareLaunchArgument("namespace", default_value="", description="the robot's namespace"),
        DeclareLaunchArgument("activate", default_value="true", choices=["true", "false"],
                              description="configure and activate the lifecycle node from this launch"),
        OpaqueFunction(function=_policy_node),
    ])

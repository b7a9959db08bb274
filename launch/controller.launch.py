"""controller_node alone: the only process that commands the robot (default: the simulated arm).

    ros2 launch lerobot_ros controller.launch.py
    ros2 launch lerobot_ros controller.launch.py hardware:=topic namespace:=arm1
    ros2 launch lerobot_ros controller.launch.py params_file:=/my/controller_node.yaml activate:=false

controller_node is a lifecycle node (it owns hardware): this launch configures it (hardware connected, loop running,
HOLDING in IDLE) and activates it. The arm moves only after an operator command
(`ros2 service call /controller/start std_srvs/srv/Trigger`, or `ros2 run lerobot_ros teleop_keyboard`).
Arguments (empty = keep the params file's value): params_file (default: the package's config/controller_node.yaml),
hardware (sim | topic | lerobot), namespace, activate (false: leave it unconfigured for a lifecycle manager).
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from lerobot_control_ros.launch_lifecycle import bring_up, is_true


def _controller_node(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    params_file = arg("params_file") or os.path.join(FindPackageShare("lerobot_ros").perform(context), "config",
                                                     "controller_node.yaml")
    overrides = {"autostart": False}  # this launch drives the lifecycle transitions itself
    if arg("hardware"):
        overrides["hardware"] = arg("hardware")
    node = LifecycleNode(package="lerobot_ros", executable="controller_node", name="controller_node",
                         namespace=arg("namespace"), parameters=[params_file, overrides], output="screen")
    if not is_true(arg("activate")):
        return [node]
    return bring_up(node)


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value="", description="controller_node params YAML"),
        DeclareLaunchArgument("hardware", default_value="", description="sim | topic | lerobot (empty: the YAML's)"),
        DeclareLaunchArgument("namespace", default_value="", description="the robot's namespace"),
        DeclareLaunchArgument("activate", default_value="true", choices=["true", "false"],
                              description="configure and activate the lifecycle node from this launch"),
        OpaqueFunction(function=_controller_node),
    ])

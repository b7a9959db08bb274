"""controller_node alone: the only process that commands the robot (default: the simulated arm).

    ros2 launch lerobot_ros controller.launch.py
    ros2 launch lerobot_ros controller.launch.py hardware:=topic namespace:=arm1
    ros2 launch lerobot_ros controller.launch.py params_file:=/my/controller_node.yaml

The node configures + activates itself (`autostart: true` in the YAML) and then HOLDS in IDLE: the arm moves only
after an operator command (`ros2 service call /controller/start std_srvs/srv/Trigger`, or
`ros2 run lerobot_ros teleop_keyboard`). Arguments (empty = keep the params file's value): params_file (default:
the package's config/controller_node.yaml), hardware (sim | topic | lerobot), namespace.
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _controller_node(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    params_file = arg("params_file") or os.path.join(FindPackageShare("lerobot_ros").perform(context), "config",
                                                     "controller_node.yaml")
    overrides = {"hardware": arg("hardware")} if arg("hardware") else {}
    return [Node(package="lerobot_ros", executable="controller_node", name="controller_node",
                 namespace=arg("namespace"), parameters=[params_file] + ([overrides] if overrides else []),
                 output="screen", emulate_tty=True)]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value="", description="controller_node params YAML"),
        DeclareLaunchArgument("hardware", default_value="", description="sim | topic | lerobot (empty: the YAML's)"),
        DeclareLaunchArgument("namespace", default_value="", description="the robot's namespace"),
        OpaqueFunction(function=_controller_node),
    ])

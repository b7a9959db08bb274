"""ament_python package `lerobot_ros`: pip-installable (editable) in a venv, colcon-buildable on a robot."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "lerobot_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["lerobot_serve_ros", "lerobot_serve_ros.*", "lerobot_control_ros", "lerobot_control_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="lerobot_ros maintainers",
    maintainer_email="maintainers@lerobot-ros.invalid",
    description="LeRobot policies on ROS 2 robots and over the openpi websocket protocol.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            # websocket serving (no ROS)
            "lerobot-serve = lerobot_serve_ros.serve_cli:main",
            "lerobot-ros-make-checkpoint = lerobot_serve_ros.make_checkpoint:main",
            # ROS nodes (ros2 run lerobot_ros <name>)
            "policy_node = lerobot_serve_ros.policy_node:main",
            "bridge_node = lerobot_serve_ros.bridge_node:main",
            "controller_node = lerobot_control_ros.controller_node:main",
            "teleop_keyboard = lerobot_control_ros.keyboard:main",
            "sim_camera_node = lerobot_control_ros.sim_camera_node:main",
            "bag_recorder_node = lerobot_control_ros.bag_recorder_node:main",
            "arm_viz_node = lerobot_control_ros.arm_viz_node:main",
            # the whole stack without a ROS install
            "lerobot-ros-demo = lerobot_control_ros.demo:main",
        ],
    },
)

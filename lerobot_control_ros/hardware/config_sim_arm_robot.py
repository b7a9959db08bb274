"""Config of `SimArmRobot`: registered with LeRobot as robot type `lerobot_ros_sim_arm`, so
`--robot.type=lerobot_ros_sim_arm` goes through lerobot's own `make_robot_from_config` like any real robot.
(Module and class names follow lerobot's plugin convention: config_<x>.py / <X>Config -> <x>.py / <X>.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.robots.config import RobotConfig

from lerobot_control_ros.controller_core import SO101_JOINTS


@RobotConfig.register_subclass("lerobot_ros_sim_arm")
@dataclass(kw_only=True)
class SimArmRobotConfig(RobotConfig):
    joint_names: list[str] = field(default_factory=lambda: list(SO101_JOINTS))
    tau_s: float = 0.05
    max_velocity: float = 4.0
    lower: list[float] = field(default_factory=lambda: [-2.0, -1.8, -1.75, -1.7, -2.8, -0.2])
    upper: list[float] = field(default_factory=lambda: [2.0, 1.8, 1.75, 1.7, 2.9, 1.8])
    initial: list[float] = field(default_factory=lambda: [0.0] * 6)

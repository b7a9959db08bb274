"""A LeRobot `Robot` whose motors are the simulated arm: lets the LeRobot driver path (`--robot.*` flags ->
make_robot_from_config -> connect/get_observation/send_action/disconnect) be exercised without hardware.

It behaves like lerobot's motor-bus followers where the controller can tell: `<joint>.pos` features, errors when
used unconnected or connected twice, disconnect() turns torque off (the sim arm coasts, damped).
"""

from __future__ import annotations

from functools import cached_property

from lerobot.robots.robot import Robot
from lerobot.utils.errors import DeviceAlreadyConnectedError, DeviceNotConnectedError

from lerobot_control_ros.hardware.config_sim_arm_robot import SimArmRobotConfig
from lerobot_control_ros.hardware.sim_arm import SimArm, SimArmConfig


class SimArmRobot(Robot):
    config_class = SimArmRobotConfig
    name = "lerobot_ros_sim_arm"

    def __init__(self, config: SimArmRobotConfig):
        super().__init__(config)
        self.config = config
        self.arm = SimArm(SimArmConfig(joint_names=list(config.joint_names), tau_s=config.tau_s,
                                       max_velocity=config.max_velocity, lower=list(config.lower),
                                       upper=list(config.upper), initial=list(config.initial)))

    @cached_property
    def observation_features(self) -> dict:
        return {f"{j}.pos": float for j in self.config.joint_names}

    @cached_property
    def action_features(self) -> dict:
        return {f"{j}.pos": float for j in self.config.joint_names}

    @property
    def is_connected(self) -> bool:
        return self.arm.connected

    def connect(self, calibrate: bool = True) -> None:
        if self.is_connected:
            raise DeviceAlreadyConnectedError(f"{self} already connected")
        self.arm.connect()

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def get_observation(self) -> dict:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected.")
        q, _ = self.arm.read()
        return {f"{j}.pos": float(x) for j, x in zip(self.config.joint_names, q)}

    def send_action(self, action: dict) -> dict:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected.")
        goal = [float(action[f"{j}.pos"]) for j in self.config.joint_names]
        self.arm.write(goal)
        return {f"{j}.pos": g for j, g in zip(self.config.joint_names, goal)}

    def disconnect(self) -> None:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected.")
        self.arm.damp()  # torque off, like lerobot followers' disable_torque_on_disconnect
        self.arm.disconnect()

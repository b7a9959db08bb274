"""Any LeRobot `Robot` as the controller's hardware, built exactly as lerobot's own scripts build it:
`--robot.type=so101_follower --robot.port=/dev/ttyACM0 --robot.id=my_arm` -> draccus -> make_robot_from_config.

Joints are the robot's `<name>.pos` action features (units are the robot's: lerobot's SO-100/101 followers use
degrees, or -100..100 with `use_degrees=false`: give the controller's limits and home pose in the same units).
LeRobot has no damping command: damp() disconnects, which turns torque off on the bus followers
(`disable_torque_on_disconnect`). Cameras belong on ROS topics, not here: a robot's get_observation() also reads its
cameras, too slow for the control loop; configure the robot without cameras (`--robot.cameras={}`) and run the
loop at what the bus allows (`rate_hz`, e.g. 100-200 Hz for Feetech/Dynamixel buses).
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import make_dataclass

import numpy as np

from lerobot_control_ros.hardware.base import Hardware

log = logging.getLogger(__name__)

# lerobot registers a robot type when its config module is imported (as its own scripts do).
_LEROBOT_ROBOT_MODULES = ("so_follower", "koch_follower", "omx_follower", "bi_so_follower", "hope_jr", "reachy2",
                          "openarm_follower", "bi_openarm_follower", "earthrover_mini_plus", "rebot_b601_follower",
                          "unitree_g1")


def parse_robot_config(args: list[str]):
    """`--robot.*` flags -> a lerobot RobotConfig (draccus, as `lerobot-record` parses them)."""
    import draccus
    from lerobot.robots.config import RobotConfig

    for mod in _LEROBOT_ROBOT_MODULES:
        try:
            importlib.import_module(f"lerobot.robots.{mod}")
        except Exception:  # noqa: BLE001 - an optional dependency of one robot must not block the others
            pass
    importlib.import_module("lerobot_control_ros.hardware.config_sim_arm_robot")
    try:
        from lerobot.utils.import_utils import register_third_party_plugins

        register_third_party_plugins()
    except Exception:  # noqa: BLE001
        pass

    robot_args = make_dataclass("RobotArgs", [("robot", RobotConfig)])  # real type object, not a string
    bad = [a for a in args if not a.startswith("--robot.")]
    if bad:
        raise ValueError(f"robot arguments must look like --robot.<field>=<value>, got {bad}")
    return draccus.parse(config_class=robot_args, args=list(args)).robot


class LeRobotHardware(Hardware):
    def __init__(self, robot_args: list[str] | None = None, robot=None):
        """Either flags (parsed and built with make_robot_from_config) or an already built Robot."""
        if robot is None:
            from lerobot.robots.utils import make_robot_from_config

            robot = make_robot_from_config(parse_robot_config(robot_args or []))
        self.robot = robot
        self.joint_names = [k[: -len(".pos")] for k in robot.action_features if k.endswith(".pos")]
        if not self.joint_names:
            raise ValueError(f"robot {robot} has no '<joint>.pos' action features: {list(robot.action_features)}")
        self._last: tuple[float, np.ndarray] | None = None
        self._damped = False

    def connect(self) -> None:
        if not self.robot.is_connected:
            self.robot.connect()

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        obs = self.robot.get_observation()
        q = np.array([float(obs[f"{j}.pos"]) for j in self.joint_names])
        now = time.monotonic()
        v = np.zeros_like(q)
        if self._last is not None and now > self._last[0]:
            v = (q - self._last[1]) / (now - self._last[0])
        self._last = (now, q)
        return q, v

    def write(self, positions: np.ndarray) -> None:
        if self._damped:
            return
        self.robot.send_action({f"{j}.pos": float(x) for j, x in zip(self.joint_names, positions)})

    def damp(self) -> None:
        if not self._damped and self.robot.is_connected:
            self.robot.disconnect()
        self._damped = True

    def disconnect(self) -> None:
        if self.robot.is_connected:
            self.robot.disconnect()

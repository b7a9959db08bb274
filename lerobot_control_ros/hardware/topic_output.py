"""ros2_control-style output: position commands as std_msgs/Float64MultiArray on
`forward_position_controller/commands` (what a forward_command_controller / position_controllers/JointGroup-
PositionController expects: one value per joint, in the controller's configured joint order), positions read back
from a sensor_msgs/JointState topic (a joint_state_broadcaster), matched by name in any order.

Publishing happens from the control-loop thread (a publish is a plain call, no executor involved); the feedback
subscription runs in the node's executor and hands the latest message over by reference swap.
"""

from __future__ import annotations

import time

import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from lerobot_control_ros.hardware.base import Hardware


class TopicOutput(Hardware):
    def __init__(self, node, joint_names: list[str], command_topic: str = "forward_position_controller/commands",
                 feedback_topic: str = "joint_states", command_qos=10, feedback_qos=None,
                 max_feedback_age_s: float = 0.5):
        from rclpy.qos import qos_profile_sensor_data

        self.node = node
        self.joint_names = list(joint_names)
        self.command_topic = command_topic
        self.feedback_topic = feedback_topic
        self.max_feedback_age_s = max_feedback_age_s
        self._cmd_qos = command_qos
        self._fb_qos = feedback_qos if feedback_qos is not None else qos_profile_sensor_data
        self._latest: tuple[float, np.ndarray, np.ndarray] | None = None
        self._pub = None
        self._sub = None
        self._damped = False
        self.missing_names_warned = False

    def connect(self) -> None:
        self._pub = self.node.create_publisher(Float64MultiArray, self.command_topic, self._cmd_qos)
        self._sub = self.node.create_subscription(JointState, self.feedback_topic, self._on_joint_state, self._fb_qos)

    def _on_joint_state(self, msg: JointState) -> None:
        idx = {n: i for i, n in enumerate(msg.name)}
        missing = [j for j in self.joint_names if j not in idx]
        if missing or len(msg.position) != len(msg.name):
            if not self.missing_names_warned:
                self.node.get_logger().error(f"{self.feedback_topic}: JointState without positions for {missing} "
                                             f"(has {list(msg.name)}); ignored")
                self.missing_names_warned = True
            return
        pos = np.array([msg.position[idx[j]] for j in self.joint_names], dtype=np.float64)
        vel = (np.array([msg.velocity[idx[j]] for j in self.joint_names], dtype=np.float64)
               if len(msg.velocity) == len(msg.name) else np.zeros(len(self.joint_names)))
        self._latest = (time.monotonic(), pos, vel)

    @property
    def is_ready(self) -> bool:
        return self._latest is not None

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        latest = self._latest
        if latest is None:
            raise RuntimeError(f"no JointState received on {self.feedback_topic}")
        age = time.monotonic() - latest[0]
        if age > self.max_feedback_age_s:
            raise RuntimeError(f"joint feedback on {self.feedback_topic} is {age:.2f} s old "
                               f"(limit {self.max_feedback_age_s} s)")
        return latest[1].copy(), latest[2].copy()

    def write(self, positions: np.ndarray) -> None:
        if self._damped:
            return
        self._pub.publish(Float64MultiArray(data=[float(x) for x in positions]))

    def damp(self) -> None:
        """ros2_control has no damping command on this interface: stop commanding (the last command stays; the
        robot's own controller manager / hardware decides what happens next, typically holding)."""
        self._damped = True

    def disconnect(self) -> None:
        if self._sub is not None:
            self.node.destroy_subscription(self._sub)
        if self._pub is not None:
            self.node.destroy_publisher(self._pub)
        self._sub = self._pub = None

"""`arm_viz_node`: the arm and the predicted action chunk as messages rviz2 and rqt_plot display out of the box.

rviz has no display for lerobot_ros_msgs/ActionChunk, and this setup has no URDF / TF tree, so this node mirrors
them into standard types, all in frame `frame_id` (rviz's Fixed Frame; no TF needed):

  viz/arm                 geometry_msgs/PolygonStamped  the arm now (from joint_states), as a line chain
  viz/chunk_end_arm       geometry_msgs/PolygonStamped  the arm at the last action of the newest chunk
  viz/chunk_tip_path      geometry_msgs/PoseArray       the gripper pose at every action of the newest chunk
  predicted_joint_states  sensor_msgs/JointState        the newest chunk's action due now (rqt_plot: predicted
                                                        vs joint_states), at `rate_hz`

The kinematics are the simulated arm's (sim_arm_geometry.py, SO-101-like proportions); on a robot with a URDF use
robot_state_publisher and a RobotModel display fed by predicted_joint_states instead.
"""

from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import Point32, Pose, PoseArray, PolygonStamped
from lerobot_ros_msgs.msg import ActionChunk
from rclpy.node import Node
from sensor_msgs.msg import JointState

from lerobot_control_ros.controller_core import SO101_JOINTS
from lerobot_control_ros.sim_arm_geometry import arm_points, tip_pitch
from lerobot_control_ros.node_main import spin_node
from lerobot_serve_ros.ros_common import CHUNK_QOS, SENSOR_QOS, declare, time_to_ns

NODE_NAME = "arm_viz_node"


def chain_polygon(points: np.ndarray) -> list[Point32]:
    """Out along the chain and back, so rviz's closing edge lies on the arm instead of cutting across."""
    seq = list(points) + list(points[-2:0:-1])
    return [Point32(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in seq]


def tip_pose(q) -> Pose:
    """Gripper pose: at the chain's tip, x axis along the last link (yaw = pan, pitch from the planar chain)."""
    p = arm_points(q)[-1]
    yaw, pitch = float(q[0]), -tip_pitch(q)
    cy, sy, cp, sp = math.cos(yaw / 2), math.sin(yaw / 2), math.cos(pitch / 2), math.sin(pitch / 2)
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in p)
    pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = cy * cp, -sy * sp, cy * sp, sy * cp
    return pose


class ArmVizNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        self.frame = d("frame_id", "base_link", "frame of every published message (set rviz's Fixed Frame to it)")
        self.joint_names = d("joint_names", list(SO101_JOINTS), "joints in SO-101 order the kinematics use")
        rate = d("rate_hz", 30.0, "publish rate of viz/arm and predicted_joint_states")
        self.q = np.zeros(len(self.joint_names))
        self.chunk: tuple[int, float, np.ndarray] | None = None  # (stamp ns, dt, (T, n) rows in joint order)
        self.create_subscription(JointState, d("joint_states_topic", "joint_states", "measured joints"),
                                 self._on_joints, SENSOR_QOS)
        self.create_subscription(ActionChunk, d("action_chunk_topic", "action_chunk", "chunks to mirror"),
                                 self._on_chunk, CHUNK_QOS)
        self.arm_pub = self.create_publisher(PolygonStamped, "viz/arm", 10)
        self.end_pub = self.create_publisher(PolygonStamped, "viz/chunk_end_arm", 10)
        self.path_pub = self.create_publisher(PoseArray, "viz/chunk_tip_path", 10)
        self.pred_pub = self.create_publisher(JointState, "predicted_joint_states", 10)
        self.create_timer(1.0 / rate, self._tick)

    def _on_joints(self, msg: JointState) -> None:
        pos = dict(zip(msg.name, msg.position))
        self.q = np.array([pos.get(n, q) for n, q in zip(self.joint_names, self.q)])

    def _on_chunk(self, msg: ActionChunk) -> None:
        data = np.asarray(msg.data, dtype=float).reshape(msg.rows, msg.cols)
        cols = {name.removesuffix(".pos"): i for i, name in enumerate(msg.action_names)}
        rows = np.tile(self.q, (msg.rows, 1))
        for j, name in enumerate(self.joint_names):
            if name in cols:
                rows[:, j] = data[:, cols[name]]
        self.chunk = (time_to_ns(msg.header.stamp), float(msg.dt), rows)
        stamp = self.get_clock().now().to_msg()
        path = PoseArray(poses=[tip_pose(r) for r in rows])
        path.header.stamp, path.header.frame_id = stamp, self.frame
        self.path_pub.publish(path)
        end = PolygonStamped()
        end.header.stamp, end.header.frame_id = stamp, self.frame
        end.polygon.points = chain_polygon(arm_points(rows[-1]))
        self.end_pub.publish(end)

    def _tick(self) -> None:
        now = self.get_clock().now()
        arm = PolygonStamped()
        arm.header.stamp, arm.header.frame_id = now.to_msg(), self.frame
        arm.polygon.points = chain_polygon(arm_points(self.q))
        self.arm_pub.publish(arm)
        if self.chunk is not None:
            t0, dt, rows = self.chunk
            i = int((now.nanoseconds - t0) / 1e9 / dt) if dt > 0 else 0
            if 0 <= i < len(rows):
                js = JointState(name=list(self.joint_names), position=[float(v) for v in rows[i]])
                js.header.stamp = now.to_msg()
                self.pred_pub.publish(js)


def main(args: list[str] | None = None) -> int:
    return spin_node(ArmVizNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

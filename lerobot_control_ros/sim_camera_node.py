"""`sim_camera_node`: simulated cameras for the simulated arm, so the demo's policy sees images that follow the arm.

Faithful fake hardware, the camera half of the simulated robot: it behaves on the wire like a camera driver
(usb_cam, realsense): `sensor_msgs/Image` rgb8 per camera at a fixed rate, best-effort depth-1 QoS, header stamped
at capture with a per-camera optical frame id. What it shows is rendered from the latest `joint_states`, so the
images change as the arm moves and a stale or stopped camera is observable downstream:

  front   a side view of the arm: upper arm, forearm and wrist as a planar chain (shoulder_lift, elbow_flex,
          wrist_flex), foreshortened by shoulder_pan, gripper jaws opening with `gripper`
  wrist   the view from the gripper: a table with a target block, shifted by pan/lift, rotated by wrist_roll,
          with the two jaws at the image edges opening with `gripper`

A plain node, not a lifecycle one: like a camera driver it has nothing to load and starts streaming when it starts.
Parameters (all declared with descriptions): cameras, cameras.<name>.topic, cameras.<name>.frame_id, width,
height, rate_hz, joint_states_topic, joint_names.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from lerobot_control_ros.controller_core import SO101_JOINTS
from lerobot_control_ros.sim_arm_geometry import arm_points, reach, tip_pitch
from lerobot_control_ros.node_main import spin_node
from lerobot_serve_ros.ros_common import SENSOR_QOS, SENSOR_QOS_DEPTH1, declare

NODE_NAME = "sim_camera_node"


def render_front(q: np.ndarray, width: int, height: int) -> np.ndarray:
    """Side view (the x-z plane) of the arm of sim_arm_geometry: (H, W, 3) uint8 RGB."""
    img = np.full((height, width, 3), (200, 210, 220), np.uint8)
    floor = int(height * 0.85)
    img[floor:] = (120, 110, 100)
    grip = float(q[5]) if len(q) > 5 else 0.0
    scale = floor * 0.9 / reach()  # pixels per metre: the arm pointing up just fits
    pts3 = arm_points(q)
    ipts = [(int(round(width / 2 + p[0] * scale)), int(round(floor - p[2] * scale))) for p in pts3]
    colors = [(90, 90, 90), (40, 90, 200), (200, 120, 40), (60, 160, 60)]
    thick = max(2, width // 40)
    for a, b, c in zip(ipts, ipts[1:], colors):
        cv2.line(img, a, b, c, thick, cv2.LINE_AA)
    for p in ipts[1:-1]:
        cv2.circle(img, p, thick, (30, 30, 30), -1, cv2.LINE_AA)
    # gripper jaws at the tip, across the last link, opening with `gripper`
    pitch = tip_pitch(q)
    fore = math.cos(float(q[0]))
    along = np.array([math.cos(pitch) * fore, -math.sin(pitch)])
    normal = np.array([math.sin(pitch), math.cos(pitch) * fore])
    tip = np.array(ipts[-1], dtype=float)
    opening = (0.01 + 0.03 * min(1.0, abs(grip))) * scale
    for s in (-1, 1):
        a = tip + s * opening * normal
        b = a + 0.035 * scale * along
        cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), (90, 90, 90), max(1, thick // 2), cv2.LINE_AA)
    # the base changes colour with pan, so the side view is not blind to it
    hue = int(90 + 60 * math.sin(float(q[0])))
    half = int(0.04 * scale)
    cv2.rectangle(img, (width // 2 - half, floor - 4), (width // 2 + half, floor + 4), (hue, 60, 255 - hue), -1)
    return img


def render_wrist(q: np.ndarray, width: int, height: int) -> np.ndarray:
    """The gripper camera: a checkered table and a red block, moved by the arm; (H, W, 3) uint8 RGB."""
    pan, lift, elbow, wflex = (float(x) for x in q[:4])
    roll = float(q[4]) if len(q) > 4 else 0.0
    grip = float(q[5]) if len(q) > 5 else 0.0
    big = 2 * max(width, height)
    yy, xx = np.mgrid[0:big, 0:big]
    shift_x = pan * big * 0.25
    shift_y = (lift + elbow + wflex) * big * 0.12
    checker = (((xx + shift_x) // (big / 8)).astype(int) + ((yy + shift_y) // (big / 8)).astype(int)) % 2
    table = np.where(checker[..., None] == 1, np.uint8([180, 170, 150]), np.uint8([140, 130, 115])).astype(np.uint8)
    cx, cy = int(big / 2 - shift_x), int(big / 2 - shift_y)
    half = int(big / 10)
    cv2.rectangle(table, (cx - half, cy - half), (cx + half, cy + half), (200, 40, 40), -1)
    rot = cv2.getRotationMatrix2D((big / 2, big / 2), math.degrees(roll), 1.0)
    table = cv2.warpAffine(table, rot, (big, big), borderMode=cv2.BORDER_REFLECT)
    y0, x0 = (big - height) // 2, (big - width) // 2
    img = np.ascontiguousarray(table[y0:y0 + height, x0:x0 + width])
    jaw = int(width * (0.28 - 0.2 * min(1.0, abs(grip))))
    img[int(height * 0.6):, :jaw] = (70, 70, 70)
    img[int(height * 0.6):, width - jaw:] = (70, 70, 70)
    return img


RENDERERS = {"front": render_front, "wrist": render_wrist}


class SimCameraNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        cams = d("cameras", ["front", "wrist"], "simulated cameras; each renders a view named like it "
                                                 "(front: side view of the arm; wrist: gripper view; else front)")
        self.cams = []
        for cam in cams:
            topic = d(f"cameras.{cam}.topic", f"{cam}/image_raw", f"sensor_msgs/Image topic of camera {cam!r}")
            frame = d(f"cameras.{cam}.frame_id", f"{cam}_camera_optical_frame", f"header.frame_id of camera {cam!r}")
            pub = self.create_publisher(Image, topic, SENSOR_QOS_DEPTH1)
            self.cams.append((cam, frame, RENDERERS.get(cam, render_front), pub))
        self.width = d("width", 128, "image width in pixels")
        self.height = d("height", 96, "image height in pixels")
        rate = d("rate_hz", 30.0, "frames per second per camera")
        self.joint_names = d("joint_names", list(SO101_JOINTS),
                             "joints rendered, in SO-101 order (pan, lift, elbow, wrist flex, wrist roll, gripper)")
        topic = d("joint_states_topic", "joint_states", "sensor_msgs/JointState the rendering follows")
        self.q = np.zeros(6)
        self.frames = 0
        self.create_subscription(JointState, topic, self._on_joints, SENSOR_QOS)
        self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"streaming {[c[0] for c in self.cams]} at {rate:.0f} Hz, {self.width}x{self.height}"
                               f" rgb8, following {self.resolve_topic_name(topic)}")

    def _on_joints(self, msg: JointState) -> None:
        pos = dict(zip(msg.name, msg.position))
        q = self.q.copy()
        for i, name in enumerate(self.joint_names[:6]):
            if name in pos:
                q[i] = pos[name]
        self.q = q

    def _tick(self) -> None:
        stamp = self.get_clock().now().to_msg()
        for _cam, frame, render, pub in self.cams:
            img = render(self.q, self.width, self.height)
            msg = Image(height=self.height, width=self.width, encoding="rgb8", is_bigendian=0, step=self.width * 3)
            msg.header.stamp = stamp
            msg.header.frame_id = frame
            msg.data = img.tobytes()
            pub.publish(msg)
        self.frames += 1


def main(args: list[str] | None = None) -> int:
    return spin_node(SimCameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

"""Kinematics of the simulated 6-dof arm (SO-101-like proportions), shared by what draws it: the simulated
cameras (sim_camera_node) and the rviz mirror (arm_viz_node). No rclpy.

Joint order is SO-101's: shoulder_pan (about z), shoulder_lift, elbow_flex, wrist_flex (a planar chain in the
arm's vertical plane, zero = pointing straight up), wrist_roll, gripper. Lengths are in metres.
"""

from __future__ import annotations

import math

import numpy as np

BASE_HEIGHT = 0.05
LINKS = (0.116, 0.135, 0.10)  # upper arm, forearm, wrist + gripper


def arm_points(q) -> np.ndarray:
    """(5, 3) points base, shoulder, elbow, wrist, tip in the base frame (x forward, z up) for joints q[:4]."""
    pan, lift, elbow, wflex = (float(x) for x in q[:4])
    r, z, a = 0.0, BASE_HEIGHT, math.pi / 2
    pts = [(0.0, 0.0, 0.0), (0.0, 0.0, BASE_HEIGHT)]
    for length, joint in zip(LINKS, (lift, elbow, wflex)):
        a -= joint
        r += length * math.cos(a)
        z += length * math.sin(a)
        pts.append((r * math.cos(pan), r * math.sin(pan), z))
    return np.array(pts)


def tip_pitch(q) -> float:
    """Angle of the last link in the arm's plane (radians from horizontal)."""
    return math.pi / 2 - float(q[1]) - float(q[2]) - float(q[3])


def reach() -> float:
    return BASE_HEIGHT + sum(LINKS)

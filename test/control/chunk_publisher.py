"""A stand-in policy process for the controller tests: publishes ActionChunks at `--rate` Hz, each stamped "now"
(as if inference were instant), following a slow sine on every joint so the arm visibly moves. Columns are given
in a shuffled order with LeRobot's ".pos" suffix, as a policy would name them. Run as a separate process so a test
can kill -9 it."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from lerobot_ros_msgs.msg import ActionChunk

from lerobot_serve_ros.ros_common import CHUNK_QOS, ns_to_time

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
ORDER = [3, 0, 5, 1, 4, 2]  # shuffled columns


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--dt", type=float, default=1 / 30)
    ap.add_argument("--amplitude", type=float, default=0.5)
    ap.add_argument("--period", type=float, default=4.0)
    ap.add_argument("--names", default="", help="comma-separated action names overriding the default")
    a = ap.parse_args()
    rclpy.init()
    node = rclpy.create_node("test_chunk_publisher")
    pub = node.create_publisher(ActionChunk, "action_chunk", CHUNK_QOS)
    names = a.names.split(",") if a.names else [f"{JOINTS[i]}.pos" for i in ORDER]
    chunk_id = 0
    try:
        next_t = time.monotonic()
        while rclpy.ok():
            now_ns = time.time_ns()
            t = now_ns * 1e-9 + np.arange(a.rows) * a.dt
            target = a.amplitude * np.sin(2 * np.pi * t / a.period)
            data = np.repeat(target[:, None], len(names), axis=1).astype(np.float32)
            chunk_id += 1
            msg = ActionChunk(chunk_id=chunk_id, policy_name="test_sine", action_names=names, rows=a.rows,
                              cols=len(names), data=data.ravel().tolist(), dt=a.dt, start_index=0, inference_ms=0.0)
            msg.header.stamp = ns_to_time(now_ns)
            pub.publish(msg)
            print(f"chunk {chunk_id} subscribers={pub.get_subscription_count()}", flush=True)
            next_t += 1.0 / a.rate
            time.sleep(max(next_t - time.monotonic(), 0.0))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

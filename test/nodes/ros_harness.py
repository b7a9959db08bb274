"""The test's side of the ROS graph, in the pytest process: synthetic cameras and joint states published from a
background thread, ActionChunks / diagnostics / bridge topics collected, lifecycle transitions requested over
lifecycle_msgs services, and polling waits with deadlines. The nodes under test run in their own processes.

Also used by benchmarks/bench_ros_overhead.py (publishing at 640x480 there).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lerobot_serve_ros.ros_env import wait_until  # noqa: F401 (re-exported to the tests)
from lerobot_ros_msgs.msg import ActionChunk, ControllerStatus, ObservationSummary
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

SENSOR_QOS = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=1)
RELIABLE_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=50)
LATCHED_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]

TRANSITIONS = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP,
               "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}


@dataclass
class CameraSource:
    """What one synthetic camera publishes. Change fields while running (e.g. `enabled=False` = camera unplugged)."""

    topic: str
    width: int = 160
    height: int = 120
    encoding: str = "rgb8"  # or bgr8 / mono8 / anything, to test refusals
    compressed: bool = False  # publish a JPEG CompressedImage instead
    pad: int = 0  # extra bytes per row (step > width * channels)
    truncate: bool = False  # send fewer bytes than height * step (compressed: half a JPEG, undecodable)
    enabled: bool = True
    pub: Any = None
    seq: int = 0


def make_image_msg(src: CameraSource, stamp, rng: np.random.Generator) -> Image | CompressedImage:
    ch = {"mono8": 1, "8UC1": 1, "rgba8": 4, "bgra8": 4, "16UC1": 2}.get(src.encoding, 3)
    img = rng.integers(0, 256, (src.height, src.width, 3), dtype=np.uint8)
    if src.compressed:
        ok, jpg = cv2.imencode(".jpg", img)
        assert ok
        data = jpg.tobytes()
        msg = CompressedImage(format="jpeg", data=data[: len(data) // 2] if src.truncate else data)
    else:
        row = src.width * ch
        data = np.zeros((src.height, row + src.pad), np.uint8)
        data[:, :row] = np.resize(img, (src.height, row))
        raw = data.tobytes()
        if src.truncate:
            raw = raw[: len(raw) // 2]
        msg = Image(height=src.height, width=src.width, encoding=src.encoding, step=row + src.pad, data=raw)
    msg.header.stamp = stamp
    msg.header.frame_id = src.topic
    return msg


class RosHarness:
    def __init__(self, domain_id: int, namespace: str = ""):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("test_harness", namespace=namespace or None, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.chunks: list[tuple[float, ActionChunk]] = []  # (arrival wall time, msg)
        self.diagnostics: list[DiagnosticArray] = []
        self.bridge_summaries: list[ObservationSummary] = []
        self.bridge_chunks: list[ActionChunk] = []
        self.trajectories: list[JointTrajectory] = []
        self.cameras: dict[str, CameraSource] = {}
        self.joint_order = list(JOINTS)
        self.joints_enabled = True
        self.joint_values = np.linspace(-0.5, 0.5, len(JOINTS))
        self.last_stamp_ns = 0
        self.published_stamps: set[int] = set()
        self._rng = np.random.default_rng(0)
        self._timers = []
        self.joint_pub = self.node.create_publisher(JointState, "joint_states", SENSOR_QOS)
        self.status_pub = self.node.create_publisher(ControllerStatus, "controller/status", RELIABLE_QOS)
        self.prompt_pub = self.node.create_publisher(String, "task_prompt", LATCHED_QOS)
        self.node.create_subscription(ActionChunk, "action_chunk", self._on_chunk, RELIABLE_QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, RELIABLE_QOS)
        self.node.create_subscription(JointTrajectory, "joint_trajectory",
                                      lambda m: self._append(self.trajectories, m), RELIABLE_QOS)
        self.node.create_subscription(ObservationSummary, "bridge/observation_summary",
                                      lambda m: self._append(self.bridge_summaries, m), RELIABLE_QOS)
        self.node.create_subscription(ActionChunk, "bridge/action_chunk",
                                      lambda m: self._append(self.bridge_chunks, m), RELIABLE_QOS)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # context shut down
            pass

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)

    # ---- collecting ------------------------------------------------------------------------------------------
    def _append(self, lst: list, msg) -> None:
        with self.lock:
            lst.append(msg)

    def _on_chunk(self, msg: ActionChunk) -> None:
        with self.lock:
            self.chunks.append((time.time(), msg))

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics.append(msg)
            del self.diagnostics[:-50]

    def chunk_count(self) -> int:
        with self.lock:
            return len(self.chunks)

    def chunks_since(self, n: int) -> list[ActionChunk]:
        with self.lock:
            return [m for _, m in self.chunks[n:]]

    def diag_status(self, name_suffix: str, since: float = 0.0):
        """Newest DiagnosticStatus whose name ends with `name_suffix`, from arrays stamped after `since` (wall s)."""
        with self.lock:
            arrays = list(self.diagnostics)
        for arr in reversed(arrays):
            if arr.header.stamp.sec + arr.header.stamp.nanosec * 1e-9 < since:
                continue
            for st in arr.status:
                if st.name.endswith(name_suffix):
                    return st
        return None

    def wait_chunks(self, n: int, timeout: float = 10.0) -> list[ActionChunk]:
        start = self.chunk_count()
        wait_until(lambda: self.chunk_count() >= start + n, timeout, f"{n} new ActionChunks")
        return self.chunks_since(start)

    def wait_diag(self, name_suffix: str, pred: Callable[[Any], bool], timeout: float = 10.0):
        since = time.time()
        try:
            return wait_until(lambda: (lambda s: s if s is not None and pred(s) else None)(
                self.diag_status(name_suffix, since)), timeout, f"diagnostic '{name_suffix}' matching condition")
        except TimeoutError as exc:
            last = self.diag_status(name_suffix)
            raise TimeoutError(f"{exc}; last seen: {last.message if last else None!r}") from None

    # ---- publishing ------------------------------------------------------------------------------------------
    def add_camera(self, name: str, **kw) -> CameraSource:
        src = CameraSource(**kw)
        src.pub = self.node.create_publisher(CompressedImage if src.compressed else Image, src.topic, SENSOR_QOS)
        self.cameras[name] = src
        return src

    def publish_frame_set(self) -> int:
        """One frame from every enabled camera and one joint state, all with the same stamp; returns it (ns)."""
        stamp = self.node.get_clock().now().to_msg()
        for src in self.cameras.values():
            if src.enabled:
                src.pub.publish(make_image_msg(src, stamp, self._rng))
        if self.joints_enabled:
            js = JointState(name=list(self.joint_order))
            by_name = dict(zip(JOINTS, self.joint_values))
            js.position = [float(by_name.get(n, 0.0)) for n in self.joint_order]
            js.header.stamp = stamp
            self.joint_pub.publish(js)
        ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        self.last_stamp_ns = ns
        self.published_stamps.add(ns)
        return ns

    def start_streaming(self, rate_hz: float = 30.0) -> None:
        self._timers.append(self.node.create_timer(1.0 / rate_hz, self.publish_frame_set))

    def wait_subscribed(self, topic_pubs: list, timeout: float = 10.0) -> None:
        wait_until(lambda: all(p.get_subscription_count() > 0 for p in topic_pubs), timeout,
                   "the node under test to subscribe")

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def change_state(self, node_name: str, transition: str, timeout: float = 90.0) -> bool:
        cli = self.node.create_client(ChangeState, f"{node_name}/change_state")
        try:
            if not cli.wait_for_service(timeout_sec=15.0):
                raise TimeoutError(f"{node_name}/change_state not available")
            req = ChangeState.Request()
            req.transition.id = TRANSITIONS[transition]
            fut = cli.call_async(req)
            wait_until(fut.done, timeout, f"{node_name} {transition}")
            return bool(fut.result().success)
        finally:
            self.node.destroy_client(cli)

    def get_state(self, node_name: str, timeout: float = 15.0) -> str:
        cli = self.node.create_client(GetState, f"{node_name}/get_state")
        try:
            if not cli.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"{node_name}/get_state not available")
            fut = cli.call_async(GetState.Request())
            wait_until(fut.done, timeout, f"{node_name} state")
            return fut.result().current_state.label
        finally:
            self.node.destroy_client(cli)

    def set_parameters(self, node_name: str, values: dict[str, Any], timeout: float = 10.0) -> None:
        cli = self.node.create_client(SetParameters, f"{node_name}/set_parameters")
        try:
            if not cli.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"{node_name}/set_parameters not available")
            req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                    for k, v in values.items()])
            fut = cli.call_async(req)
            wait_until(fut.done, timeout, f"{node_name} set_parameters")
            bad = [r.reason for r in fut.result().results if not r.successful]
            assert not bad, bad
        finally:
            self.node.destroy_client(cli)

    def publish_status(self, queue_time_s: float, last_chunk_id: int) -> None:
        msg = ControllerStatus(state=ControllerStatus.RUNNING, state_name="RUNNING", queue_time_s=queue_time_s,
                               last_chunk_id=last_chunk_id)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.status_pub.publish(msg)

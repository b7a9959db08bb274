"""The test's own ROS side for controller tests: service calls, controller/status and joint_states recorded with
their arrival time, waits with deadlines. Its own rclpy Context on the children's domain, spun on a thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lerobot_ros_msgs.msg import ActionChunk, ControllerStatus
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from lerobot_serve_ros.ros_env import wait_until  # noqa: F401 (re-exported to the tests)
from lerobot_serve_ros.ros_common import CHUNK_QOS, SENSOR_QOS, STATUS_QOS


class ControllerProbe:
    def __init__(self, domain_id: int):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("controller_test_probe", context=self.context)
        self.lock = threading.Lock()
        self.statuses: list[tuple[float, ControllerStatus]] = []
        self.joints: list[tuple[float, np.ndarray]] = []
        self.commands: list[tuple[float, np.ndarray]] = []
        self.node.create_subscription(ControllerStatus, "controller/status", self._on_status, STATUS_QOS)
        self.node.create_subscription(JointState, "joint_states", self._on_joints, SENSOR_QOS)
        self.diagnostics: list = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      lambda m: self.diagnostics.extend(m.status), 10)
        self.clients = {n: self.node.create_client(Trigger, f"controller/{n}")
                        for n in ("start", "pause", "resume", "reset", "stop", "estop")}
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - context shut down under us at close()
                break

    def _on_status(self, msg):
        with self.lock:
            self.statuses.append((time.monotonic(), msg))

    def _on_joints(self, msg):
        with self.lock:
            self.joints.append((time.monotonic(), np.array(msg.position)))

    def listen_commands(self, topic: str = "forward_position_controller/commands"):
        self.node.create_subscription(Float64MultiArray, topic, lambda m: self.commands.append(
            (time.monotonic(), np.array(m.data))), 10)

    def chunk_publisher(self):
        return self.node.create_publisher(ActionChunk, "action_chunk", CHUNK_QOS)

    def status(self) -> ControllerStatus | None:
        with self.lock:
            return self.statuses[-1][1] if self.statuses else None

    def state(self) -> str | None:
        s = self.status()
        return s.state_name if s else None

    def wait_state(self, name: str, timeout: float) -> float:
        """Monotonic arrival time of the first status in `name` (from now on)."""
        with self.lock:
            start = len(self.statuses)

        def seen():
            with self.lock:
                for t, m in self.statuses[start:]:
                    if m.state_name == name:
                        return t
            return None

        return wait_until(seen, timeout, f"controller state {name} (now {self.state()})")

    def position(self) -> np.ndarray | None:
        with self.lock:
            return self.joints[-1][1].copy() if self.joints else None

    def positions_since(self, t0: float) -> np.ndarray:
        with self.lock:
            return np.array([p for t, p in self.joints if t >= t0])

    def call(self, name: str, timeout: float = 5.0) -> tuple[bool, str]:
        cli = self.clients[name]
        wait_until(lambda: cli.service_is_ready(), timeout, f"service controller/{name}")
        fut = cli.call_async(Trigger.Request())
        wait_until(fut.done, timeout, f"reply of controller/{name}")
        return fut.result().success, fut.result().message

    def lifecycle(self, node: str, transition: str, timeout: float = 10.0) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        cli = self.node.create_client(ChangeState, f"{node}/change_state")
        wait_until(cli.service_is_ready, timeout, f"{node}/change_state")
        req = ChangeState.Request()
        req.transition.id = {"configure": Transition.TRANSITION_CONFIGURE,
                             "activate": Transition.TRANSITION_ACTIVATE,
                             "deactivate": Transition.TRANSITION_DEACTIVATE}[transition]
        fut = cli.call_async(req)
        wait_until(fut.done, timeout, f"{node} {transition}")
        return fut.result().success

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(2.0)

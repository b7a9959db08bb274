"""The operator's view of a running stack, as one rclpy node: what the demo prints and plots, and what the
end-to-end drills assert on.

It only uses what any ROS tool could: it subscribes to controller/status, /diagnostics, action_chunk,
joint_states and forward_position_controller/commands, and calls the standard lifecycle services
(`<node>/change_state`, `<node>/get_state`) and the controller's std_srvs/Trigger services. It keeps time series
(monotonic seconds since the monitor started) for the plot and a latest-value snapshot for the status line.
rclpy spins in a background thread with its own context, so a test or the demo's main thread stays free.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lerobot_ros_msgs.msg import ActionChunk, ControllerStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from lerobot_serve_ros.ros_common import CHUNK_QOS, DIAGNOSTICS_QOS, STATUS_QOS

TRANSITIONS = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP}
TRIGGER_EFFECT = {"start": ("RUNNING",), "resume": ("RUNNING",), "pause": ("PAUSED",), "stop": ("DAMPING",),
                  "estop": ("EMERGENCY_STOP", "DAMPING"), "reset": ("RESETTING", "IDLE")}
GOAL_STATES = {"configure": "inactive", "activate": "active", "deactivate": "inactive", "cleanup": "unconfigured"}
COMMANDS_TOPIC = "forward_position_controller/commands"


@dataclass
class Series:
    """Time series for the plot (bounded: a long demo keeps the last hour at these rates)."""

    status: deque = field(default_factory=lambda: deque(maxlen=20 * 3600))  # (t, state, depth, queue_s, rate, p99)
    chunks: deque = field(default_factory=lambda: deque(maxlen=20 * 3600))  # (t, chunk_id, inference_ms, rows,
    #                                                                          observation stamp, wall-clock s)
    joints: deque = field(default_factory=lambda: deque(maxlen=50 * 3600))  # (t, positions...)
    commands: deque = field(default_factory=lambda: deque(maxlen=50 * 3600))  # (t, commands...)


class StackMonitor:
    """`StackMonitor(domain_id=...).start()` (default domain: $ROS_DOMAIN_ID); `close()` at the end."""

    def __init__(self, namespace: str = "", joint_rate_hz: float = 50.0, domain_id: int | None = None) -> None:
        self.t0 = time.monotonic()
        self.series = Series()
        self.status: ControllerStatus | None = None
        self.status_time = 0.0
        self.state_changes: list[tuple[float, ControllerStatus]] = []  # (t, the status that reported the change)
        self.diagnostics: dict[str, tuple[float, object]] = {}  # name -> (t, DiagnosticStatus)
        self.last_chunk: ActionChunk | None = None
        self.chunk_count = 0
        self.joint_names: list[str] = []
        self.joint_position: np.ndarray | None = None
        self.joint_time = 0.0
        self.command_count = 0
        self.last_command_time = 0.0
        self._joint_period = 1.0 / joint_rate_hz
        self._lock = threading.Lock()
        self._clients: dict[str, object] = {}
        self.ns = namespace.strip("/")
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)  # None: $ROS_DOMAIN_ID
        self.node = Node("stack_monitor", namespace="/" + self.ns if self.ns else "/", context=self.context)
        n = self.node
        n.create_subscription(ControllerStatus, "controller/status", self._on_status, STATUS_QOS)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, DIAGNOSTICS_QOS)
        n.create_subscription(ActionChunk, "action_chunk", self._on_chunk, CHUNK_QOS)
        n.create_subscription(JointState, "joint_states", self._on_joints, qos_profile_sensor_data)
        n.create_subscription(Float64MultiArray, COMMANDS_TOPIC, self._on_commands, qos_profile_sensor_data)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, name="stack-monitor", daemon=True)

    def start(self) -> "StackMonitor":
        self._thread.start()
        return self

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # context shut down under us at close()
            pass

    def now(self) -> float:
        return time.monotonic() - self.t0

    # ---- subscriptions -----------------------------------------------------------------------------------------
    def _on_status(self, msg: ControllerStatus) -> None:
        t = self.now()
        with self._lock:
            if self.status is None or self.status.state_name != msg.state_name:
                self.state_changes.append((t, msg))
            self.status, self.status_time = msg, t
            self.series.status.append((t, msg.state_name, msg.queue_depth, msg.queue_time_s, msg.loop_rate_hz,
                                       msg.period_p99_ms, msg.deadline_misses))

    def _on_diag(self, msg: DiagnosticArray) -> None:
        t = self.now()
        with self._lock:
            for s in msg.status:
                self.diagnostics[s.name] = (t, s)

    def _on_chunk(self, msg: ActionChunk) -> None:
        t = self.now()
        with self._lock:
            self.last_chunk = msg
            self.chunk_count += 1
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            self.series.chunks.append((t, msg.chunk_id, msg.inference_ms, msg.rows, stamp))

    def _on_joints(self, msg: JointState) -> None:
        t = self.now()
        with self._lock:
            self.joint_names = list(msg.name)
            self.joint_position = np.asarray(msg.position, dtype=float)
            self.joint_time = t
            if not self.series.joints or t - self.series.joints[-1][0] >= self._joint_period:
                self.series.joints.append((t, *msg.position))

    def _on_commands(self, msg: Float64MultiArray) -> None:
        t = self.now()
        with self._lock:
            self.command_count += 1
            self.last_command_time = t
            if not self.series.commands or t - self.series.commands[-1][0] >= self._joint_period:
                self.series.commands.append((t, *msg.data))

    # ---- queries -------------------------------------------------------------------------------------------
    def diag(self, contains: str) -> list[tuple[float, object]]:
        """(time received, DiagnosticStatus) of every status whose name contains `contains`."""
        with self._lock:
            return [v for k, v in self.diagnostics.items() if contains in k]

    def diag_value(self, contains: str, key: str, default: str = "") -> str:
        for _t, s in self.diag(contains):
            for kv in s.values:
                if kv.key == key:
                    return kv.value
        return default

    @property
    def states_seen(self) -> list[tuple[float, str]]:
        """(t, state_name) of every state change, oldest first."""
        with self._lock:
            return [(t, msg.state_name) for t, msg in self.state_changes]

    def state(self) -> str:
        with self._lock:
            return self.status.state_name if self.status is not None else "?"

    def joints(self) -> np.ndarray | None:
        with self._lock:
            return None if self.joint_position is None else self.joint_position.copy()

    def wait_for(self, predicate, timeout: float, what: str, poll: float = 0.05):
        """Poll `predicate()` until it returns something truthy; raise TimeoutError naming `what`."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
            time.sleep(poll)

    def wait_state(self, names: str | tuple[str, ...], timeout: float) -> float:
        """Wait until controller/status reports one of `names`; returns the monitor time it was seen."""
        names = (names,) if isinstance(names, str) else names
        t_start = self.now()
        self.wait_for(lambda: self.state() in names and self.status_time >= t_start, timeout,
                      f"controller state {names} (now {self.state()})")
        return self.status_time

    # ---- services --------------------------------------------------------------------------------------------
    def _client(self, srv_type, name: str):
        """One client per service, kept: a new client must be discovered by the server before it can answer."""
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = self._clients[name] = self.node.create_client(srv_type, name)
            return client

    def _call_async(self, srv_type, name: str, request, timeout: float):
        """(client, future, done event)."""
        client = self._client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available after {timeout:.0f} s")
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        return client, future, done

    def _call(self, srv_type, name: str, request, timeout: float):
        client, future, done = self._call_async(srv_type, name, request, timeout)
        if not done.wait(timeout):
            client.remove_pending_request(future)
            raise TimeoutError(f"service {client.srv_name} did not answer within {timeout:.0f} s")
        if future.exception() is not None:
            raise future.exception()
        return future.result()

    def lifecycle(self, node: str, transition: str, timeout: float = 60.0) -> bool:
        """Request a lifecycle transition of `node` (e.g. "policy_node", "configure"); True when it succeeded.

        Robust to a restarted node: a killed process of the same name stays in the ROS graph until its lease
        expires, and a request may reach only that ghost. So the live node must first answer get_state, and a
        request nobody answers is sent again once get_state shows the node idle in its previous state (a node
        busy in a long transition, e.g. loading a model, does not answer get_state and is waited for)."""
        deadline = time.monotonic() + timeout
        start = self._live_state(node, deadline)
        req = ChangeState.Request()
        req.transition.id = TRANSITIONS[transition]
        while True:
            client, future, done = self._call_async(ChangeState, f"{node}/change_state", req,
                                                    max(1.0, deadline - time.monotonic()))
            while not done.wait(3.0):
                if time.monotonic() > deadline:
                    client.remove_pending_request(future)
                    raise TimeoutError(f"{node}/change_state ({transition}) did not answer in {timeout:.0f} s")
                try:
                    state = self.lifecycle_state(node, timeout=2.0)
                except TimeoutError:
                    continue  # busy in the transition: keep waiting for the answer
                if state == GOAL_STATES[transition]:
                    client.remove_pending_request(future)
                    return True
                if state == start:
                    client.remove_pending_request(future)
                    break  # the request was lost (a ghost, or an answer dropped): send it again
            else:
                if future.exception() is not None:
                    raise future.exception()
                return bool(future.result().success)

    def _live_state(self, node: str, deadline: float) -> str:
        while True:
            try:
                return self.lifecycle_state(node, timeout=2.0)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{node}/get_state: no live node answered") from None

    def lifecycle_state(self, node: str, timeout: float = 5.0) -> str:
        return self._call(GetState, f"{node}/get_state", GetState.Request(), timeout).current_state.label

    def has_service(self, name: str, timeout: float) -> bool:
        full = self.node.resolve_service_name(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(n == full for n, _ in self.node.get_service_names_and_types()):
                return True
            time.sleep(0.1)
        return False

    def trigger(self, name: str, timeout: float = 10.0) -> tuple[bool, str]:
        """Call a controller std_srvs/Trigger service, e.g. "controller/start". An answer that does not come
        within 3 s (dropped by a server that had not matched this client yet) is replaced by controller/status
        when that shows the command's effect, else the command is sent again."""
        expect = TRIGGER_EFFECT.get(name.rsplit("/", 1)[-1], ())
        deadline = time.monotonic() + timeout
        while True:
            t_sent = self.now()
            client, future, done = self._call_async(Trigger, name, Trigger.Request(), timeout)
            if done.wait(min(3.0, max(0.1, deadline - time.monotonic()))):
                res = future.result()
                return bool(res.success), res.message
            client.remove_pending_request(future)
            if self.state() in expect and self.status_time > t_sent:
                return True, f"(no answer; controller/status shows {self.state()})"
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {client.srv_name} did not answer within {timeout:.0f} s")

    def close(self) -> None:
        try:
            self.executor.shutdown(timeout_sec=2.0)
        except Exception:
            pass
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)

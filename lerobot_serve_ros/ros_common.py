"""rclpy glue shared by the policy node and the bridge node: declared parameters, stamps, message filling,
diagnostics, and the `main()` that spins a lifecycle node (optionally configuring/activating it itself).

Kept apart from the pure modules (observation.py, ros_image.py, latency_stats.py) so those stay importable without
ROS; kept in one place so both nodes declare parameters and publish diagnostics the same way.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

# QoS chosen on purpose (DEVELOPERS.md): sensors best-effort depth 1 (a late frame is worthless, never queue it);
# commands/chunks reliable; the task prompt latched so a node started later still gets the current task.
SENSOR_QOS = qos_profile_sensor_data  # best effort, depth 5 (rclpy's preset)
SENSOR_QOS_DEPTH1 = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=1,
                               durability=DurabilityPolicy.VOLATILE)
CHUNK_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)
STATUS_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1)
# Subscribing to a status stream: best effort matches a publisher of either reliability; only the newest matters.
STATUS_SUB_QOS = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=1)
LATCHED_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
DIAGNOSTICS_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)

_ARRAY_PARAM_TYPES = {str: Parameter.Type.STRING_ARRAY, float: Parameter.Type.DOUBLE_ARRAY,
                      int: Parameter.Type.INTEGER_ARRAY, bool: Parameter.Type.BOOL_ARRAY}


class ModelOwnerNode(LifecycleNode):
    """A lifecycle node owning a policy or a connection to one (policy_node, bridge_node): cleanup and shutdown both
    release it, so a `ros2 lifecycle set ... cleanup` really gives the memory back. Subclasses define `_release`."""

    def _release(self) -> None:
        raise NotImplementedError

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: policy released")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_shutdown(state)


def declare(node, name: str, default: Any, description: str, read_only: bool = False,
            item_type: type = str) -> Any:
    """Declare one parameter with a descriptor (shown by `ros2 param describe`) and return its value.
    Empty-list defaults need the element type (`item_type`) because rclpy cannot infer it."""
    desc = ParameterDescriptor(description=description, read_only=read_only)
    if isinstance(default, list) and not default:
        # rclpy cannot type an empty list, and `x: []` in a params file arrives as an unset value: declare it
        # dynamically typed and set it to a typed empty array below.
        desc.dynamic_typing = True
    value = node.declare_parameter(name, default, desc).value
    if value is None and isinstance(default, list):
        node.set_parameters([Parameter(name, _ARRAY_PARAM_TYPES[item_type], [])])
        return []
    return list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "array" else value


def ns_to_time(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def time_to_ns(t: Time) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def fill(msg, fields: dict[str, Any]):
    """Set message fields from a dict (request_record.py's pure field values); numpy arrays go in as lists/arrays."""
    for key, value in fields.items():
        if hasattr(value, "tolist") and not isinstance(value, (bytes, bytearray)):
            value = value.tolist()
        setattr(msg, key, value)
    return msg


LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR,
          "stale": DiagnosticStatus.STALE}


def diagnostic(name: str, hardware_id: str, level: str, message: str, values: dict[str, Any]) -> DiagnosticStatus:
    return DiagnosticStatus(level=LEVELS[level], name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()])


def diagnostic_array(node, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    arr = DiagnosticArray(status=statuses)
    arr.header.stamp = node.get_clock().now().to_msg()
    return arr


def autostart(node: LifecycleNode) -> bool:
    """configure + activate from inside the process (for runs without a lifecycle manager, e.g. the demo)."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("autostart: configure failed; staying unconfigured (see the error above)")
        return False
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("autostart: activate failed")
        return False
    return True


def spin_lifecycle_node(make_node: Callable[[], LifecycleNode], args: list[str] | None = None) -> int:
    """`main()` of a lifecycle node: spin with a multi-threaded executor until Ctrl-C, then clean up."""
    rclpy.init(args=sys.argv if args is None else args)
    node = make_node()
    # One executor thread is enough: the nodes do their heavy work (inference, serving) on their own threads.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            autostart(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        try:
            node.shutdown_backend()
        finally:
            executor.shutdown(timeout_sec=2.0)
            node.destroy_node()
            if rclpy.ok():
                rclpy.try_shutdown()
    return 0

"""`bag_recorder_node`: `ros2 bag record -s mcap` for machines without rosbag2, on real rclpy subscriptions.

Where ROS is installed, `ros2 bag record -s mcap -o DIR <topics>` does the same job (the README gives the command);
this node exists because rosbag2 is not installable from PyPI. It records the configured topics into one rosbag2
folder (metadata version 9, MCAP storage) that `ros2 bag info/play` read:

- raw subscriptions (`raw=True`): the serialized CDR bytes go to the bag untouched, never deserialised;
- each topic's type comes from the ROS graph (the first publisher seen), its message definition from the `rosbags`
  typestore (ROS 2 Kilted standard types + lerobot_ros_msgs registered from the installed .msg text);
- QoS adapted to the publishers like rosbag2 does (best effort if any publisher is best effort, transient local if
  all are), and the publishers' offered QoS stored in the bag's metadata so `ros2 bag play` re-offers it;
- topics that have no publisher yet are looked up again every second: start order does not matter;
- the bag is closed (metadata.yaml written) on Ctrl-C / SIGTERM.

Parameters: output (bag folder, must not exist), topics (list; relative names resolve in this node's namespace),
discovery_period_s.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from lerobot_control_ros.node_main import spin_node
from lerobot_serve_ros.recorder import make_typestore
from lerobot_serve_ros.ros_common import declare

NODE_NAME = "bag_recorder_node"


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def bag_qos(endpoints) -> list:
    """The publishers' offered QoS as rosbags Qos tuples (the enum values are rmw's in both)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def t(d):
        ns = d.nanoseconds
        return QosTime(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)

    out = []
    for e in endpoints:
        q = e.qos_profile
        out.append(Qos(history=QosHistory(int(q.history)), depth=int(q.depth),
                       reliability=QosReliability(int(q.reliability)), durability=QosDurability(int(q.durability)),
                       deadline=t(q.deadline), lifespan=t(q.lifespan), liveliness=QosLiveliness(int(q.liveliness)),
                       liveliness_lease_duration=t(q.liveliness_lease_duration),
                       avoid_ros_namespace_conventions=bool(q.avoid_ros_namespace_conventions)))
    return out


def subscription_qos(endpoints) -> QoSProfile:
    """What rosbag2 does: a QoS every current publisher is compatible with."""
    best_effort = any(e.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for e in endpoints)
    latched = bool(endpoints) and all(e.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for e in endpoints)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class BagRecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        from rosbags.rosbag2 import StoragePlugin, Writer

        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        output = d("output", "", "rosbag2 folder to create (must not exist); empty = ./bag_<date>_<time>")
        topics = d("topics", [], "topics to record; relative names resolve in this node's namespace")
        period = d("discovery_period_s", 1.0, "how often topics without a publisher are looked up again")
        self.path = Path(output or time.strftime("bag_%Y_%m_%d-%H_%M_%S"))
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; rosbag2 writes a new folder (choose another output)")
        if not topics:
            raise ValueError("parameter 'topics' is empty: nothing to record")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ts = make_typestore()
        self.writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.pending = [self.resolve_topic_name(t) for t in topics]
        self.counts: dict[str, int] = {}
        self._subs = []
        self._closed = False
        self.create_timer(period, self._discover)
        self.get_logger().info(f"recording {len(self.pending)} topic(s) to {self.path} (MCAP): {self.pending}")
        self._discover()

    def _discover(self) -> None:
        types = dict(self.get_topic_names_and_types())
        for topic in list(self.pending):
            if topic not in types:
                continue
            pubs = self.get_publishers_info_by_topic(topic)
            if not pubs:
                continue
            type_name = types[topic][0]
            if type_name not in self.ts.fielddefs:
                self.get_logger().error(f"{topic}: type {type_name} unknown to the rosbags typestore; not recorded")
                self.pending.remove(topic)
                continue
            conn = self.writer.add_connection(topic, type_name, typestore=self.ts, offered_qos_profiles=bag_qos(pubs))
            self.counts[topic] = 0
            self._subs.append(self.create_subscription(
                message_class(type_name), topic, lambda data, c=conn, t=topic: self._write(c, t, data),
                subscription_qos(pubs), raw=True))
            self.pending.remove(topic)
            self.get_logger().info(f"recording {topic} [{type_name}]")

    def _write(self, conn, topic: str, data: bytes) -> None:
        if self._closed:
            return
        self.writer.write(conn, self.get_clock().now().nanoseconds, data)
        self.counts[topic] += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.writer.close()
        waiting = f"; never published: {self.pending}" if self.pending else ""
        self.get_logger().info(f"bag closed: {self.path} {self.counts}{waiting}")


def main(args: list[str] | None = None) -> int:
    return spin_node(BagRecorderNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

"""`lerobot-serve --record DIR`: every request/response pair into a rosbag2 (MCAP) bag, off the inference path.

The server's `on_exchange` hook only enqueues the event; a writer thread serialises (rosbags CDR) and writes, so
recording never delays a reply. If the writer falls behind by more than `max_pending` exchanges, new ones are
dropped and counted (logged), never blocking the server. Topics and field values come from request_record.py, the
same ones the bridge node publishes, so `ros2 bag info/play` sees the same thing from both.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from pathlib import Path

import numpy as np

from lerobot_serve_ros import request_record as rr
from lerobot_serve_ros.server import ExchangeEvent

log = logging.getLogger(__name__)

MSG_PACKAGE = "lerobot_ros_msgs"
_STOP = object()


def msg_definitions_dir() -> Path:
    """The .msg files of lerobot_ros_msgs: installed share/ first (what the nodes use), else the source tree."""
    candidates = [Path(sys.prefix) / "share" / MSG_PACKAGE / "msg",
                  Path(__file__).resolve().parent.parent / "msg" / "msg"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.insert(0, Path(get_package_share_directory(MSG_PACKAGE)) / "msg")
    except Exception:
        pass
    for c in candidates:
        if (c / "ActionChunk.msg").exists():
            return c
    raise FileNotFoundError(f"{MSG_PACKAGE} .msg files not found in {[str(c) for c in candidates]}")


def make_typestore():
    """A Kilted typestore (the rclpy wheels' distribution) plus our message types from their .msg text."""
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    ts = get_typestore(Stores.ROS2_KILTED)
    d = msg_definitions_dir()
    types = {}
    for f in sorted(d.glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"{MSG_PACKAGE}/msg/{f.stem}"))
    ts.register(types)
    return ts


class BagRecorder:
    """Writes ExchangeEvents to `<out_dir>` (a rosbag2 folder that must not exist yet). Call `close()` at the end."""

    def __init__(self, out_dir: str | Path, metadata: dict, namespace: str = "/", max_pending: int = 256):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(out_dir)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; rosbag2 writes a new folder (choose another --record)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.metadata = metadata
        self.namespace = "/" + namespace.strip("/") + "/" if namespace.strip("/") else "/"
        self.ts = make_typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="bag-recorder", daemon=True)
        self._thread.start()
        log.info("recording requests/responses to %s (MCAP)", self.path)

    def __call__(self, event: ExchangeEvent) -> None:
        """The server hook: never blocks."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("recorder behind: dropped %d exchange(s) so far", self.dropped)

    def _conn(self, topic: str, msgtype: str):
        full = self.namespace + topic
        if full not in self._connections:
            self._connections[full] = self._writer.add_connection(full, msgtype, typestore=self.ts)
        return self._connections[full]

    def _header(self, t: float):
        sec, nanosec = rr.stamp(t)
        T = self.ts.types
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                        frame_id="")

    def _write(self, topic: str, msgtype: str, t: float, fields: dict) -> None:
        msg = self.ts.types[msgtype](header=self._header(t), **fields)
        data = self.ts.serialize_cdr(msg, msgtype)
        self._writer.write(self._conn(topic, msgtype), int(round(t * 1e9)), data)

    def write_event(self, ev: ExchangeEvent) -> None:
        source = f"websocket:{ev.peer}"
        self._write(rr.OBSERVATION_SUMMARY_TOPIC, rr.OBSERVATION_SUMMARY_TYPE, ev.t_received,
                    rr.summary_fields(ev.request_id, source, ev.obs, ev.prompt, ev.inference_delay, ev.error))
        for key, value in sorted((ev.obs or {}).items(), key=lambda kv: str(kv[0])):
            if isinstance(key, str) and key.startswith(rr.IMAGE_KEY_PREFIX):
                fields = rr.image_fields(value)
                if fields is not None:
                    self._write(rr.image_topic(key), rr.IMAGE_TYPE, ev.t_received, fields)
        if ev.reply is not None and isinstance(ev.reply.get("actions"), np.ndarray):
            self._write(rr.ACTION_CHUNK_TOPIC, rr.ACTION_CHUNK_TYPE, ev.t_received,
                        rr.chunk_fields(ev.request_id, ev.reply, self.metadata))
        self.written += 1

    def _run(self) -> None:
        while True:
            ev = self._queue.get()
            if ev is _STOP:
                return
            try:
                self.write_event(ev)
            except Exception:
                log.exception("could not record request %s", getattr(ev, "request_id", "?"))

    def close(self, timeout: float = 30.0) -> None:
        """Drain what is queued, then finish the bag (metadata.yaml is written here)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        self._writer.close()
        log.info("recorded %d exchange(s) to %s (%d dropped)", self.written, self.path, self.dropped)

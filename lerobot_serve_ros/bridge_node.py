"""`bridge_node`: the `lerobot-serve` websocket server (openpi protocol) hosted inside a ROS process.

One model, loaded once, served to everyone: outside clients (the official openpi-client, lerobot_serve_ros.client)
connect over websockets, and the robot's own policy_node connects to the same server with `server_url`
(ws://127.0.0.1:<port>), so ROS and websocket requests share one copy in memory, one device lock and the server's
FIFO-fair inference queue. Every request/response is also published on ROS topics (request_record.py names them,
the same topics `lerobot-serve --record` writes), so `ros2 bag record` captures what the model saw and answered:

  bridge/observation_summary   ObservationSummary   one per request (refused ones too, with `error`)
  bridge/action_chunk          ActionChunk          one per reply (chunk_id = request_id)
  bridge/images/<camera>       sensor_msgs/Image    the request's images (only with publish_images: true)

Lifecycle (it owns a model): configure loads the policy; activate starts listening; deactivate closes the socket and
every connection; cleanup releases the model. Publishing runs on its own thread: the server's hook only enqueues.
"""

from __future__ import annotations

import os
import queue
import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from lerobot_ros_msgs.msg import ActionChunk, ObservationSummary
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import Image

from lerobot_serve_ros import request_record as rr
from lerobot_serve_ros.latency_stats import LatencyStats
from lerobot_serve_ros.runtime import release_device_memory
from lerobot_serve_ros.ros_common import (CHUNK_QOS, DIAGNOSTICS_QOS, SENSOR_QOS_DEPTH1, ModelOwnerNode, declare,
                                          diagnostic, diagnostic_array, fill, spin_lifecycle_node)

NODE_NAME = "bridge_node"
AUTH_ENV = "LEROBOT_SERVE_AUTH_TOKEN"  # same variable lerobot-serve reads


class BridgeNode(ModelOwnerNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        d("policy_path", "", "LeRobot checkpoint folder or hub id to load and serve")
        d("device", "auto", "torch device: auto | cpu | cuda | cuda:N | mps")
        d("policy_overrides", [], "lerobot config overrides, e.g. --policy.n_action_steps=20")
        d("default_prompt", "", "task text for language policies when a request has none")
        d("fps", 0.0, "policy control rate reported in metadata and ActionChunk.dt; 0 = from the checkpoint")
        d("warmup", True, "one inference at configure so the first client does not pay for it")
        d("host", "0.0.0.0", "websocket listen address (127.0.0.1 to serve only this machine)")
        d("port", 8000, "websocket port (0 = any free port, logged and shown in diagnostics)")
        d("max_clients", 8, "connections beyond this are refused with HTTP 503")
        d("max_msg_size", 16 * 1024 * 1024, "largest request frame in bytes; larger ones close that connection")
        d("auth_token", "", f"require 'Authorization: Api-Key <token>' (default: ${AUTH_ENV}; empty = no auth)")
        d("publish_images", False, "also publish each request's images on bridge/images/<camera>")
        d("diagnostics_period_s", 1.0, "period of /diagnostics messages")
        d("autostart", False, "configure and activate at startup (for runs without a lifecycle manager)")
        self.runtime = None
        self.server = None
        self.load_error: str | None = None
        self.stats = LatencyStats()
        self.published = 0
        self.dropped = 0
        self._events: queue.Queue = queue.Queue(maxsize=256)
        self._pub_thread: threading.Thread | None = None
        self._pubs: list = []
        self._image_pubs: dict[str, object] = {}
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self._diag_timer = self.create_timer(self.get_parameter("diagnostics_period_s").value, self._diagnostics)

    def _p(self, name: str):
        return self.get_parameter(name).value

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        path = self._p("policy_path")
        try:
            if not path:
                raise ValueError("policy_path is empty")
            from lerobot_serve_ros.runtime import PolicyRuntime, RuntimeConfig

            self.get_logger().info(f"loading policy {path} on {self._p('device')} ...")
            self.runtime = PolicyRuntime(RuntimeConfig(
                path=path, device=self._p("device"), default_prompt=self._p("default_prompt") or None,
                overrides=list(self._p("policy_overrides") or []), warmup=self._p("warmup"),
                fps=float(self._p("fps")) or None))
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: {self.load_error}")
            return TransitionCallbackReturn.FAILURE
        self.load_error = None
        self.meta = self.runtime.metadata()
        self.summary_pub = self.create_lifecycle_publisher(ObservationSummary, rr.OBSERVATION_SUMMARY_TOPIC, CHUNK_QOS)
        self.chunk_pub = self.create_lifecycle_publisher(ActionChunk, rr.ACTION_CHUNK_TOPIC, CHUNK_QOS)
        self._pubs = [self.summary_pub, self.chunk_pub]
        if self._p("publish_images"):
            for key in self.meta["image_keys"]:
                self._image_pubs[key] = self.create_lifecycle_publisher(Image, rr.image_topic(key), SENSOR_QOS_DEPTH1)
            self._pubs.extend(self._image_pubs.values())
        self._pub_thread = threading.Thread(target=self._publish_loop, name="bridge-publisher", daemon=True)
        self._pub_thread.start()
        self.get_logger().info(f"configured: {self.meta['policy_type']} on {self.meta['device']}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        from lerobot_serve_ros.server import PolicyServer, ServerConfig

        token = self._p("auth_token") or os.environ.get(AUTH_ENV) or None
        cfg = ServerConfig(host=self._p("host"), port=int(self._p("port")), max_clients=int(self._p("max_clients")),
                           max_msg_size=int(self._p("max_msg_size")), auth_token=token)
        ret = super().on_activate(state)  # publishers first, so the first request is already published
        try:
            self.server = PolicyServer(self.runtime, cfg, on_exchange=self._on_exchange).start_in_thread()
        except Exception as exc:  # port taken, bad address
            self.get_logger().error(f"cannot serve on {cfg.host}:{cfg.port}: {exc}")
            self.server = None
            super().on_deactivate(state)
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"serving {self.meta['policy_type']} on ws://{cfg.host}:{self.server.port}")
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_server()
        self.get_logger().info("not serving (deactivated)")
        return super().on_deactivate(state)

    def shutdown_backend(self) -> None:
        self._release()

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def _release(self) -> None:
        self._stop_server()
        if self._pub_thread is not None:
            self._events.put(None)
            self._pub_thread.join(timeout=5.0)
            self._pub_thread = None
        for p in self._pubs:
            self.destroy_lifecycle_publisher(p)
        self._pubs.clear()
        self._image_pubs.clear()
        self.runtime = None
        release_device_memory()

    # ---- request/response -> ROS topics ----------------------------------------------------------------------
    def _on_exchange(self, event) -> None:
        """Called on the server's event loop after every reply: enqueue only (never delay the next request)."""
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def _publish_loop(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            try:
                self._publish(event)
            except Exception as exc:  # a publish failing must not stop the next ones
                self.get_logger().error(f"publishing request {event.request_id} failed: {exc}")

    def _publish(self, event) -> None:
        sec, nsec = rr.stamp(event.t_received)
        summary = fill(ObservationSummary(), rr.summary_fields(
            event.request_id, f"websocket:{event.peer}", event.obs, event.prompt, event.inference_delay,
            event.error))
        summary.header.stamp.sec, summary.header.stamp.nanosec = sec, nsec
        self.summary_pub.publish(summary)
        if event.reply is not None:
            chunk = fill(ActionChunk(), rr.chunk_fields(event.request_id, event.reply, self.meta))
            chunk.header.stamp.sec, chunk.header.stamp.nanosec = sec, nsec
            self.chunk_pub.publish(chunk)
            infer_ms = (event.reply.get("server_timing") or {}).get("infer_ms")
            if infer_ms is not None:
                self.stats.add(infer_ms)
        for key, pub in self._image_pubs.items():
            fields = rr.image_fields((event.obs or {}).get(key)) if event.obs else None
            if fields is not None:
                img = fill(Image(), {**fields, "data": np.asarray(fields["data"]).tobytes()})
                img.header.stamp.sec, img.header.stamp.nanosec = sec, nsec
                pub.publish(img)
        self.published += 1

    # ---- diagnostics -----------------------------------------------------------------------------------------
    def _diagnostics(self) -> None:
        name = self.get_fully_qualified_name()
        path = self._p("policy_path") or "none"
        server = self.server
        if server is not None:
            level, msg = "ok", f"serving on ws://{server.config.host}:{server.port}"
        elif self.runtime is not None:
            level, msg = "warn", "policy loaded, not serving (inactive)"
        elif self.load_error:
            level, msg = "error", f"policy not loaded: {self.load_error}"
        else:
            level, msg = "warn", "unconfigured: policy not loaded"
        values = {"model_loaded": self.runtime is not None, "port": server.port if server else "",
                  "clients": server._health()["clients"] if server else 0,
                  "requests": server.stats.requests if server else 0, "errors": server.stats.errors if server else 0,
                  "refused": server.stats.refused if server else 0, "published": self.published,
                  "publish_dropped": self.dropped}
        values.update({f"infer_{k}": v for k, v in self.stats.summary().items()})
        self._diag_pub.publish(diagnostic_array(self, [diagnostic(f"{name}: server", path, level, msg, values)]))


def main(args: list[str] | None = None) -> int:
    return spin_lifecycle_node(BridgeNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

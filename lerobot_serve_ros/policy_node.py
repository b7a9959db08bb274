"""`policy_node`: camera images + joint states on ROS topics -> ActionChunks from a LeRobot policy.

A lifecycle node, because it owns a model (or a connection to one):
  configure   load the backend: a local PolicyRuntime (`policy_path`, `device`), or a PolicyClient to a remote
              `lerobot-serve` / bridge_node when `server_url` is set (the robot's GPU may be elsewhere); check the
              camera / joint / action mappings against the policy's metadata; create subscriptions and publishers
  activate    start producing chunks          deactivate  stop producing (inputs keep being received)
  cleanup     release the model / connection  shutdown    the same, on the way out

When a chunk is computed (`mode`):
  rate        at `rate_hz`
  trigger     when the controller asks: controller/status says queue_time_s < `trigger_queue_time_s` and it has taken
              our previous chunk (or `trigger_retry_s` passed); also right after activation (the first chunk)
  continuous  as soon as every camera delivered a frame not used before (max throughput; also what the overhead
              benchmark uses, since it has no tick phase in its latency)

Inference runs on a worker thread, never on the executor, so subscriptions keep updating while the model runs.
Before each inference the observation must be complete and fresh (observation.py); otherwise the node skips,
says why (throttled log + diagnostics) and keeps running.
Images are converted + resized to the policy's input (ros_image.PolicyFrame): in continuous mode in the camera's
subscription callback as the frame arrives (every fresh set is used at once there, and the work overlaps with waiting
for the other cameras instead of delaying the inference); in rate/trigger modes only for the frames an inference
actually uses (most frames are never used there).

ActionChunk.header.stamp is the newest input header stamp of the observation (arrival time on the node clock for an
input whose stamp is unset); chunk_id rises strictly for the life of the process; dt = 1 / fps, from the policy's
metadata when it knows it, else the `fps` parameter.
"""

from __future__ import annotations

import array
import os
import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from lerobot_ros_msgs.msg import ActionChunk, ControllerStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from lerobot_serve_ros import ros_image
from lerobot_serve_ros.latency_stats import LatencyStats
from lerobot_serve_ros.runtime import release_device_memory
from lerobot_serve_ros.observation import JointOrder, ObservationBuffer, Readiness
from lerobot_serve_ros.ros_common import (CHUNK_QOS, DIAGNOSTICS_QOS, LATCHED_QOS, SENSOR_QOS_DEPTH1, STATUS_SUB_QOS,
                                          ModelOwnerNode, declare, diagnostic, diagnostic_array, ns_to_time,
                                          spin_lifecycle_node,
                                          time_to_ns)

NODE_NAME = "policy_node"
JOINT_STATES = "joint_states"  # name of the joint-state input in the observation buffer (and its default topic)
MODES = ("rate", "trigger", "continuous")
TRANSPORTS = ("raw", "compressed")
SO101_JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
AUTH_ENV = "LEROBOT_SERVE_AUTH_TOKEN"  # same variable lerobot-serve reads


def image_failure(exc: Exception) -> str:
    """Why a frame could not be converted: an ImageError says it in words; anything else (the converter choking on
    a frame) also names the exception type."""
    return str(exc) if isinstance(exc, ros_image.ImageError) else f"{type(exc).__name__}: {exc}"


@dataclass
class CameraConfig:
    name: str
    topic: str
    transport: str  # raw | compressed
    image_key: str  # policy feature, e.g. observation.images.front
    height: int = 0  # the policy's input size for this camera (set at configure, from the policy's metadata)
    width: int = 0

    @property
    def compressed(self) -> bool:
        return self.transport == "compressed"


class PolicyNode(ModelOwnerNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._declare_parameters()
        self.backend = None
        self.meta: dict = {}
        self.backend_error: str | None = None
        self.cameras: list[CameraConfig] = []
        self.buffer: ObservationBuffer | None = None
        self.joint_order: JointOrder | None = None
        self.stats = LatencyStats()  # backend.infer as the node sees it (includes the network for a remote one)
        self.obs_age = LatencyStats()  # observation stamp -> inference start: transport, callbacks, decode
        self.chunk_id = 0  # strictly increasing for the life of the process (never reset by a transition)
        self.chunks = 0
        self.skips = 0
        self.errors = 0
        self.last_skip = ""
        self.last_error = ""
        self.outcome = "none"  # of the last attempt: none | chunk | skip | error
        self.mode = self.get_parameter("mode").value
        self._last_skip_log = 0.0
        self._last_error_log = 0.0
        self._active = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._subs: list = []
        self._pubs: list = []
        self._status: tuple[float, ControllerStatus] | None = None  # (arrival monotonic, msg)
        self._last_publish = 0.0
        self._first_pending = False
        self._used_seqs: dict[str, int] = {}
        self._prompt = self.get_parameter("task_prompt").value
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self._diag_timer = self.create_timer(self.get_parameter("diagnostics_period_s").value,
                                             self._publish_diagnostics)
        self.get_logger().info("unconfigured; configure to load the policy "
                               f"({self.get_parameter('server_url').value or self.get_parameter('policy_path').value})")

    # ---- parameters --------------------------------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        d("policy_path", "", "LeRobot checkpoint folder or hub id, loaded in this process (unused with server_url)")
        d("device", "auto", "torch device for a local policy: auto | cpu | cuda | cuda:N | mps")
        d("policy_overrides", [], "lerobot config overrides for a local policy, e.g. --policy.n_action_steps=20")
        d("server_url", "", "ws://host:port of a lerobot-serve or bridge_node; set = remote backend, no local model")
        d("api_key", "", f"API key for server_url (default: ${AUTH_ENV})")
        d("server_timeout_s", 5.0, "remote backend: seconds to connect / wait for a reply before it counts as an error")
        d("warmup", True, "local policy: one inference at configure so the first chunk is not slow")
        cams = d("cameras", ["front", "wrist"], "camera names; each has cameras.<name>.topic/transport/image_key")
        for cam in cams:
            d(f"cameras.{cam}.topic", f"{cam}/image_raw", f"topic of camera {cam!r} (Image, or CompressedImage)")
            d(f"cameras.{cam}.transport", "raw", f"camera {cam!r}: raw (sensor_msgs/Image) | compressed (jpeg/png)")
            d(f"cameras.{cam}.image_key", f"observation.images.{cam}", f"policy image feature fed by camera {cam!r}")
        d("joint_states_topic", JOINT_STATES, "sensor_msgs/JointState input")
        d("joint_names", list(SO101_JOINTS), "joints in the order of the policy's observation.state vector")
        d("action_joint_names", [], "joint name of each action column (ActionChunk.action_names); empty: joint_names "
                                    "when the sizes match, else the policy's own action names")
        d("mode", "rate", "when to compute a chunk: rate | trigger | continuous")
        d("rate_hz", 10.0, "mode=rate: chunks per second")
        d("trigger_queue_time_s", 0.5, "mode=trigger: infer when controller/status queue_time_s drops below this")
        d("trigger_retry_s", 1.0, "mode=trigger: ask again if the controller has not taken the last chunk by then")
        d("max_image_age_s", 0.5, "skip inference when a camera's newest frame arrived longer ago than this")
        d("max_joint_state_age_s", 0.25, "skip inference when the newest joint state arrived longer ago than this")
        d("task_prompt", "", "task text for language policies (the task_prompt topic overrides it)")
        d("fps", 30.0, "policy control rate for ActionChunk.dt when the policy's metadata has none")
        d("publish_trajectory", False, "also publish each chunk as trajectory_msgs/JointTrajectory on joint_trajectory")
        d("diagnostics_period_s", 1.0, "period of /diagnostics messages")
        d("skip_log_period_s", 2.0, "at most one 'skipped inference' (or repeated error) log line per this many s")
        d("autostart", False, "configure and activate at startup (for runs without a lifecycle manager)")

    def _p(self, name: str):
        return self.get_parameter(name).value

    def _on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "task_prompt":
                self._prompt = p.value
        return SetParametersResult(successful=True)

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._load_backend()
            self._configure_io()
        except Exception as exc:  # a bad path, an unreachable server, a mapping that does not fit the policy
            self.backend_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: {self.backend_error}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.backend_error = None
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="policy-inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"configured: {self.meta.get('policy_type')} via {self._backend_desc()}, mode {self._p('mode')}, cameras "
            + ", ".join(f"{c.name}<-{c.topic} ({c.transport})" for c in self.cameras))
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._first_pending = True
        self._active = True
        self._wake.set()
        self.get_logger().info(f"active: producing chunks ({self.mode})")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.get_logger().info("inactive: not producing chunks")
        return super().on_deactivate(state)

    def shutdown_backend(self) -> None:
        self._active = False
        self._release()

    # ---- backend ---------------------------------------------------------------------------------------------
    def _backend_desc(self) -> str:
        url = self._p("server_url")
        return f"remote {url}" if url else f"local {self._p('policy_path')} on {self.meta.get('device', '?')}"

    def _load_backend(self) -> None:
        url = self._p("server_url")
        t0 = time.perf_counter()
        if url:
            from lerobot_serve_ros.client import ClientConfig, PolicyClient

            timeout = float(self._p("server_timeout_s"))
            key = self._p("api_key") or os.environ.get(AUTH_ENV) or None
            self.get_logger().info(f"connecting to policy server {url} ...")
            self.backend = PolicyClient(config=ClientConfig(url=url, api_key=key, open_timeout=timeout,
                                                            request_timeout=timeout, reconnect_timeout=timeout))
        else:
            path = self._p("policy_path")
            if not path:
                raise ValueError("set policy_path (a checkpoint folder) or server_url (a policy server)")
            from lerobot_serve_ros.runtime import PolicyRuntime, RuntimeConfig

            self.get_logger().info(f"loading policy {path} on {self._p('device')} ...")
            self.backend = PolicyRuntime(RuntimeConfig(path=path, device=self._p("device"), warmup=self._p("warmup"),
                                                       overrides=list(self._p("policy_overrides") or [])))
        self.meta = dict(self.backend.metadata())
        self.get_logger().info(f"policy {self.meta.get('policy_type')} ready in {time.perf_counter() - t0:.1f} s "
                               f"({self._backend_desc()})")

    def _configure_io(self) -> None:
        """Cameras, joints and actions mapped onto the policy's features; refuse a mapping that does not fit."""
        mode = self.mode = self._p("mode")
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: choose one of {MODES}")
        if mode == "rate" and not float(self._p("rate_hz")) > 0:
            raise ValueError(f"rate_hz must be > 0, got {self._p('rate_hz')}")
        self.cameras = []
        for name in self._p("cameras"):
            cam = CameraConfig(name, self._p(f"cameras.{name}.topic"), self._p(f"cameras.{name}.transport"),
                               self._p(f"cameras.{name}.image_key"))
            if cam.transport not in TRANSPORTS:
                raise ValueError(f"cameras.{name}.transport {cam.transport!r}: choose raw or compressed")
            if cam.image_key not in self.meta.get("image_shapes", {}):
                raise ValueError(f"cameras.{name}.image_key {cam.image_key!r} is not an image input of the policy "
                                 f"(it takes {list(self.meta.get('image_shapes', {}))})")
            cam.height, cam.width = (int(v) for v in self.meta["image_shapes"][cam.image_key][:2])
            self.cameras.append(cam)
        fed = {c.image_key for c in self.cameras}
        unfed = [k for k in self.meta.get("image_shapes", {}) if k not in fed]
        if unfed:
            raise ValueError(f"no camera feeds policy input(s) {unfed}; add them to `cameras`")
        state_dim = int(self.meta.get("state_dim") or 0)
        joint_names = list(self._p("joint_names"))
        self.joint_order = None
        if self.meta.get("state_key"):
            if len(joint_names) != state_dim:
                raise ValueError(f"joint_names has {len(joint_names)} names, the policy's state has {state_dim}")
            self.joint_order = JointOrder(joint_names)
        action_dim = int(self.meta["action_dim"])
        names = list(self._p("action_joint_names") or [])
        if not names:
            names = joint_names if len(joint_names) == action_dim else list(self.meta.get("action_names") or [])
        if len(names) != action_dim:
            raise ValueError(f"action_joint_names has {len(names)} names, the policy outputs {action_dim} actions")
        self.action_names = names
        fps = self.meta.get("fps") or float(self._p("fps"))
        self.dt = 1.0 / float(fps)

        limits = {c.name: float(self._p("max_image_age_s")) for c in self.cameras}
        if self.joint_order is not None:
            limits[JOINT_STATES] = float(self._p("max_joint_state_age_s"))
        self.buffer = ObservationBuffer(limits)
        self._used_seqs = {}
        for cam in self.cameras:
            msg_type = CompressedImage if cam.compressed else Image
            self._subs.append(self.create_subscription(
                msg_type, cam.topic, lambda m, c=cam: self._on_image(c, m), SENSOR_QOS_DEPTH1))
        if self.joint_order is not None:
            self._subs.append(self.create_subscription(JointState, self._p("joint_states_topic"), self._on_joints,
                                                       SENSOR_QOS_DEPTH1))
        self._subs.append(self.create_subscription(String, "task_prompt", self._on_prompt, LATCHED_QOS))
        if mode == "trigger":
            self._subs.append(self.create_subscription(ControllerStatus, "controller/status", self._on_status,
                                                       STATUS_SUB_QOS))
        self.chunk_pub = self.create_lifecycle_publisher(ActionChunk, "action_chunk", CHUNK_QOS)
        self.subtask_pub = self.create_lifecycle_publisher(String, "subtask", LATCHED_QOS)
        self._pubs = [self.chunk_pub, self.subtask_pub]
        self.traj_pub = None
        if self._p("publish_trajectory"):
            self.traj_pub = self.create_lifecycle_publisher(JointTrajectory, "joint_trajectory", CHUNK_QOS)
            self._pubs.append(self.traj_pub)

    def _release(self) -> None:
        self._active = False
        self._stop.set()
        self._wake.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=30.0)  # at most one inference in flight
        self._worker = None
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs.clear()
        for p in self._pubs:
            self.destroy_lifecycle_publisher(p)
        self._pubs.clear()
        backend, self.backend = self.backend, None
        if backend is not None and hasattr(backend, "close"):
            backend.close()
        del backend
        self.buffer = None
        self._status = None
        release_device_memory()

    # ---- inputs (executor thread: cheap work, plus the image conversion in continuous mode) -------------------
    def _stamp_ns(self, header) -> int:
        ns = time_to_ns(header.stamp)
        return ns if ns > 0 else self.get_clock().now().nanoseconds

    def _on_image(self, cam: CameraConfig, msg) -> None:
        """Check the frame and keep it. In continuous mode also convert it here, as it arrives: the conversion of
        the first camera's frame then overlaps with waiting for the others. Here, not on the worker: converting on
        the inference thread as frames arrived made the model itself slower (tiny ACT 21 -> 26 ms p50 in
        benchmarks/bench_ros_overhead.py; cause not found), which the callback thread avoids."""
        arrival = time.monotonic()  # staleness counts from arrival, not from the end of the conversion below
        buf = self.buffer
        if buf is None:
            return
        frame = ros_image.PolicyFrame(msg, cam.compressed, cam.height, cam.width)
        try:
            ros_image.check_message(msg, cam.compressed)
            if self.mode == "continuous":
                frame.image()
        except Exception as exc:  # broad: an exception escaping a callback would end the node's spin
            buf.put_invalid(cam.name, f"{cam.topic}: {image_failure(exc)}")
            return
        buf.put(cam.name, frame, self._stamp_ns(msg.header), now=arrival)
        if self._active and self.mode == "continuous":
            self._wake_if_new_frames()

    def _on_joints(self, msg: JointState) -> None:
        buf = self.buffer
        if buf is None or self.joint_order is None:
            return
        try:
            state = self.joint_order.reorder(msg.name, msg.position)
        except ValueError as exc:
            buf.put_invalid(JOINT_STATES, str(exc))
            return
        buf.put(JOINT_STATES, state, self._stamp_ns(msg.header))
        if self._active and self.mode == "continuous" and not self.cameras:
            self._wake_if_new_frames()

    def _on_prompt(self, msg: String) -> None:
        if msg.data != self._prompt:
            self.get_logger().info(f"task prompt: {msg.data!r}")
        self._prompt = msg.data

    def _on_status(self, msg: ControllerStatus) -> None:
        self._status = (time.monotonic(), msg)
        if self._trigger_due(time.monotonic()):
            self._wake.set()

    def _continuous_inputs(self) -> list[str]:
        """mode=continuous waits for a new message on each of these: the cameras (the joint state of a robot is
        always new), or the joint state for a policy without cameras."""
        return [c.name for c in self.cameras] or [JOINT_STATES]

    def _wake_if_new_frames(self) -> None:
        buf = self.buffer
        if buf is not None and buf.has_new(self._continuous_inputs(), self._used_seqs):
            self._wake.set()

    def _trigger_due(self, now: float) -> bool:
        """trigger mode: the first chunk after activation, or the controller's queue is running low and it has
        taken our last chunk (or that one got lost: `trigger_retry_s`)."""
        if not self._active:
            return False
        if self._first_pending:
            return True
        status = self._status
        if status is None or now - status[0] > 1.0:  # no controller talking: nobody is asking for chunks
            return False
        st = status[1]
        taken = st.last_chunk_id >= self.chunk_id
        return st.queue_time_s < float(self._p("trigger_queue_time_s")) and (
            taken or now - self._last_publish > float(self._p("trigger_retry_s")))

    # ---- inference (worker thread) -----------------------------------------------------------------------------
    def _work(self) -> None:
        """The inference thread. It also keeps the rate (absolute deadlines, no burst after a slow inference) and
        re-evaluates the trigger between status messages: no ROS timers to create and destroy per activation."""
        period = 1.0 / float(self._p("rate_hz")) if self.mode == "rate" else 0.05
        fresh_inputs = self._continuous_inputs()
        next_t = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(timeout=max(0.0, next_t - time.monotonic()) if self.mode == "rate" else period)
            self._wake.clear()
            now = time.monotonic()
            if self._stop.is_set() or not self._active or self.backend is None:
                next_t = now
                continue
            if self.mode == "rate":
                if now < next_t:
                    continue
                next_t = max(next_t + period, now)
            elif self.mode == "trigger" and not self._trigger_due(now):
                continue
            elif self.mode == "continuous" and not self.buffer.has_new(fresh_inputs, self._used_seqs):
                continue
            try:
                self._infer_once()
            except Exception as exc:  # never let the worker die: report and keep going
                self._error(f"{type(exc).__name__}: {exc}", traceback.format_exc())
                self._stop.wait(0.2)

    def _skip(self, reason: str) -> None:
        self.skips += 1
        self.outcome = "skip"
        self.last_skip = reason
        now = time.monotonic()
        if now - self._last_skip_log >= float(self._p("skip_log_period_s")):
            self._last_skip_log = now
            self.get_logger().warning(f"skipped inference ({self.skips} so far): {reason}")

    def _error(self, what: str, detail: str = "") -> None:
        """Count and report a failed inference; a repeated failure (server down) is logged once per throttle period."""
        self.errors += 1
        self.outcome = "error"
        now = time.monotonic()
        if what != self.last_error or now - self._last_error_log >= float(self._p("skip_log_period_s")):
            self._last_error_log = now
            self.get_logger().error(f"inference failed ({self.errors} so far): {what}"
                                    + (f"\n{detail}" if detail else ""))
        self.last_error = what

    def _assemble(self, ready: Readiness) -> dict[str, np.ndarray] | None:
        obs: dict[str, np.ndarray] = {}
        for cam in self.cameras:
            sample = ready.samples[cam.name]
            try:
                obs[cam.image_key] = sample.value.image()  # memoized: converted on arrival in continuous mode
            except Exception as exc:  # whatever the converter chokes on, that frame is unusable: say why
                why = f"{cam.topic}: {image_failure(exc)}"
                self.buffer.put_invalid(cam.name, why, seq=sample.seq)
                self._skip(f"{cam.name}: invalid: {why}")
                return None
        if self.joint_order is not None:
            obs[self.meta["state_key"]] = ready.samples[JOINT_STATES].value
        return obs

    def _infer_once(self) -> None:
        from lerobot_serve_ros.runtime import ObservationError

        ready = self.buffer.check()
        if not ready.ready:
            self._skip(ready.summary())
            return
        obs = self._assemble(ready)
        if obs is None:
            return
        used = {name: s.seq for name, s in ready.samples.items()}
        self.obs_age.add((self.get_clock().now().nanoseconds - ready.stamp_ns) / 1e6)
        t0 = time.perf_counter()
        try:
            reply = self.backend.infer(obs, prompt=self._prompt or None)
        except ObservationError as exc:
            self._error(f"policy refused the observation: {exc}")
            return
        except Exception as exc:  # remote backend down, device error: report, keep running, retry on next tick
            self._error(f"{type(exc).__name__}: {exc}")
            self._stop.wait(0.2)
            return
        self.stats.add((time.perf_counter() - t0) * 1e3)
        if not self._active:  # deactivated while the model ran: this chunk is not wanted any more
            return
        self._used_seqs = used
        self._first_pending = False
        self._publish(reply, ready.stamp_ns)

    def _publish(self, reply: dict, stamp_ns: int) -> None:
        actions = np.asarray(reply["actions"], dtype=np.float32)
        if actions.ndim != 2 or actions.shape[1] != len(self.action_names):
            self._error(f"policy returned actions of shape {list(actions.shape)}, expected [T, "
                        f"{len(self.action_names)}]")
            return
        self.chunk_id += 1
        msg = ActionChunk()
        msg.header.stamp = ns_to_time(stamp_ns)
        msg.chunk_id = self.chunk_id
        msg.policy_name = str(self.meta.get("policy_type", ""))
        msg.action_names = list(self.action_names)
        msg.rows, msg.cols = int(actions.shape[0]), int(actions.shape[1])
        msg.data = array.array("f", np.ascontiguousarray(actions).tobytes())  # no per-element Python checks
        msg.dt = float(self.dt)
        msg.start_index = 0
        msg.inference_ms = float((reply.get("timing") or {}).get("total_ms", 0.0))
        self.chunk_pub.publish(msg)
        self._last_publish = time.monotonic()
        self.chunks += 1
        self.outcome = "chunk"
        if self.traj_pub is not None:
            self.traj_pub.publish(self._trajectory(actions, msg))
        subtask = reply.get("subtask")
        if isinstance(subtask, str) and subtask:
            self.subtask_pub.publish(String(data=subtask))

    def _trajectory(self, actions: np.ndarray, chunk: ActionChunk) -> JointTrajectory:
        """The chunk as a joint_trajectory_controller goal: stamped at the observation, so the controller samples
        it at `now` and skips what is already past (the same latency compensation the ActionChunk carries)."""
        traj = JointTrajectory(joint_names=list(self.action_names))
        traj.header.stamp = chunk.header.stamp
        for i, row in enumerate(actions):
            t = (i + chunk.start_index) * chunk.dt
            pt = JointTrajectoryPoint(positions=row.astype(float).tolist())
            pt.time_from_start.sec = int(t)
            pt.time_from_start.nanosec = int(round((t - int(t)) * 1e9))
            traj.points.append(pt)
        return traj

    # ---- diagnostics -----------------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        name = self.get_fully_qualified_name()
        hw = self.meta.get("policy_path") or self._p("server_url") or self._p("policy_path") or "none"
        if self.backend is not None:
            level, message = ("ok", "active") if self._active else ("warn", "configured, inactive")
        elif self.backend_error:
            level, message = "error", f"policy not loaded: {self.backend_error}"
        else:
            level, message = "warn", "unconfigured: policy not loaded"
        model = diagnostic(f"{name}: policy", hw, level, message, {
            "model_loaded": self.backend is not None, "backend": self._backend_desc() if self.backend else "none",
            "policy_type": self.meta.get("policy_type", ""), "mode": self._p("mode"), "prompt": self._prompt})
        statuses = [model]
        buf = self.buffer
        if buf is not None:
            fresh = buf.freshness()
            bad = {k: v for k, v in fresh.items() if not v.startswith("ok")}
            lvl = "ok" if not bad else ("error" if self._active else "warn")
            msg = "all inputs fresh" if not bad else "; ".join(f"{k}: {v}" for k, v in bad.items())
            topics = {c.name: c.topic for c in self.cameras}
            topics[JOINT_STATES] = self._p("joint_states_topic")
            statuses.append(diagnostic(f"{name}: inputs", hw, lvl, msg,
                                       {f"{topics.get(k, k)}": v for k, v in fresh.items()}))
        values = {"chunks_produced": self.chunks, "last_chunk_id": self.chunk_id, "skipped": self.skips,
                  "last_skip_reason": self.last_skip, "errors": self.errors, "last_error": self.last_error}
        values.update({f"latency_{k}": v for k, v in self.stats.summary().items()})
        values.update({f"observation_age_{k}": v for k, v in self.obs_age.summary().items() if k != "samples"})
        lvl, msg = {"error": ("error", f"last inference failed: {self.last_error}"),
                    "skip": ("warn" if self._active else "ok", f"last inference skipped: {self.last_skip}")}.get(
            self.outcome, ("ok", f"{self.chunks} chunks, latency p50 {values['latency_p50_ms']} ms"))
        statuses.append(diagnostic(f"{name}: inference", hw, lvl, msg, values))
        self._diag_pub.publish(diagnostic_array(self, statuses))


def main(args: list[str] | None = None) -> int:
    return spin_lifecycle_node(PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

"""controller_node: the only process that commands the robot (rclpy glue over controller.Controller).

Lifecycle (it owns hardware): configure connects the hardware and starts the control loop HOLDING (IDLE);
activate lets the operator start it; deactivate pauses (hold); cleanup / shutdown run the safe stop and disconnect.
`autostart: true` configures + activates at startup (default false: the launch or a lifecycle manager does it).
The loop runs on its own thread (SCHED_FIFO `loop_priority`); the executor thread (FIFO, 10 below) only handles
chunks, services and publishing at low rates, and never touches the hardware (except the ros2_control topic
output, whose publisher the loop calls directly). The Trigger services exist in every lifecycle state and answer
"not configured" / "not active" where they cannot act.

Topics (relative names; run it in the robot's namespace):
  sub  action_chunk                 lerobot_ros_msgs/ActionChunk       reliable depth 10
  pub  joint_states                 sensor_msgs/JointState             sensor QoS, what the hardware reports
  pub  controller/status            lerobot_ros_msgs/ControllerStatus  reliable depth 1, status_rate_hz
  pub  /diagnostics                 diagnostic_msgs/DiagnosticArray
  hardware=topic: pub forward_position_controller/commands (Float64MultiArray), sub feedback_topic (JointState)
Services (std_srvs/Trigger): controller/start, pause, resume, reset, stop, estop.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lerobot_ros_msgs.msg import ActionChunk, ControllerStatus
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from lerobot_control_ros.control_loop import set_fifo_priority
from lerobot_control_ros.controller import Controller
from lerobot_control_ros.controller_core import ControllerConfig, map_columns
from lerobot_control_ros.state_machine import OPERATOR_EVENTS, Event, State
from lerobot_serve_ros.ros_common import (CHUNK_QOS, DIAGNOSTICS_QOS, SENSOR_QOS, STATUS_QOS, declare, diagnostic,
                                          diagnostic_array, ns_to_time, time_to_ns)

_DEFAULT = ControllerConfig()
HARDWARE_KINDS = ("sim", "topic", "lerobot")


class ControllerNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("controller_node", **kwargs)
        d = lambda name, default, desc, **kw: declare(self, name, default, desc, **kw)  # noqa: E731
        self.p = {
            # hardware
            "hardware": d("hardware", "sim", f"which hardware to command: {' | '.join(HARDWARE_KINDS)}"),
            "joint_names": d("joint_names", list(_DEFAULT.joint_names), "hardware joints, in the hardware's order"),
            "rate_hz": d("rate_hz", 500.0, "control loop rate (Hz)"),
            "loop_spin_s": d("loop_spin_s", 0.0003, "busy-wait this long before each deadline (s) for precise ticks"),
            "loop_priority": d("loop_priority", 50, "SCHED_FIFO priority of the loop thread (0: normal scheduling; "
                                                    "needs root or an rtprio limit, else a warning)"),
            "miss_threshold_ms": d("miss_threshold_ms", 1.0, "a period longer than nominal + this counts as a miss"),
            "sim_tau_s": d("sim_tau_s", 0.05, "hardware=sim: joint time constant (s)"),
            "sim_max_velocity": d("sim_max_velocity", 4.0, "hardware=sim: physical joint speed limit (rad/s)"),
            "sim_initial": d("sim_initial", [0.0] * 6, "hardware=sim: initial joint positions"),
            "command_topic": d("command_topic", "forward_position_controller/commands",
                               "hardware=topic: Float64MultiArray position commands (forward_command_controller)"),
            "feedback_topic": d("feedback_topic", "/joint_state_broadcaster/joint_states",
                                "hardware=topic: JointState feedback from the robot (must differ from joint_states "
                                "when publish_joint_states is true)"),
            "max_feedback_age_s": d("max_feedback_age_s", 0.5, "hardware=topic: older feedback = hardware error"),
            "robot_args": d("robot_args", ["--robot.type=lerobot_ros_sim_arm"],
                            "hardware=lerobot: lerobot robot flags, e.g. ['--robot.type=so101_follower', "
                            "'--robot.port=/dev/ttyACM0', '--robot.id=arm']"),
            # safety
            "home": d("home", list(_DEFAULT.home), "reset pose, per joint"),
            "lower_limits": d("lower_limits", list(_DEFAULT.lower), "per-joint lower position limit"),
            "upper_limits": d("upper_limits", list(_DEFAULT.upper), "per-joint upper position limit"),
            "max_velocity": d("max_velocity", list(_DEFAULT.max_velocity), "per-joint command slew limit (units/s)"),
            "max_step": d("max_step", list(_DEFAULT.max_step), "per-joint max |command - measured position|"),
            "watchdog_timeout_s": d("watchdog_timeout_s", _DEFAULT.watchdog_timeout_s,
                                    "no accepted chunk for this long while RUNNING -> PAUSED, hold"),
            "command_timeout_s": d("command_timeout_s", _DEFAULT.command_timeout_s,
                                   "queue empty this long while RUNNING -> hold the measured position"),
            # chunks
            "merge": d("merge", _DEFAULT.merge, "overlapping chunks: weighted_average | latest_only | average | "
                                                "conservative"),
            # reset / stop
            "reset_speed_fraction": d("reset_speed_fraction", _DEFAULT.reset_speed_fraction,
                                      "reset peak speed as a fraction of max_velocity"),
            "reset_min_duration_s": d("reset_min_duration_s", _DEFAULT.reset_min_duration_s, "shortest reset move (s)"),
            "home_tolerance": d("home_tolerance", _DEFAULT.home_tolerance, "reset done when every joint is this close"),
            "reset_settle_timeout_s": d("reset_settle_timeout_s", _DEFAULT.reset_settle_timeout_s,
                                        "after the move, wait this long for the tolerance, then IDLE anyway (logged)"),
            "stop_settle_s": d("stop_settle_s", _DEFAULT.stop_settle_s, "safe stop: hold this long before damping"),
            "estop_hold_s": d("estop_hold_s", _DEFAULT.estop_hold_s, "e-stop: hold this long before damping"),
            "damping_s": d("damping_s", _DEFAULT.damping_s, "damp this long, then the node exits"),
            # ROS outputs
            "publish_joint_states": d("publish_joint_states", True, "publish joint_states from the hardware"),
            "joint_state_rate_hz": d("joint_state_rate_hz", 100.0, "joint_states rate (Hz)"),
            "status_rate_hz": d("status_rate_hz", 20.0, "controller/status rate (Hz)"),
            "diagnostics_period_s": d("diagnostics_period_s", 1.0, "/diagnostics period (s)"),
            "hardware_ready_timeout_s": d("hardware_ready_timeout_s", 5.0,
                                          "hardware=topic: first feedback must arrive within this (s), else exit"),
            "autostart": d("autostart", False, "configure + activate at startup (false: the launch / a lifecycle "
                                               "manager drives the transitions)"),
        }
        self.ctrl: Controller | None = None
        self._active = False
        self._published_state: State | None = None  # last state on controller/status (publish on change)
        self._col_cache: dict[tuple[str, ...], np.ndarray] = {}
        self._last_log: dict[str, float] = {}
        self.chunks_received = 0
        self._handles: list = []
        self.exit_event = threading.Event()
        self.exit_code = 0
        # services exist in every lifecycle state, so an operator always gets an answer ("not configured" ...)
        self._trigger_services = [self.create_service(Trigger, f"controller/{e.value}", self._service(e))
                                  for e in OPERATOR_EVENTS]
        self._ready_deadline = 0.0

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = self._controller_config()
            hw = self._make_hardware(cfg)
            self.ctrl = Controller(cfg, hw, rate_hz=float(self.p["rate_hz"]), spin_s=float(self.p["loop_spin_s"]),
                                   miss_threshold_s=float(self.p["miss_threshold_ms"]) * 1e-3,
                                   priority=int(self.p["loop_priority"]))
        except Exception as exc:  # noqa: BLE001 - a bad parameter must be a clear log line, not a traceback
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        try:
            self.ctrl.hw.connect()
            if self.ctrl.hw.is_ready:
                self.ctrl.start_loop()
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"configure failed: hardware did not start: {exc}")
            self.ctrl.hw.disconnect()
            self.ctrl = None
            return TransitionCallbackReturn.FAILURE
        self._status_pub = self.create_publisher(ControllerStatus, "controller/status", STATUS_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self._js_pub = (self.create_publisher(JointState, "joint_states", SENSOR_QOS)
                        if self.p["publish_joint_states"] else None)
        self._ready_deadline = time.monotonic() + float(self.p["hardware_ready_timeout_s"])
        self._handles = [
            (self.destroy_subscription, self.create_subscription(ActionChunk, "action_chunk", self._on_chunk,
                                                                 CHUNK_QOS)),
            (self.destroy_timer, self.create_timer(1.0 / float(self.p["status_rate_hz"]), self._publish_status)),
            (self.destroy_timer, self.create_timer(float(self.p["diagnostics_period_s"]), self._publish_diagnostics)),
            (self.destroy_timer, self.create_timer(0.05, self._check_finished)),
        ]
        self._handles += [(self.destroy_publisher, p) for p in (self._status_pub, self._diag_pub, self._js_pub)
                          if p is not None]
        if self._js_pub is not None:
            self._handles.append((self.destroy_timer, self.create_timer(
                1.0 / float(self.p["joint_state_rate_hz"]), self._publish_joint_states)))
        self._announce()
        return TransitionCallbackReturn.SUCCESS

    def _announce(self) -> None:
        ctrl = self.ctrl
        if ctrl.core is None:
            self.get_logger().info(f"configured: hardware={self.p['hardware']}; waiting for its first joint positions")
            return
        self.get_logger().info(
            f"configured: hardware={self.p['hardware']} joints={ctrl.cfg.joint_names} loop {self.p['rate_hz']:.0f} Hz; "
            f"IDLE, holding at {np.round(ctrl.snapshot.positions, 3).tolist()}")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        self.get_logger().info("active: call controller/start to let the policy drive the arm")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        if self.ctrl and self.ctrl.core.state == State.RUNNING:
            self.ctrl.core.command(Event.PAUSE, self.ctrl.clock())
            self.get_logger().warning("deactivated while RUNNING: paused, holding")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shutdown_backend()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shutdown_backend()
        return TransitionCallbackReturn.SUCCESS

    def shutdown_backend(self) -> None:
        """Safe stop if the loop still runs (hold, damp), then stop the loop and disconnect. Idempotent."""
        ctrl, self.ctrl = self.ctrl, None
        if ctrl is None:
            return
        if ctrl.core is None:  # never got the hardware's first measurement: nothing was commanded
            ctrl.hw.disconnect()
            return
        if ctrl.loop.running and not ctrl.finished.is_set():
            ctrl.core.command(Event.STOP, ctrl.clock())
            ctrl.finished.wait(ctrl.cfg.stop_settle_s + ctrl.cfg.damping_s + 1.0)
        ctrl.stop()
        for destroy, handle in self._handles:
            try:
                destroy(handle)
            except Exception:  # noqa: BLE001 - the context may already be shut down (Ctrl-C)
                pass
        self._handles = []
        self.get_logger().info(f"controller stopped ({ctrl.core.state.name}: {ctrl.core.sm.reason})")

    # ------------------------------------------------------------------ building
    def _controller_config(self) -> ControllerConfig:
        p = self.p
        return ControllerConfig(
            joint_names=list(p["joint_names"]), home=list(p["home"]), lower=list(p["lower_limits"]),
            upper=list(p["upper_limits"]), max_velocity=list(p["max_velocity"]), max_step=list(p["max_step"]),
            merge=p["merge"], watchdog_timeout_s=p["watchdog_timeout_s"], command_timeout_s=p["command_timeout_s"],
            reset_speed_fraction=p["reset_speed_fraction"], reset_min_duration_s=p["reset_min_duration_s"],
            home_tolerance=p["home_tolerance"], reset_settle_timeout_s=p["reset_settle_timeout_s"],
            stop_settle_s=p["stop_settle_s"], estop_hold_s=p["estop_hold_s"], damping_s=p["damping_s"])

    def _make_hardware(self, cfg: ControllerConfig):
        kind = self.p["hardware"]
        if kind == "sim":
            from lerobot_control_ros.hardware.sim_arm import SimArm, SimArmConfig

            n = len(cfg.joint_names)
            margin = 0.05  # the physical stops lie just outside the controller's limits
            initial = list(self.p["sim_initial"])
            if len(initial) != n:
                raise ValueError(f"sim_initial has {len(initial)} values for {n} joints")
            return SimArm(SimArmConfig(joint_names=list(cfg.joint_names), tau_s=self.p["sim_tau_s"],
                                       max_velocity=self.p["sim_max_velocity"],
                                       lower=[x - margin for x in cfg.lower], upper=[x + margin for x in cfg.upper],
                                       initial=initial))
        if kind == "topic":
            from lerobot_control_ros.hardware.topic_output import TopicOutput

            fb = self.p["feedback_topic"]
            if self.p["publish_joint_states"] and fb.lstrip("/") == self.resolve_topic_name("joint_states").lstrip("/"):
                raise ValueError(f"feedback_topic {fb!r} is the topic this node publishes; set publish_joint_states "
                                 "false or read feedback elsewhere")
            return TopicOutput(self, cfg.joint_names, self.p["command_topic"], fb,
                               max_feedback_age_s=self.p["max_feedback_age_s"])
        if kind == "lerobot":
            from lerobot_control_ros.hardware.lerobot_robot import LeRobotHardware

            hw = LeRobotHardware(list(self.p["robot_args"]))
            if hw.joint_names != list(cfg.joint_names):
                raise ValueError(f"the lerobot robot's joints {hw.joint_names} differ from joint_names "
                                 f"{cfg.joint_names}")
            return hw
        raise ValueError(f"hardware must be one of {HARDWARE_KINDS}, got {kind!r}")

    # ------------------------------------------------------------------ inputs
    def _throttled(self, key: str, period: float = 2.0) -> bool:
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= period:
            self._last_log[key] = now
            return True
        return False

    def _on_chunk(self, msg: ActionChunk) -> None:
        ctrl = self.ctrl
        if ctrl is None or ctrl.core is None:
            return
        self.chunks_received += 1
        names = tuple(msg.action_names)
        try:
            cols = self._col_cache.get(names)
            if cols is None:
                cols = map_columns(list(names), ctrl.cfg.joint_names)
                self._col_cache[names] = cols
            if msg.cols != len(names) or len(msg.data) != msg.rows * msg.cols:
                raise ValueError(f"rows*cols = {msg.rows}*{msg.cols} but {len(msg.data)} values and "
                                 f"{len(names)} action names")
            actions = np.asarray(msg.data, dtype=np.float64).reshape(msg.rows, msg.cols)[:, cols]
        except ValueError as exc:
            ctrl.core.chunks_refused += 1
            ctrl.core.last_refusal = f"chunk {msg.chunk_id} refused: {exc}"
            if self._throttled("bad_chunk"):
                self.get_logger().error(ctrl.core.last_refusal)
            return
        t0 = time_to_ns(msg.header.stamp) * 1e-9
        result = ctrl.core.push_chunk(actions, t0=t0, dt=float(msg.dt), now=ctrl.clock(), chunk_id=msg.chunk_id,
                                      start_index=int(msg.start_index))
        if not result.ok and self._throttled("refused"):
            self.get_logger().warning(f"chunk {msg.chunk_id} from {msg.policy_name!r} refused: {result.reason}")
        elif result.accepted == 0 and self._throttled("stale"):
            self.get_logger().warning(f"chunk {msg.chunk_id}: all {result.dropped} rows already in the past "
                                      f"(observation {ctrl.clock() - t0:.3f} s old); check clocks and latency")

    def _service(self, event: Event):
        def handle(_req, resp):
            ctrl = self.ctrl
            if ctrl is None or ctrl.core is None:
                resp.success, resp.message = False, (f"{event.value} refused: controller not configured or still "
                                                     "waiting for the hardware's first joint positions")
                return resp
            if event in (Event.START, Event.RESUME) and not self._active:
                resp.success, resp.message = False, f"{event.value} refused: node is not active (lifecycle)"
                return resp
            t = ctrl.core.command(event, ctrl.clock())
            resp.success, resp.message = t.ok, t.message
            if t.ok:
                self._publish_status()  # subscribers see the new state before the caller's reply, not a tick later
                self.get_logger().info(f"controller/{event.value}: {t.message}")
            else:
                self.get_logger().warning(f"controller/{event.value}: {t.message}")
            return resp

        return handle

    # ------------------------------------------------------------------ outputs
    def _publish_joint_states(self) -> None:
        ctrl = self.ctrl
        snap = ctrl.snapshot if ctrl else None
        if snap is None:
            return
        msg = JointState(name=list(ctrl.cfg.joint_names), position=snap.positions.tolist(),
                         velocity=snap.velocities.tolist())
        msg.header.stamp = ns_to_time(int(snap.t * 1e9))
        self._js_pub.publish(msg)

    def _publish_status(self) -> None:
        ctrl = self.ctrl
        if ctrl is None or ctrl.core is None:
            return
        st = ctrl.status()
        msg = ControllerStatus(state=int(st["state"]), state_name=st["state_name"], reason=st["reason"],
                               holding=st["holding"], queue_depth=int(st["queue_depth"]),
                               queue_time_s=float(st["queue_time_s"]), last_chunk_id=int(st["last_chunk_id"]),
                               loop_rate_hz=st["loop_rate_hz"], period_p50_ms=st["loop_p50_ms"],
                               period_p99_ms=st["loop_p99_ms"], period_max_ms=st["loop_window_max_ms"],
                               deadline_misses=int(st["loop_misses"]), watchdog_trips=int(st["watchdog_trips"]))
        msg.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)
        self._published_state = st["state"]

    def _publish_diagnostics(self) -> None:
        ctrl = self.ctrl
        if ctrl is None:
            return
        if ctrl.core is None:
            self._diag_pub.publish(diagnostic_array(self, [diagnostic(
                "controller_node: control loop", self.p["hardware"], "warn",
                "waiting for the hardware's first joint positions", {})]))
            return
        st = ctrl.status()
        period_ms = 1e3 / ctrl.rate_hz
        level, message = "ok", f"{st['state_name']}: {st['reason']}"
        if not st["loop_alive"] or st["state"] in (State.EMERGENCY_STOP, State.DAMPING) or st["hw_errors"]:
            level = "error"
        elif st["state"] == State.PAUSED or st["loop_p99_ms"] > period_ms + 1.0:
            level = "warn"
        values = {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in st.items() if k != "state"}
        values["chunks_received"] = self.chunks_received
        status = diagnostic("controller_node: control loop", f"{self.p['hardware']}", level, message, values)
        self._diag_pub.publish(diagnostic_array(self, [status]))

    def _check_finished(self) -> None:
        """Also publishes status on a state change the loop made by itself (watchdog, e-stop hold over, home
        reached): short states such as EMERGENCY_STOP (estop_hold_s) must not fall between two status_rate_hz ticks."""
        ctrl = self.ctrl
        if ctrl is not None and ctrl.core is not None and ctrl.core.state != self._published_state:
            self._publish_status()
        if ctrl is not None and ctrl.core is None:
            if ctrl.hw.is_ready:
                ctrl.start_loop()
                self._announce()
            elif time.monotonic() > self._ready_deadline:
                self.get_logger().error(f"hardware={self.p['hardware']}: no joint positions within "
                                        f"{self.p['hardware_ready_timeout_s']} s (feedback topic "
                                        f"{self.p['feedback_topic']!r}?); exiting")
                self.exit_code = 1
                self.exit_event.set()
            return
        if ctrl is not None and ctrl.finished.is_set() and not self.exit_event.is_set():
            self._publish_status()
            why = ctrl.core.sm.reason if ctrl.loop.error is None else f"loop crashed: {ctrl.loop.error!r}"
            if ctrl.loop.error is not None or (ctrl.hw_errors and ctrl.core.state != State.DAMPING):
                self.exit_code = 1  # not a commanded stop: let a supervisor (launch respawn, systemd) see it
                why += f" (hardware: {ctrl.last_hw_error})" if ctrl.hw_errors else ""
            self.get_logger().warning(f"controller finished ({ctrl.core.state.name}: {why}); exiting")
            self.exit_event.set()


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=sys.argv if args is None else args)
    node = ControllerNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    prio = int(node.get_parameter("loop_priority").value)
    if prio > 1:  # see control_loop.set_fifo_priority: the executor thread must not hold the GIL while preempted
        err = set_fifo_priority(max(prio - 10, 1))
        if err:
            node.get_logger().warning(f"executor thread: {err}")
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error("autostart: configure failed (see above)")
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error("autostart: activate failed")
                code = 1
        while code == 0 and rclpy.ok() and not node.exit_event.is_set():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        code = code or node.exit_code
        node.shutdown_backend()
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())

"""`lerobot-ros-demo`: the whole stack on one machine without a ROS install, a simulated arm and a tiny policy.

What it does (the README's run command calls scripts/demo.sh, which runs scripts/setup.sh first, then this):
  1. builds the tiny demo checkpoint once (a real, randomly initialised ACT policy; cached in
     ./artifacts/checkpoints/tiny_act);
  2. starts controller_node (simulated arm), sim_camera_node, bridge_node (loads the model, serves websockets on
     --port), policy_node (uses the bridge through server_url: one model in memory) and, with --record, the bag
     recorder; every process in one private ROS domain on loopback (ros_env.py), with the same setup YAML that
     bringup.launch.py gives them (--config, default config/sim_arm.yaml);
  3. drives the lifecycle transitions (configure, activate) and starts the controller;
  4. prints a live one-line status (controller state, loop rate and p99, queue depth, last inference, chunks);
  5. on Ctrl-C / SIGTERM / after --duration: asks the controller for a safe stop, stops every process it started
     (by pid) and removes their /dev/shm files; writes plot.png (queue depth, inference latency, joint positions),
     summary.json (measured numbers) and, when recording, the rosbag2 folder bag/.
While it runs, any openpi client can connect: `WebsocketClientPolicy(host="127.0.0.1", port=PORT)`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from lerobot_control_ros.demo_stack import (COMPONENTS, DEFAULT_SETUP, Stack, StackConfig, load_params,
                                            setup_yaml)
from lerobot_serve_ros.ros_env import cleanup_shm, localhost_ros_env, shm_snapshot

CHECKPOINT_DIR = Path("artifacts") / "checkpoints" / "tiny_act"


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def ensure_checkpoint(path: Path = CHECKPOINT_DIR) -> Path:
    """The contract's demo policy (ACT, front+wrist 96 px, 6 dof, chunk 50), built once and cached."""
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return path.resolve()
    from lerobot_serve_ros.make_checkpoint import CheckpointSpec, build_checkpoint

    say(f"building the tiny demo checkpoint in {path} (once; ~10 s) ...")
    t0 = time.monotonic()
    out = build_checkpoint(path, CheckpointSpec(policy_type="act"))
    say(f"checkpoint ready in {time.monotonic() - t0:.1f} s")
    return out.resolve()


def bring_up(stack: Stack, monitor, timeout: float = 120.0, progress=say) -> None:
    """Start every process of the stack, configure + activate the lifecycle nodes in dependency order (bridge
    before the policy node that connects to it) and start the controller. Raises with the logs on failure."""
    for name in stack.cfg.components():
        stack.start(name)
        progress(f"started {name:<10} pid {stack.procs[name].pid}")
    for name in ("bridge", "policy"):  # the bridge first: the policy node connects to it when it configures
        if name in stack.procs:
            activate(stack, monitor, name, timeout, progress)
    activate(stack, monitor, "controller", 30.0, progress)
    # start once chunks flow: started earlier, the watchdog would pause it before the first chunk arrives
    monitor.wait_for(lambda: monitor.chunk_count > 0, 60.0, "the first action chunk")
    progress(f"first chunk received ({monitor.last_chunk.inference_ms:.0f} ms inference)")
    start_controller(monitor, timeout=30.0, progress=progress)


def wait_service(stack: Stack, monitor, name: str, service: str, timeout: float) -> None:
    """Wait for a process's service to appear; fail at once (with its log) if the process dies meanwhile."""
    deadline = time.monotonic() + timeout
    while not monitor.has_service(service, timeout=0.5):
        if not stack.alive(name):
            raise RuntimeError(f"{name} exited (code {stack.procs[name].proc.poll()}):\n"
                               f"{stack.procs[name].log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: no {service} after {timeout:.0f} s:\n{stack.procs[name].log_tail()}")


def activate(stack: Stack, monitor, name: str, timeout: float = 120.0, progress=say) -> None:
    """configure + activate the lifecycle node of component `name` (started already)."""
    node = COMPONENTS[name].node
    wait_service(stack, monitor, name, f"{node}/change_state", 30.0)
    for transition in ("configure", "activate"):
        t0 = time.monotonic()
        if not monitor.lifecycle(node, transition, timeout=timeout):
            raise RuntimeError(f"{node}: {transition} failed:\n{stack.procs[name].log_tail()}")
        progress(f"{node} {transition}d in {time.monotonic() - t0:.1f} s")


def start_controller(monitor, timeout: float = 30.0, progress=say) -> None:
    """controller/start -> RUNNING (the controller node is active already)."""
    ok, message = monitor.trigger("controller/start", timeout=timeout)
    if not ok:
        raise RuntimeError(f"controller/start refused: {message}")
    monitor.wait_state("RUNNING", timeout=10.0)
    progress(f"controller RUNNING ({message})")


def status_line(monitor, elapsed: float, bridge: bool = True) -> str:
    s = monitor.status
    if s is None:
        ctrl = "controller: no status yet"
    else:
        ctrl = (f"{s.state_name:<9} loop {s.loop_rate_hz:6.1f} Hz p99 {s.period_p99_ms:5.2f} ms misses "
                f"{s.deadline_misses} | queue {s.queue_depth:3d} ({s.queue_time_s:4.2f} s)")
        if s.state_name != "RUNNING" and s.reason:
            ctrl = f"{ctrl} [{s.reason}]"
    c = monitor.last_chunk
    infer = f"infer {c.inference_ms:5.1f} ms" if c is not None else "infer  --  ms"
    line = f"[{elapsed:7.1f} s] {ctrl} | {infer} | chunks {monitor.chunk_count}"
    if bridge:
        line += f" | bridge clients {monitor.diag_value('bridge_node', 'clients', '-')}"
    return line


def summarize(monitor, stack: Stack, wall_s: float) -> dict:
    chunks = list(monitor.series.chunks)
    inf = np.array([c[2] for c in chunks], dtype=float)
    s = monitor.status
    summary = {
        "duration_s": round(wall_s, 1),
        "chunks_received": monitor.chunk_count,
        "inference_ms_p50": round(float(np.percentile(inf, 50)), 2) if inf.size else None,
        "inference_ms_p99": round(float(np.percentile(inf, 99)), 2) if inf.size else None,
        "controller_states": [name for _t, name in monitor.states_seen],
        "bridge_url": stack.url if stack.cfg.bridge else None,
    }
    if s is not None:
        summary.update({"loop_rate_hz": round(s.loop_rate_hz, 2), "period_p50_ms": round(s.period_p50_ms, 3),
                        "period_p99_ms": round(s.period_p99_ms, 3), "period_max_ms": round(s.period_max_ms, 3),
                        "deadline_misses": int(s.deadline_misses), "watchdog_trips": int(s.watchdog_trips)})
    joints = list(monitor.series.joints)
    if joints:
        summary["joint_names"] = monitor.joint_names
        summary["joints_first"] = [round(float(v), 4) for v in joints[0][1:]]
        summary["joints_last"] = [round(float(v), 4) for v in joints[-1][1:]]
    depths = [r[2] for r in monitor.series.status if r[1] == "RUNNING"]
    if depths:
        summary["queue_depth_running_min_mean_max"] = [int(min(depths)), round(float(np.mean(depths)), 1),
                                                       int(max(depths))]
    return summary


def bag_counts(bag: Path) -> dict[str, int]:
    from rosbags.rosbag2 import Reader

    with Reader(bag) as r:
        return {c.topic: c.msgcount for c in r.connections}


class _Stopper:
    """SIGINT/SIGTERM set an event instead of raising inside whatever the main thread is doing."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        if self.event.is_set():  # second Ctrl-C: the user means it
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        self.event.set()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="lerobot-ros-demo", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=0.0, help="seconds to run; 0 = until Ctrl-C (default)")
    ap.add_argument("--config", default=DEFAULT_SETUP,
                    help="setup params YAML (a path, or a name in config/: sim_arm, so101, arx5); default sim_arm")
    ap.add_argument("--out", default=None, help="output folder for plot, bag, logs (default ./artifacts/demo-<time>)")
    ap.add_argument("--no-bridge", dest="bridge", action="store_false",
                    help="the policy node loads the model itself; no websocket server")
    ap.add_argument("--record", action=argparse.BooleanOptionalAction, default=True,
                    help="record the configured topics into <out>/bag (rosbag2, MCAP); default on")
    ap.add_argument("--port", type=int, default=8000, help="bridge websocket port (default 8000)")
    ap.add_argument("--policy-path", default=None,
                    help="a LeRobot checkpoint folder to run instead of the tiny demo policy")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out or Path("artifacts") / time.strftime("demo-%Y%m%d-%H%M%S")).resolve()
    setup = setup_yaml(args.config)
    params = load_params(setup)
    stopper = _Stopper()
    stopper.install()
    checkpoint = Path(args.policy_path).resolve() if args.policy_path else ensure_checkpoint()
    cfg = StackConfig(setup=setup, out_dir=out, checkpoint=checkpoint, port=args.port, bridge=args.bridge,
                      record=args.record, camera="sim_camera_node" in params, viz="arm_viz_node" in params)
    env = localhost_ros_env()
    os.environ.update(env)  # this process (the monitor) joins the stack's private domain before rclpy starts
    shm_before = shm_snapshot()
    say(f"setup {setup}; output {out}; ROS_DOMAIN_ID {env['ROS_DOMAIN_ID']} (loopback only)")
    from lerobot_control_ros.stack_monitor import StackMonitor

    stack = Stack(cfg, env)
    env_sh = out / "ros_env.sh"
    env_sh.write_text("".join(f"export {k}={env[k]}\n" for k in (
        "ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE", "RMW_IMPLEMENTATION")))
    say(f"operate the arm from another terminal: source {env_sh} && .venv/bin/python -m lerobot_control_ros.keyboard "
        "(space start/pause, r reset, q safe stop, Esc e-stop)")
    monitor = StackMonitor(domain_id=int(env["ROS_DOMAIN_ID"])).start()
    code = 0
    t_start = time.monotonic()
    try:
        bring_up(stack, monitor)
        if cfg.bridge:
            say(f"openpi clients can connect: WebsocketClientPolicy(host='127.0.0.1', port={cfg.port})")
        say("running" + (f" for {args.duration:.0f} s" if args.duration > 0 else "; Ctrl-C to stop"))
        t_run = time.monotonic()
        tty = sys.stdout.isatty()
        next_print = 0.0
        while not stopper.event.is_set():
            now = time.monotonic()
            if args.duration > 0 and now - t_run >= args.duration:
                break
            dead = [n for n in stack.procs if not stack.alive(n)]
            if dead and not (dead == ["controller"] and monitor.state() == "DAMPING"):
                print(flush=True)
                say(f"process(es) exited unexpectedly: {dead}\n{stack.log_tails()}")
                code = 1
                break
            if now >= next_print:
                line = status_line(monitor, now - t_run, cfg.bridge)
                print(("\r" + line + "   ") if tty else line, end="" if tty else "\n", flush=True)
                next_print = now + (0.25 if tty else 1.0)
            stopper.event.wait(0.05)
        if tty:
            print(flush=True)
        if stopper.signal:
            say(f"{stopper.signal}: stopping")
    except (RuntimeError, TimeoutError) as exc:
        say(f"bring-up failed: {exc}")
        say(stack.log_tails())
        code = 1
    except KeyboardInterrupt:
        say("interrupted again: stopping now")
        code = 130
    finally:
        wall = time.monotonic() - t_start
        if stack.alive("controller") and monitor.status is not None:
            try:  # a safe stop: hold, then damping; the arm never just goes limp mid-motion
                monitor.trigger("controller/stop", timeout=5.0)
                monitor.wait_state(("DAMPING",), timeout=5.0)
            except Exception as exc:  # already stopping, or unresponsive: the process stop below still happens
                say(f"controller/stop: {exc}")
        codes = stack.stop_all()
        removed = cleanup_shm(shm_before)
        say(f"stopped {', '.join(f'{k} ({v})' for k, v in codes.items())}; removed {len(removed)} /dev/shm file(s)")
        try:
            from lerobot_control_ros.demo_plot import plot_run

            summary = summarize(monitor, stack, wall)
            if cfg.record and stack.bag_path.exists():
                try:
                    summary["bag"] = str(stack.bag_path)
                    summary["bag_messages"] = bag_counts(stack.bag_path)
                except Exception as exc:  # a bag without metadata.yaml (recorder killed)
                    summary["bag_error"] = f"{type(exc).__name__}: {exc}"
            title = (f"{setup.stem}: {summary['chunks_received']} chunks, inference p50 "
                     f"{summary['inference_ms_p50']} ms, loop p99 {summary.get('period_p99_ms')} ms, "
                     f"misses {summary.get('deadline_misses')}")
            plot = plot_run(out / "plot.png", list(monitor.series.status), list(monitor.series.chunks),
                            list(monitor.series.joints), monitor.joint_names, title)
            (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            say(f"plot {plot}")
            say("summary " + json.dumps(summary))
        finally:
            monitor.close()
    return code


if __name__ == "__main__":
    sys.exit(main())

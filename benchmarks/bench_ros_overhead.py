"""ROS overhead of policy_node: camera publish -> ActionChunk received, minus the model's own inference time.

Setup: a tiny ACT checkpoint (2 cameras 96x96, state 6, chunk 50) loaded by policy_node in its own process
(`mode: continuous`: it infers as soon as both cameras delivered a new frame, so no rate-timer phase enters the
latency). This process publishes 2 cameras at 640x480 rgb8 (through the 16 MiB shared-memory Fast DDS profile of
config/fastdds_localhost.xml) + a JointState, all stamped just before publishing, at a pace slower than inference
(no queueing), and receives the ActionChunks. Rows, per chunk:

  end to end        chunk arrival (wall clock) - chunk.header.stamp (= the stamp of the frames it was computed from)
  inference         chunk.inference_ms: PolicyRuntime.infer inside the node (validation, pre/post-processing, model)
  ROS overhead      end to end - inference: publishing 2x900 KiB, DDS transport, callbacks, hand-off to the
                    inference thread, RGB decode + resize to 96x96, ActionChunk publish and transport
  publish           this process's own publish calls for one frame set (rclpy converts each 900 KiB frame from
                    Python; a C++ camera driver does not pay this): part of the overhead above
  decode+resize     baseline measured here in the same run: ros_image.to_policy_image for the two 640x480 frames
                    (the part of the overhead that is image work, not ROS)
  observation age   the node's own diagnostics: frame stamp -> start of inference (transport, callbacks, wake-up
                    of the inference thread, decode+resize); the rest of the overhead is the chunk's way back
  floor             the same measurement, same run, through a do-nothing relay in place of policy_node (same node
                    name, topics, QoS and executor; it publishes an all-zero chunk from the callback of the frame
                    that completes a new set): what DDS + rclpy cost on this machine before the node does any work.
                    policy_node's own share of the overhead is the difference. `--floor-chunks 0` skips it.

Target (issue 3): ROS overhead p50 <= 3 ms. The machine is shared and noisy: compare rows within one run.
    .venv/bin/python benchmarks/bench_ros_overhead.py [--chunks 150] [--rate 5] [--width 640 --height 480]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test" / "nodes"))  # ros_harness: the test-side ROS graph (subscriptions, lifecycle)

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from lerobot_serve_ros.ros_env import (ManagedProcess, cleanup_shm, localhost_ros_env,  # noqa: E402
                                       python_module_cmd, shm_snapshot)

CAMERAS = ("front", "wrist")
RELAY_FLAG = "--relay-node"  # run as the floor's do-nothing stand-in for policy_node (a child process of the bench)


def pct(xs, q: float) -> float:
    return float(np.percentile(np.asarray(xs, float), q)) if len(xs) else float("nan")


def relay_node() -> int:
    """The floor's stand-in for policy_node: a lifecycle node of the same name with the same subscriptions, chunk
    publisher, QoS and single-threaded executor, doing no work between a complete new frame set and its chunk."""
    import array

    import rclpy
    from lerobot_ros_msgs.msg import ActionChunk
    from rclpy.executors import ExternalShutdownException
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
    from sensor_msgs.msg import Image, JointState

    from lerobot_serve_ros.ros_common import CHUNK_QOS, SENSOR_QOS_DEPTH1
    from ros_harness import JOINTS

    class Relay(LifecycleNode):
        def __init__(self):
            super().__init__("policy_node")
            self.fresh: set[str] = set()
            self.chunk_id = 0

        def on_configure(self, state) -> TransitionCallbackReturn:
            for cam in CAMERAS:
                self.create_subscription(Image, f"{cam}/image_raw", lambda m, c=cam: self.on_image(c, m),
                                         SENSOR_QOS_DEPTH1)
            self.create_subscription(JointState, "joint_states", lambda m: None, SENSOR_QOS_DEPTH1)
            self.pub = self.create_lifecycle_publisher(ActionChunk, "action_chunk", CHUNK_QOS)
            return super().on_configure(state)

        def on_image(self, cam: str, msg: Image) -> None:
            self.fresh.add(cam)
            if len(self.fresh) < len(CAMERAS):
                return
            self.fresh.clear()
            self.chunk_id += 1
            chunk = ActionChunk(chunk_id=self.chunk_id, action_names=list(JOINTS), rows=50, cols=len(JOINTS),
                                dt=1 / 30, data=array.array("f", bytes(50 * len(JOINTS) * 4)))
            chunk.header.stamp = msg.header.stamp
            self.pub.publish(chunk)

    rclpy.init()
    node = Relay()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def measure(h, node: ManagedProcess, frames: dict, joints, n_sets: int, warmup: int, rate: float) -> dict:
    """Activate `node` (named policy_node), publish `n_sets` frame sets one at a time, each after the previous
    one's chunk (or 5 s), and return the per-chunk rows of the table (after `warmup` chunks)."""
    from ros_harness import wait_until

    if not (h.change_state("policy_node", "configure") and h.change_state("policy_node", "activate")):
        raise RuntimeError(f"policy_node did not activate:\n{node.log_tail(30)}")
    h.wait_subscribed([p for p, _ in frames.values()] + [h.joint_pub], timeout=10)
    publish_ms: list[float] = []

    def publish_set() -> None:
        t0 = time.perf_counter()
        stamp = h.node.get_clock().now().to_msg()
        for pub, msg in frames.values():
            msg.header.stamp = stamp
            pub.publish(msg)
        joints.header.stamp = stamp
        h.joint_pub.publish(joints)
        publish_ms.append((time.perf_counter() - t0) * 1e3)

    start_n = h.chunk_count()
    lost = 0
    for _ in range(n_sets):
        t_next = time.monotonic() + 1.0 / rate
        n = h.chunk_count()
        publish_set()
        try:
            wait_until(lambda: h.chunk_count() > n, 5.0, "a chunk")
        except TimeoutError:
            lost += 1  # best-effort frames may be dropped under load; counted and reported
        time.sleep(max(0.0, t_next - time.monotonic()))
    with h.lock:
        received = h.chunks[start_n:]
    e2e, infer = [], []
    for arrival, c in received[warmup:]:
        e2e.append((arrival - (c.header.stamp.sec + c.header.stamp.nanosec * 1e-9)) * 1e3)
        infer.append(c.inference_ms)
    return {"e2e": e2e, "infer": infer, "overhead": [a - b for a, b in zip(e2e, infer)],
            "publish": publish_ms[warmup:], "received": len(received), "lost": lost}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=150, help="chunks measured (after --warmup)")
    ap.add_argument("--floor-chunks", type=int, default=100, help="chunks measured through the relay (0: skip)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rate", type=float, default=5.0, help="frame sets per second (keep below the inference rate)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument(RELAY_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.relay_node:
        return relay_node()

    # `timeout`/SIGTERM must still run the finally below: the node child runs in its own session and would outlive us
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = localhost_ros_env()
    os.environ.update(env)  # this process joins the same loopback-only domain
    shm_before = shm_snapshot()
    from sensor_msgs.msg import Image, JointState

    from lerobot_serve_ros import ros_image
    from lerobot_serve_ros.make_checkpoint import CheckpointSpec, build_checkpoint
    from ros_harness import JOINTS, SENSOR_QOS, RosHarness

    work = Path(tempfile.mkdtemp(prefix="bench_ros_"))
    print(f"building a tiny ACT checkpoint in {work} ...", flush=True)
    ckpt = build_checkpoint(work / "tiny_act", CheckpointSpec(policy_type="act"))
    params = work / "policy_node.yaml"
    params.write_text(yaml.safe_dump({"policy_node": {"ros__parameters": {
        "policy_path": str(ckpt), "device": "cpu", "mode": "continuous", "max_image_age_s": 1.0,
        "max_joint_state_age_s": 1.0, "cameras": list(CAMERAS)}}}))
    node = ManagedProcess(python_module_cmd("lerobot_serve_ros.policy_node", "--ros-args", "--params-file",
                                            str(params)), env, log_path=work / "policy_node.log").start()
    relay = None
    h = RosHarness(int(env["ROS_DOMAIN_ID"]))
    try:
        rng = np.random.default_rng(0)
        frames = {}
        for cam in CAMERAS:
            img = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
            frames[cam] = (h.node.create_publisher(Image, f"{cam}/image_raw", SENSOR_QOS),
                           Image(height=args.height, width=args.width, encoding="rgb8", step=args.width * 3,
                                 data=img.tobytes()))
        joints = JointState(name=list(JOINTS), position=[0.0] * len(JOINTS))
        total = args.warmup + args.chunks
        print(f"configuring policy_node (loads the model), then {total} frame sets (2 x {args.width}x{args.height} "
              f"rgb8) at {args.rate} Hz ...", flush=True)
        run = measure(h, node, frames, joints, total, args.warmup, args.rate)
        time.sleep(1.5)  # one more diagnostics period
        diag = h.diag_status("policy_node: inference")
        node_values = {v.key: v.value for v in diag.values} if diag else {}
        node.stop()

        floor = None
        if args.floor_chunks > 0:
            print(f"floor: {args.warmup + args.floor_chunks} frame sets through the do-nothing relay ...", flush=True)
            relay = ManagedProcess([sys.executable, str(Path(__file__).resolve()), RELAY_FLAG], env,
                                   log_path=work / "relay.log").start()
            floor = measure(h, relay, frames, joints, args.warmup + args.floor_chunks, args.warmup, args.rate)

        decode = []  # baseline: the image work alone, in this process
        for _ in range(50):
            t0 = time.perf_counter()
            for _, msg in frames.values():
                ros_image.to_policy_image(msg, False, 96, 96)
            decode.append((time.perf_counter() - t0) * 1e3)
    finally:
        h.close()
        node.stop()
        if relay is not None:
            relay.stop()
        cleanup_shm(shm_before)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\npolicy_node ROS overhead, 2 cameras {args.width}x{args.height} rgb8 -> tiny ACT (96x96) on CPU, "
          f"{len(run['overhead'])} chunks measured ({run['received']} received for {total} frame sets, "
          f"{run['lost']} without a chunk within 5 s)\n")
    print(f"| {'measure':<40} | {'p50 ms':>8} | {'p99 ms':>8} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|")
    rows = [("end to end (publish -> chunk)", run["e2e"]), ("inference in the node (model)", run["infer"]),
            ("ROS overhead (end to end - inference)", run["overhead"]),
            ("  of which: publishing 2 frames", run["publish"]), ("baseline: decode+resize 2 frames", decode)]
    if floor is not None:
        rows.append((f"floor: do-nothing relay ({len(floor['overhead'])} chunks)", floor["overhead"]))
    for name, xs in rows:
        print(f"| {name:<40} | {pct(xs, 50):8.2f} | {pct(xs, 99):8.2f} |")
    if node_values:  # the node's own view (last 200 chunks): stamp -> inference start, after decode+resize
        print(f"| {'node: observation age at infer start':<40} | {node_values['observation_age_p50_ms']:>8} | "
              f"{node_values['observation_age_p99_ms']:>8} |")
    p50 = pct(run["overhead"], 50)
    print(f"\nROS overhead p50 {p50:.2f} ms = {p50 / pct(run['e2e'], 50):.0%} of end to end; "
          f"target p50 <= 3 ms: {'met' if p50 <= 3.0 else 'NOT met'}")
    if floor is not None:
        f50 = pct(floor["overhead"], 50)
        print(f"floor of this machine (no node work) p50 {f50:.2f} ms ({floor['lost']} frame sets without a chunk); "
              f"policy_node's own share p50 {p50 - f50:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""policy_node in its own process (real rclpy, local tiny ACT) fed by synthetic cameras + joint states published
from this process. One node for the module; each test leaves it active with healthy inputs.

Cameras: front raw (rgb8 160x120, resized to 96x96 by the node), wrist compressed (JPEG)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from ros_harness import JOINTS, wait_until
from std_msgs.msg import String

pytestmark = pytest.mark.ros
NODE = "policy_node"


@pytest.fixture(scope="module")
def node(node_procs, harness, tiny_act_checkpoint):
    proc = node_procs.start_node("lerobot_serve_ros.policy_node", NODE, {
        "policy_path": str(tiny_act_checkpoint), "device": "cpu", "warmup": False,
        "cameras": ["front", "wrist"],
        "cameras.front.topic": "front/image_raw", "cameras.front.transport": "raw",
        "cameras.front.image_key": "observation.images.front",
        "cameras.wrist.topic": "wrist/image_raw/compressed", "cameras.wrist.transport": "compressed",
        "cameras.wrist.image_key": "observation.images.wrist",
        "mode": "rate", "rate_hz": 10.0, "max_image_age_s": 0.5, "max_joint_state_age_s": 0.5,
        "publish_trajectory": True, "diagnostics_period_s": 0.25, "skip_log_period_s": 0.5})
    harness.add_camera("front", topic="front/image_raw")
    harness.add_camera("wrist", topic="wrist/image_raw/compressed", compressed=True)
    harness.start_streaming(30.0)
    wait_until(lambda: not proc.alive() or harness.node.count_subscribers("/diagnostics") >= 0 and
               harness.node.count_publishers("/diagnostics") > 0, 30, "policy_node to come up")
    assert proc.alive(), proc.log_tail()
    return proc


def no_chunks_for(harness, seconds: float) -> bool:
    n = harness.chunk_count()
    time.sleep(seconds)
    return harness.chunk_count() == n


def no_chunk_from_after(harness, t_ns: int, seconds: float = 1.0) -> list[int]:
    """Stamps of chunks (arriving within `seconds`) computed from observations newer than `t_ns`, which must not
    exist once the node has seen the breakage at `t_ns`. A chunk whose inference began earlier may still arrive
    (inference takes long on busy cores), but its stamp is older: stamps are the frames' publish times."""
    n = harness.chunk_count()
    time.sleep(seconds)
    stamps = [c.header.stamp.sec * 1_000_000_000 + c.header.stamp.nanosec for c in harness.chunks_since(n)]
    return [s for s in stamps if s >= t_ns]


def restore(harness):
    for cam in harness.cameras.values():
        cam.enabled, cam.truncate, cam.pad = True, False, 0
    front = harness.cameras["front"]
    front.encoding, front.width, front.height = "rgb8", 160, 120
    harness.joint_order, harness.joints_enabled = list(JOINTS), True
    harness.wait_chunks(2, timeout=10)


def test_lifecycle_and_chunks(node, harness):
    assert harness.get_state(NODE) == "unconfigured"
    assert no_chunks_for(harness, 0.5)
    assert harness.change_state(NODE, "configure")
    assert harness.get_state(NODE) == "inactive"
    assert no_chunks_for(harness, 1.0), "an inactive node must not publish chunks"

    assert harness.change_state(NODE, "activate")
    assert harness.get_state(NODE) == "active"
    chunks = harness.wait_chunks(5, timeout=15)
    ids = [c.chunk_id for c in chunks]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids  # rising, none lost (reliable QoS)
    for c in chunks:
        assert c.action_names == JOINTS and c.policy_name == "act"
        assert (c.rows, c.cols) == (50, 6) and len(c.data) == 300
        assert np.all(np.isfinite(np.asarray(c.data)))
        assert c.dt == pytest.approx(1 / 30) and c.start_index == 0 and c.inference_ms > 0
        stamp_ns = c.header.stamp.sec * 1_000_000_000 + c.header.stamp.nanosec
        # the stamp is that of a frame set this harness published (all inputs share it), not a receive time
        assert stamp_ns in harness.published_stamps, "chunk stamp is not an observation stamp"
    inf = harness.wait_diag(f"{NODE}: inference", lambda s: int(dict((v.key, v.value) for v in s.values)
                                                                   ["chunks_produced"]) > 0)
    values = {v.key: v.value for v in inf.values}
    assert float(values["latency_p50_ms"]) > 0 and float(values["latency_p99_ms"]) >= float(values["latency_p50_ms"])
    model = harness.wait_diag(f"{NODE}: policy", lambda s: s.level == DiagnosticStatus.OK)
    assert {v.key: v.value for v in model.values}["model_loaded"] == "True"

    assert harness.change_state(NODE, "deactivate")
    assert not no_chunk_from_after(harness, time.time_ns(), 1.0), "chunks after deactivate"
    assert harness.change_state(NODE, "activate")
    again = harness.wait_chunks(2, timeout=10)
    assert again[0].chunk_id > ids[-1], "chunk_id must keep rising across deactivate/activate"


def test_trajectory_mirror_and_task_prompt(node, harness):
    chunk = harness.wait_chunks(1, timeout=10)[0]
    wait_until(lambda: any(t.header.stamp == chunk.header.stamp for t in list(harness.trajectories)), 5,
               "the JointTrajectory mirror of a chunk")
    traj = next(t for t in list(harness.trajectories) if t.header.stamp == chunk.header.stamp)
    assert traj.joint_names == JOINTS and len(traj.points) == chunk.rows
    rows = np.asarray(chunk.data, np.float32).reshape(chunk.rows, chunk.cols)
    assert np.allclose([p.positions for p in traj.points], rows, atol=1e-6)
    last = traj.points[-1].time_from_start
    assert last.sec + last.nanosec * 1e-9 == pytest.approx((chunk.rows - 1) * chunk.dt, abs=1e-6)

    harness.prompt_pub.publish(String(data="pick up the cube"))
    harness.wait_diag(f"{NODE}: policy", lambda s: {v.key: v.value for v in s.values}["prompt"] == "pick up the cube")


def test_joint_states_by_name_any_order(node, harness):
    harness.joint_order = list(reversed(JOINTS)) + ["base_yaw"]  # reordered, with a joint the policy does not use
    harness.wait_chunks(3, timeout=10)
    harness.joint_order = JOINTS[:-1]  # gripper missing
    st = harness.wait_diag(f"{NODE}: inputs", lambda s: "lacks joint(s) ['gripper']" in s.message)
    assert st.level == DiagnosticStatus.ERROR
    assert not no_chunk_from_after(harness, time.time_ns())
    restore(harness)


def test_stale_camera_no_chunk_then_recovery(node, harness):
    harness.cameras["wrist"].enabled = False  # camera unplugged
    st = harness.wait_diag(f"{NODE}: inputs", lambda s: "wrist" in s.message and "STALE" in s.message)
    assert st.level == DiagnosticStatus.ERROR and "limit 0.5 s" in st.message
    inf = harness.wait_diag(f"{NODE}: inference", lambda s: "wrist: stale" in s.message)
    assert inf.level == DiagnosticStatus.WARN
    assert not no_chunk_from_after(harness, time.time_ns()), "must never infer on a stale observation"
    assert node.alive()
    harness.cameras["wrist"].enabled = True
    chunks = harness.wait_chunks(2, timeout=10)
    assert chunks[-1].chunk_id > chunks[0].chunk_id
    harness.wait_diag(f"{NODE}: inputs", lambda s: s.level == DiagnosticStatus.OK)


@pytest.mark.parametrize("breakage, expected", [
    ({"encoding": "16UC1"}, "unsupported encoding '16UC1'"),
    ({"truncate": True}, "needs 57600"),
])
def test_bad_images_refused_with_reason(node, harness, breakage, expected):
    for k, v in breakage.items():
        setattr(harness.cameras["front"], k, v)
    st = harness.wait_diag(f"{NODE}: inputs", lambda s: expected in s.message)
    assert st.level == DiagnosticStatus.ERROR and "front" in st.message
    assert not no_chunk_from_after(harness, time.time_ns())
    assert node.alive()
    restore(harness)


def test_other_encodings_sizes_and_row_padding_are_used(node, harness):
    front = harness.cameras["front"]
    for enc, w, h, pad in (("mono8", 200, 150, 3), ("bgr8", 96, 96, 0), ("rgba8", 64, 48, 16)):
        front.encoding, front.width, front.height, front.pad = enc, w, h, pad
        time.sleep(0.15)
        harness.wait_chunks(2, timeout=10)
        harness.wait_diag(f"{NODE}: inputs", lambda s: s.level == DiagnosticStatus.OK)
    restore(harness)


def test_cleanup_releases_model(node, harness):
    assert harness.change_state(NODE, "deactivate")
    assert harness.change_state(NODE, "cleanup")
    assert harness.get_state(NODE) == "unconfigured"
    st = harness.wait_diag(f"{NODE}: policy", lambda s: "not loaded" in s.message)
    assert {v.key: v.value for v in st.values}["model_loaded"] == "False"
    assert node.alive()


def test_continuous_mode_one_chunk_per_new_frame_set(node, harness):
    """mode=continuous (the overhead benchmark's): frames are converted as they arrive and a chunk is computed as
    soon as every camera has a frame not used before; an undecodable frame is refused with the reason."""
    assert harness.get_state(NODE) == "unconfigured"  # where test_cleanup_releases_model left it
    harness.set_parameters(NODE, {"mode": "continuous"})
    assert harness.change_state(NODE, "configure") and harness.change_state(NODE, "activate")
    stamps = [c.header.stamp.sec * 1_000_000_000 + c.header.stamp.nanosec for c in harness.wait_chunks(5, 15)]
    assert len(set(stamps)) == len(stamps), "two chunks from one frame set"
    assert set(stamps) <= harness.published_stamps

    harness.cameras["wrist"].truncate = True  # half a JPEG: passes the header checks, fails to decode
    st = harness.wait_diag(f"{NODE}: inputs", lambda s: "cannot decode" in s.message)
    assert st.level == DiagnosticStatus.ERROR and "wrist" in st.message
    assert not no_chunk_from_after(harness, time.time_ns())
    assert node.alive()
    restore(harness)

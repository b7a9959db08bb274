"""Remote-backend mode and the bridge, all in real processes on loopback:

  lerobot-serve (tiny ACT)  <-ws-  policy_node (server_url, trigger mode)  -> action_chunk
  bridge_node (tiny ACT)    <-ws-  policy_node (reconfigured to the bridge) -> action_chunk
                            <-ws-  the official openpi-client, from this process, at the same time
  bridge_node -> bridge/observation_summary + bridge/action_chunk for every websocket request
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from ros_harness import JOINTS, wait_until
from serve_testlib import ServeProcess, free_port, make_obs, wait_healthy

pytestmark = pytest.mark.ros
NODE = "policy_node"
BRIDGE = "bridge_node"


@pytest.fixture(scope="module")
def serve(tiny_act_checkpoint, tmp_path_factory):
    s = ServeProcess(tiny_act_checkpoint, tmp_path_factory.mktemp("serve"), "--warmup=false")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def policy(node_procs, harness, serve):
    proc = node_procs.start_node("lerobot_serve_ros.policy_node", NODE, {
        "server_url": f"ws://127.0.0.1:{serve.port}", "mode": "trigger", "trigger_queue_time_s": 0.5,
        "trigger_retry_s": 60.0, "max_image_age_s": 0.5, "max_joint_state_age_s": 0.5,
        "diagnostics_period_s": 0.25, "server_timeout_s": 3.0})
    harness.add_camera("front", topic="front/image_raw")
    harness.add_camera("wrist", topic="wrist/image_raw")
    harness.start_streaming(30.0)
    return proc


def status_for(harness, seconds: float, queue_time_s: float, last_chunk_id: int) -> None:
    """Play the controller: publish controller/status at 20 Hz."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        harness.publish_status(queue_time_s, last_chunk_id)
        time.sleep(0.05)


def test_remote_backend_trigger_mode(policy, harness, serve):
    assert harness.change_state(NODE, "configure")
    model = harness.wait_diag(f"{NODE}: policy", lambda s: "remote" in {v.key: v.value for v in s.values}["backend"])
    assert f"ws://127.0.0.1:{serve.port}" in {v.key: v.value for v in model.values}["backend"]
    assert harness.change_state(NODE, "activate")
    first = harness.wait_chunks(1, timeout=15)[0]  # the start-up chunk, before any controller status
    assert (first.rows, first.cols, first.action_names) == (50, 6, JOINTS)
    wait_until(lambda: harness.node.count_subscribers("controller/status") > 0, 10, "status subscription")

    n = harness.chunk_count()
    status_for(harness, 1.0, queue_time_s=1.5, last_chunk_id=first.chunk_id)  # plenty queued: no request
    assert harness.chunk_count() == n
    status_for(harness, 0.3, queue_time_s=0.1, last_chunk_id=first.chunk_id)  # running low: one request
    wait_until(lambda: harness.chunk_count() > n, 10, "a chunk after the low-queue status")
    second = harness.chunks_since(n)[0]
    assert second.chunk_id == first.chunk_id + 1
    n = harness.chunk_count()
    status_for(harness, 1.0, queue_time_s=0.1, last_chunk_id=first.chunk_id)  # not taken the new one yet: wait
    assert harness.chunk_count() == n, "trigger mode must not re-ask before the controller took the last chunk"
    status_for(harness, 0.3, queue_time_s=0.1, last_chunk_id=second.chunk_id)
    wait_until(lambda: harness.chunk_count() > n, 10, "a chunk once the controller took the previous one")
    assert serve.proc.alive() and policy.alive()


def test_bridge_serves_openpi_client_while_ros_produces(policy, harness, node_procs, tiny_act_checkpoint):
    port = free_port()
    bridge = node_procs.start_node("lerobot_serve_ros.bridge_node", BRIDGE, {
        "policy_path": str(tiny_act_checkpoint), "device": "cpu", "warmup": False, "host": "127.0.0.1",
        "port": port, "diagnostics_period_s": 0.25})
    assert harness.change_state(BRIDGE, "configure")
    assert harness.change_state(BRIDGE, "activate")
    wait_healthy(port, bridge, deadline_s=15)

    # the policy node now shares the bridge's model
    assert harness.change_state(NODE, "deactivate") and harness.change_state(NODE, "cleanup")
    harness.set_parameters(NODE, {"server_url": f"ws://127.0.0.1:{port}", "mode": "rate", "rate_hz": 10.0})
    assert harness.change_state(NODE, "configure") and harness.change_state(NODE, "activate")
    harness.wait_chunks(3, timeout=15)

    client = WebsocketClientPolicy(host="127.0.0.1", port=port)
    meta = client.get_server_metadata()
    assert meta["policy_type"] == "act"
    # both sides make progress at the same time through the one model (FIFO-fair), however slow the machine is
    ros_before = harness.chunk_count()
    t0, replies, ros_during = time.monotonic(), 0, 0
    while (replies < 5 or ros_during < 5) and time.monotonic() - t0 < 30.0:
        out = client.infer(make_obs(meta, seed=replies))
        assert out["actions"].shape == (50, 6) and out["actions"].dtype == np.float32
        replies += 1
        ros_during = harness.chunk_count() - ros_before
    assert replies >= 5 and ros_during >= 5, (replies, ros_during)
    with pytest.raises(RuntimeError, match="missing key"):
        client.infer({"observation.state": np.zeros(6, np.float32)})
    client._ws.close()

    # every websocket request (the ROS node's and the outside client's) is on the bridge topics
    wait_until(lambda: any(s.error for s in harness.bridge_summaries), 5, "the refused request's summary")
    with harness.lock:
        summaries, chunks = list(harness.bridge_summaries), list(harness.bridge_chunks)
    assert len({s.source for s in summaries}) >= 2 and all(s.source.startswith("websocket:127.0.0.1:")
                                                           for s in summaries)
    bad = [s for s in summaries if s.error]
    assert len(bad) == 1 and "missing key" in bad[0].error
    ok_ids = {s.request_id for s in summaries if not s.error}
    assert len(ok_ids) >= replies + ros_during
    assert {c.chunk_id for c in chunks} <= ok_ids and len(chunks) >= len(ok_ids) - 2  # last ones may be in flight
    c = chunks[-1]
    assert (c.rows, c.cols, c.policy_name) == (50, 6, "act") and c.action_names == [f"{j}.pos" for j in JOINTS]
    good = next(s for s in summaries if not s.error)
    assert "observation.images.front" in good.keys and len(good.state) == 6
    diag = harness.wait_diag(f"{BRIDGE}: server", lambda s: int({v.key: v.value for v in s.values}["requests"]) > 0)
    assert diag.level == DiagnosticStatus.OK

    # bridge deactivated: the ROS side reports errors but keeps running; back on: it recovers by itself
    assert harness.change_state(BRIDGE, "deactivate")
    harness.wait_diag(f"{NODE}: inference", lambda s: s.level == DiagnosticStatus.ERROR, timeout=15)
    assert policy.alive()
    assert harness.change_state(BRIDGE, "activate")
    harness.wait_chunks(2, timeout=20)
    assert harness.change_state(NODE, "deactivate")

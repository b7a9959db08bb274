"""The robot-side asynchronous loop over a real server and the controller's real ActionQueue."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from lerobot_serve_ros.client import AsyncLoopConfig, AsyncPolicyLoop, ClientConfig, PolicyClient
from lerobot_serve_ros.server import PolicyServer, ServerConfig
from lerobot_serve_ros.ros_env import wait_until
from serve_testlib import free_port, make_obs




@pytest.mark.parametrize("merge", ["weighted_average", "latest_only"])
def test_loop_executes_chunk_actions_and_sends_rtc_inputs(act_runtime, merge):
    events = []
    server = PolicyServer(act_runtime, ServerConfig(host="127.0.0.1", port=0),
                          on_exchange=events.append).start_in_thread()
    client = PolicyClient("127.0.0.1", server.port)
    obs = make_obs(client.get_server_metadata(), seed=8)
    sent: list[np.ndarray] = []
    loop = AsyncPolicyLoop(client, lambda: obs, lambda a: sent.append(np.array(a, copy=True)),
                           AsyncLoopConfig(actions_per_chunk=20, chunk_size_threshold=0.5, aggregate_fn_name=merge))
    try:
        loop.start()
        wait_until(lambda: loop.stats.chunks >= 3 and len(sent) >= 15, 30, "3 chunks and 15 actions")
    finally:
        loop.stop()
        client.close()
        server.stop()
    chunk = act_runtime.infer(obs)["actions"][:20]  # same observation -> the chunk every request got
    lo, hi = chunk.min(axis=0) - 1e-4, chunk.max(axis=0) + 1e-4
    for a in sent:  # interpolated / merged rows of that chunk, nothing invented
        assert a.shape == (6,) and np.all(a >= lo) and np.all(a <= hi), (a, lo, hi)
    assert not np.allclose(sent[0], sent[-1])  # it moves along the chunk
    answered = [e for e in events if e.error is None]
    assert len(answered) >= 3 and answered[0].inference_delay is None
    assert all(e.inference_delay is not None and e.inference_delay > 0 for e in answered[1:])
    assert any(e.reply["rtc"]["prev_chunk_left_over_rows"] for e in answered[1:])
    assert loop.stats.last_inference_delay_s > 0 and loop.stats.disconnects == 0


def test_loop_stops_issuing_actions_when_the_connection_is_lost_then_resumes(act_runtime, caplog):
    port = free_port()
    server = PolicyServer(act_runtime, ServerConfig(host="127.0.0.1", port=port)).start_in_thread()
    client = PolicyClient(config=ClientConfig(url=f"ws://127.0.0.1:{port}"))
    obs = make_obs(client.get_server_metadata())
    sent: list[float] = []
    loop = AsyncPolicyLoop(client, lambda: obs, lambda a: sent.append(time.monotonic()),
                           AsyncLoopConfig(chunk_size_threshold=0.3, reconnect_timeout=0.5))
    restarted = None
    caplog.set_level(logging.INFO, logger="lerobot_serve_ros.client")
    try:
        loop.start()
        wait_until(lambda: len(sent) >= 5, 30, "first actions")
        server.stop()  # a full queue of actions is left: the loop must not keep executing it blind
        t_lost = time.monotonic()
        wait_until(lambda: not loop.connected, 2, "the loop to notice the loss")
        n = len(sent)
        time.sleep(0.5)
        assert len(sent) == n, "actions were issued while disconnected"
        assert sum(1 for t in sent if t > t_lost + 0.2) == 0
        assert loop.stats.disconnects == 1 and loop.stats.empty_ticks > 0
        assert "NOT issuing actions" in caplog.text
        restarted = PolicyServer(act_runtime, ServerConfig(host="127.0.0.1", port=port)).start_in_thread()
        wait_until(lambda: loop.connected and len(sent) > n + 5, 30, "resumed actions after the restart")
        assert "resuming" in caplog.text
    finally:
        loop.stop()
        client.close()
        server.stop()
        if restarted is not None:
            restarted.stop()

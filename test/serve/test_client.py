"""PolicyClient (openpi-compatible, and a backend like PolicyRuntime) and the robot-side AsyncPolicyLoop."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from lerobot_serve_ros.client import ClientConfig, ConnectionLost, PolicyClient
from lerobot_serve_ros.runtime import ObservationError
from lerobot_serve_ros.server import PolicyServer, ServerConfig
from serve_testlib import free_port, make_obs


@pytest.fixture
def local_server(act_runtime):
    server = PolicyServer(act_runtime, ServerConfig(host="127.0.0.1", port=0)).start_in_thread()
    yield server
    server.stop()


def test_client_is_a_backend_with_the_runtimes_answers(local_server, act_runtime):
    with PolicyClient("127.0.0.1", local_server.port) as client:
        assert client.metadata() == {**act_runtime.metadata(), "max_msg_size": local_server.config.max_msg_size}
        obs = make_obs(client.get_server_metadata(), seed=21)
        remote = client.infer(obs)
        np.testing.assert_allclose(remote["actions"], act_runtime.infer(obs)["actions"], atol=1e-5)
        assert remote["client_timing"]["roundtrip_ms"] >= remote["server_timing"]["infer_ms"]
        rtc = client.infer(obs, prompt="fold", inference_delay=0.04, prev_chunk_left_over=np.zeros((5, 6), np.float32))
        assert rtc["rtc"]["inference_delay"] == pytest.approx(0.04) and rtc["prompt"] == "fold"
        with pytest.raises(ObservationError, match="observation.images.front: shape"):
            client.infer({**obs, "observation.images.front": np.zeros((8, 8, 3), np.uint8)})
        assert client.infer(obs)["actions"].shape == (50, 6)  # same connection still fine


def test_client_backend_can_be_served_again(local_server):
    """A relay: PolicyServer over a PolicyClient (the backend protocol is the same on both sides)."""
    upstream = PolicyClient("127.0.0.1", local_server.port)
    relay = PolicyServer(upstream, ServerConfig(host="127.0.0.1", port=0)).start_in_thread()
    try:
        with PolicyClient("127.0.0.1", relay.port) as client:
            r = client.infer(make_obs(client.get_server_metadata()))
            assert r["actions"].shape == (50, 6)
            with pytest.raises(ObservationError, match="missing key"):
                client.infer({})
    finally:
        relay.stop()
        upstream.close()


def test_client_reconnects_with_backoff_after_server_restart(act_runtime):
    port = free_port()
    cfg = ServerConfig(host="127.0.0.1", port=port)
    server = PolicyServer(act_runtime, cfg).start_in_thread()
    client = PolicyClient(config=ClientConfig(url=f"ws://127.0.0.1:{port}", reconnect_timeout=20))
    obs = make_obs(client.get_server_metadata())
    assert client.infer(obs)["actions"].shape == (50, 6)
    server.stop()
    restarted: list[PolicyServer] = []
    timer = threading.Timer(0.8, lambda: restarted.append(PolicyServer(act_runtime, cfg).start_in_thread()))
    timer.start()
    try:
        t0 = time.monotonic()
        reply = client.infer(obs)  # connection is dead: reconnects (retrying until the server is back), re-sends
        assert reply["actions"].shape == (50, 6)
        assert time.monotonic() - t0 >= 0.5  # it really had to wait for the restart
    finally:
        timer.join()
        client.close()
        for s in restarted:
            s.stop()


def test_client_gives_up_with_connection_lost(act_runtime):
    port = free_port()
    with pytest.raises(ConnectionLost, match="cannot reach"):
        PolicyClient(config=ClientConfig(url=f"ws://127.0.0.1:{port}", reconnect_timeout=0.5))


def test_client_refused_is_not_retried(act_runtime):
    server = PolicyServer(act_runtime, ServerConfig(host="127.0.0.1", port=0, auth_token="k")).start_in_thread()
    try:
        t0 = time.monotonic()
        with pytest.raises(ConnectionLost, match="HTTP 401"):
            PolicyClient("127.0.0.1", server.port, api_key="nope")
        assert time.monotonic() - t0 < 5
        with PolicyClient("127.0.0.1", server.port, api_key="k") as ok:
            assert ok.metadata()["policy_type"] == "act"
    finally:
        server.stop()

"""PolicyServer hosted inside another process over an already-loaded backend (how the ROS bridge node uses it):
start/stop in a background thread, auth before the upgrade, the per-request hook, FIFO fairness between clients."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import InvalidStatus

from lerobot_serve_ros.server import ExchangeEvent, PolicyServer, ServerConfig
from serve_testlib import healthz, make_obs

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def authed(act_runtime):
    events: list[ExchangeEvent] = []
    server = PolicyServer(act_runtime, ServerConfig(host="127.0.0.1", port=0, auth_token=TOKEN, max_clients=6),
                          on_exchange=events.append).start_in_thread()
    server.events = events
    yield server
    server.stop()


def test_auth_accepted_with_the_right_key(authed):
    client = WebsocketClientPolicy(host="127.0.0.1", port=authed.port, api_key=TOKEN)
    meta = client.get_server_metadata()
    assert client.infer(make_obs(meta))["actions"].shape == (50, 6)
    client._ws.close()


@pytest.mark.parametrize("key", [None, "wrong", TOKEN + "x"])
def test_auth_refused_with_401_before_the_websocket_opens(authed, key):
    n_before = len(authed.events)
    with pytest.raises(InvalidStatus) as info:
        WebsocketClientPolicy(host="127.0.0.1", port=authed.port, api_key=key)
    assert info.value.response.status_code == 401
    assert b"Api-Key" in info.value.response.body
    assert len(authed.events) == n_before


def test_healthz_needs_no_key(authed):
    h = healthz(authed.port)
    assert h["status"] == "ok" and h["auth"] is True and h["refused"] >= 3


def test_hook_sees_every_request_and_reply(authed):
    client = WebsocketClientPolicy(host="127.0.0.1", port=authed.port, api_key=TOKEN)
    meta = client.get_server_metadata()
    start = len(authed.events)
    obs = make_obs(meta, seed=4)
    reply = client.infer({**obs, "prompt": "wipe"})
    with pytest.raises(RuntimeError, match="missing key"):
        client.infer({"observation.state": obs["observation.state"]})
    client._ws.close()
    ok, bad = authed.events[start:start + 2]
    assert ok.error is None and ok.prompt == "wipe" and ok.peer.startswith("127.0.0.1:")
    np.testing.assert_array_equal(ok.obs["observation.images.front"], obs["observation.images.front"])
    np.testing.assert_array_equal(ok.reply["actions"], reply["actions"])
    assert ok.reply["server_timing"]["request_id"] == ok.request_id
    assert bad.request_id == ok.request_id + 1 and bad.reply is None and "missing key" in bad.error


def test_clients_are_served_fifo_fairly(authed):
    """3 clients firing back-to-back: with one request in flight each, FIFO means no client gets ahead of another
    by more than one reply (a greedy or LIFO server would let one connection monopolise the worker)."""
    n_clients, n_each = 3, 6
    clients = [WebsocketClientPolicy(host="127.0.0.1", port=authed.port, api_key=TOKEN) for _ in range(n_clients)]
    peers = [c._ws.local_address for c in clients]
    obs = make_obs(clients[0].get_server_metadata())
    start = len(authed.events)
    barrier = threading.Barrier(n_clients)
    errors = []

    def run(c):
        barrier.wait()
        try:
            for _ in range(n_each):
                c.infer(obs)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for c in clients:
        c._ws.close()
    assert not errors
    served = [e.peer for e in authed.events[start:]]
    keys = [f"{h}:{p}" for h, p in peers]
    assert sorted(set(served)) == sorted(keys) and len(served) == n_clients * n_each
    counts = dict.fromkeys(keys, 0)
    for peer in served[: n_clients * (n_each - 1)]:  # while all are still busy
        counts[peer] += 1
        assert max(counts.values()) - min(counts.values()) <= 2, (served, counts)


def test_stop_closes_the_port(act_runtime):
    server = PolicyServer(act_runtime, ServerConfig(host="127.0.0.1", port=0)).start_in_thread()
    port = server.port
    client = WebsocketClientPolicy(host="127.0.0.1", port=port)
    assert client.infer(make_obs(client.get_server_metadata()))["actions"].shape == (50, 6)
    thread = server._thread
    server.stop()
    assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(Exception):
        client.infer(make_obs(client.get_server_metadata()))


class _FailsFirst:
    """A backend whose first inference raises (a CUDA OOM, say); it has no executor, so the server uses its own."""

    def __init__(self) -> None:
        self.calls = 0

    def metadata(self) -> dict:
        return {"policy_type": "fake"}

    def infer(self, obs: dict, prompt=None, inference_delay=None, prev_chunk_left_over=None) -> dict:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("out of memory (simulated)")
        return {"actions": np.zeros((2, 3), np.float32)}


def test_backend_failure_is_reported_and_the_connection_stays_usable():
    server = PolicyServer(_FailsFirst(), ServerConfig(host="127.0.0.1", port=0)).start_in_thread()
    try:
        client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
        obs = {"observation.state": np.zeros(3, np.float32)}
        with pytest.raises(RuntimeError, match="inference failed: RuntimeError: out of memory"):
            client.infer(obs)
        assert client.infer(obs)["actions"].shape == (2, 3)
        client._ws.close()
    finally:
        server.stop()

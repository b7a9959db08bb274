"""`lerobot-serve` in its own process on loopback, driven by the official openpi-client and by raw websockets.

One server process for the whole module (loading a model costs seconds): it records to a bag, allows 3 clients and
1 MiB frames. The last test stops it and reads the bag back.
"""

from __future__ import annotations

import threading
import time

import msgpack
import msgpack_numpy
import numpy as np
import pytest
import websockets.sync.client
from openpi_client import msgpack_numpy as openpi_msgpack
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import ConnectionClosed, InvalidStatus

from serve_testlib import ServeProcess, healthz, make_obs

MAX_CLIENTS = 3
MAX_MSG = 1024 * 1024


@pytest.fixture(scope="module")
def server(tiny_act_checkpoint, tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    srv = ServeProcess(tiny_act_checkpoint, d, f"--record={d / 'bag'}", f"--max-clients={MAX_CLIENTS}",
                       f"--max_msg_size={MAX_MSG}")
    srv.bag = d / "bag"
    srv.start()
    yield srv
    rc = srv.stop()
    if rc not in (0, None):
        print(srv.proc.log_tail(60))


def raw_connect(port: int):
    ws = websockets.sync.client.connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None,
                                        open_timeout=10)
    meta = openpi_msgpack.unpackb(ws.recv(timeout=10))
    return ws, meta


def test_openpi_client_gets_metadata_and_chunks_repeatedly(server):
    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    meta = client.get_server_metadata()
    assert meta["policy_type"] == "act" and meta["chunk_size"] == 50 and meta["action_dim"] == 6
    assert meta["image_shapes"]["observation.images.wrist"] == [96, 96, 3]
    prev = None
    for i in range(4):
        reply = client.infer(make_obs(meta, seed=i))
        actions = reply["actions"]
        assert isinstance(actions, np.ndarray) and actions.shape == (50, 6) and actions.dtype == np.float32
        assert np.all(np.isfinite(actions))
        st = reply["server_timing"]
        assert st["infer_ms"] > 0 and reply["timing"]["total_ms"] > 0
        assert (st["prev_total_ms"] is None) == (i == 0)
        if prev is not None:
            assert not np.allclose(prev, actions)
        prev = actions
    client._ws.close()


def test_msgpack_numpy_encoding_and_structured_request(server):
    ws, meta = raw_connect(server.port)
    try:
        obs = make_obs(meta, seed=7)
        ws.send(msgpack.packb(obs, default=msgpack_numpy.encode))
        flat = openpi_msgpack.unpackb(ws.recv(timeout=30))
        req = {"obs": obs, "inference_delay": 0.05, "prev_chunk_left_over": np.zeros((10, 6), np.float32),
               "prompt": "pick"}
        ws.send(msgpack.packb(req, default=msgpack_numpy.encode))
        structured = openpi_msgpack.unpackb(ws.recv(timeout=30))
    finally:
        ws.close()
    assert flat["actions"].shape == (50, 6) and flat["actions"].dtype == np.float32
    np.testing.assert_allclose(structured["actions"], flat["actions"], atol=1e-5)  # same obs, same chunk
    assert structured["rtc"]["inference_delay"] == pytest.approx(0.05)
    assert structured["rtc"]["prev_chunk_left_over_rows"] == 10 and structured["rtc"]["applied"] is False


def test_healthz_reports_status_and_counts(server):
    before = healthz(server.port)
    assert before["status"] == "ok" and before["policy_type"] == "act" and before["max_clients"] == MAX_CLIENTS
    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    client.infer(make_obs(client.get_server_metadata()))
    after = healthz(server.port)
    assert after["requests"] == before["requests"] + 1
    client._ws.close()


class Hammer(threading.Thread):
    """A well-behaved openpi client inferring in a loop; records every reply or error."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.client = WebsocketClientPolicy(host="127.0.0.1", port=port)
        self.obs = make_obs(self.client.get_server_metadata(), seed=11)
        self.ok = 0
        self.errors: list[str] = []
        self.stop_evt = threading.Event()

    def run(self):
        while not self.stop_evt.is_set():
            try:
                r = self.client.infer(self.obs)
                assert r["actions"].shape == (50, 6)
                self.ok += 1
            except Exception as exc:
                self.errors.append(repr(exc))
                return

    def finish(self) -> None:
        self.stop_evt.set()
        self.join(60)
        self.client._ws.close()


def expect_text_error(ws, payload, *needles: str) -> str:
    ws.send(payload)
    reply = ws.recv(timeout=30)
    assert isinstance(reply, str), f"expected a text error frame, got {type(reply).__name__}"
    for n in needles:
        assert n in reply, f"{n!r} not in {reply!r}"
    return reply


def test_bad_input_gets_clear_errors_while_another_client_is_served(server):
    good = Hammer(server.port)
    good.start()
    ws, meta = raw_connect(server.port)
    try:
        rng = np.random.default_rng(0)
        ok_before = good.ok
        expect_text_error(ws, rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), "bad request", "msgpack")
        expect_text_error(ws, "hello", "bad request", "binary")
        expect_text_error(ws, openpi_msgpack.packb([1, 2, 3]), "must be a msgpack map")
        expect_text_error(ws, openpi_msgpack.packb({"obs": "not a map"}), "'obs' must be a map")
        obs = make_obs(meta)
        obs["observation.images.front"] = np.zeros((48, 96, 3), np.uint8)
        expect_text_error(ws, openpi_msgpack.packb(obs), "observation.images.front", "[48, 96, 3]",
                          "expected [96, 96, 3]")
        obs = make_obs(meta)
        obs["observation.state"] = obs["observation.state"].astype(np.int64)[:4]
        expect_text_error(ws, openpi_msgpack.packb(obs), "observation.state", "shape [4]")
        obs = make_obs(meta)
        del obs["observation.images.wrist"]
        expect_text_error(ws, openpi_msgpack.packb(obs), "missing key", "observation.images.wrist")
        obs = make_obs(meta)
        obs["observation.state"] = "zeros"
        expect_text_error(ws, openpi_msgpack.packb(obs), "observation.state", "numpy array")
        # the connection is still usable for a good request afterwards
        ws.send(openpi_msgpack.packb(make_obs(meta)))
        reply = ws.recv(timeout=30)
        assert isinstance(reply, bytes) and openpi_msgpack.unpackb(reply)["actions"].shape == (50, 6)
        deadline = time.monotonic() + 30
        while good.ok < ok_before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ws.close()
        good.finish()
    assert not good.errors
    assert good.ok >= ok_before + 3


def test_openpi_client_sees_bad_request_as_runtime_error(server):
    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    with pytest.raises(RuntimeError, match="missing key"):
        client.infer({"observation.state": np.zeros(6, np.float32)})
    assert client.infer(make_obs(client.get_server_metadata()))["actions"].shape == (50, 6)
    client._ws.close()


def test_oversized_frame_closes_that_connection_with_a_reason(server):
    good = Hammer(server.port)
    good.start()
    ws, meta = raw_connect(server.port)
    obs = make_obs(meta)
    obs["observation.images.front"] = np.zeros((1024, 1024, 3), np.uint8)  # 3 MiB > 1 MiB limit
    try:
        ws.send(openpi_msgpack.packb(obs))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=30)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        assert "exceeds limit" in info.value.rcvd.reason
        ok = good.ok
        deadline = time.monotonic() + 30
        while good.ok < ok + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        good.finish()
    assert not good.errors and good.ok >= ok + 2


def test_max_clients_refuses_clearly_then_admits(server):
    conns = [raw_connect(server.port)[0] for _ in range(MAX_CLIENTS)]
    try:
        with pytest.raises(InvalidStatus) as info:
            WebsocketClientPolicy(host="127.0.0.1", port=server.port)
        assert info.value.response.status_code == 503
        assert b"max_clients=3" in info.value.response.body
        conns.pop().close()
        deadline = time.monotonic() + 10
        while healthz(server.port)["clients"] >= MAX_CLIENTS and time.monotonic() < deadline:
            time.sleep(0.05)
        client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
        assert client.infer(make_obs(client.get_server_metadata()))["actions"].shape == (50, 6)
        client._ws.close()
    finally:
        for c in conns:
            c.close()


def test_client_dropping_mid_request_does_not_disturb_others(server):
    ws, meta = raw_connect(server.port)
    ws.send(openpi_msgpack.packb(make_obs(meta)))
    ws.close()  # gone before the reply
    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    for _ in range(2):
        assert client.infer(make_obs(meta))["actions"].shape == (50, 6)
    client._ws.close()
    assert healthz(server.port)["status"] == "ok"


def test_record_file_reads_back_with_rosbags(server):
    """Last in the module: stops the server so the bag is finalised, then reads every request back."""
    from rosbags.rosbag2 import Reader

    from lerobot_serve_ros.recorder import make_typestore

    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    meta = client.get_server_metadata()
    last_obs = make_obs(meta, seed=99)
    last = client.infer(last_obs)["actions"]
    client._ws.close()
    stats = healthz(server.port)
    assert server.stop() == 0
    ts = make_typestore()
    summaries, chunks, images = [], [], {}
    assert "storage_identifier: mcap" in (server.bag / "metadata.yaml").read_text()
    assert list(server.bag.glob("*.mcap"))
    with Reader(server.bag) as reader:
        for conn, _t, raw in reader.messages():
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            if conn.topic == "/bridge/observation_summary":
                summaries.append(msg)
            elif conn.topic == "/bridge/action_chunk":
                chunks.append(msg)
            else:
                images.setdefault(conn.topic, []).append(msg)
    # every request (including the dropped-mid-request one, which was still answered) is recorded
    assert len(summaries) >= stats["requests"]
    assert sum(1 for s in summaries if s.error) >= stats["errors"] and stats["errors"] >= 8
    assert any("observation.images.front" in s.error and "[48, 96, 3]" in s.error for s in summaries)
    ok = [s for s in summaries if not s.error]
    assert len(chunks) == len(ok)
    assert sorted(images) == ["/bridge/images/front", "/bridge/images/wrist"]
    final = chunks[-1]
    assert (final.rows, final.cols, final.policy_name) == (50, 6, "act")
    assert list(final.action_names)[0] == "shoulder_pan.pos" and final.dt == pytest.approx(1 / 30)
    np.testing.assert_allclose(np.asarray(final.data).reshape(50, 6), last, atol=1e-6)
    final_summary = next(s for s in summaries if s.request_id == final.chunk_id)
    np.testing.assert_allclose(final_summary.state, last_obs["observation.state"])
    front = images["/bridge/images/front"][-1]
    assert (front.height, front.width, front.encoding) == (96, 96, "rgb8")
    np.testing.assert_array_equal(np.asarray(front.data).reshape(96, 96, 3), last_obs["observation.images.front"])

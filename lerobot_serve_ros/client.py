"""Clients of lerobot-serve (or any openpi websocket policy server).

PolicyClient: a synchronous client with openpi's `WebsocketClientPolicy` interface (`infer(obs)`,
`get_server_metadata()`, `reset()`, same `Authorization: Api-Key` header) that is also a *backend* in the project's
sense (`infer(obs, prompt, inference_delay, prev_chunk_left_over)`, `metadata()`), so the ROS policy node and the
bridge can use a remote GPU exactly like a local PolicyRuntime. It reconnects with exponential back-off.

AsyncPolicyLoop: the robot side of asynchronous inference (LeRobot's robot_client idea, over websockets). A control
thread executes actions at the policy's fps from an ActionQueue (lerobot_control_ros.action_queue, the controller's
own queue: latency compensation, interpolation, chunk merging with chunk_merge's functions); an inference thread asks
for the next chunk when the queue runs low (`chunk_size_threshold`), sending the measured `inference_delay` and the
not-yet-executed actions as `prev_chunk_left_over`. When the connection is lost it stops issuing actions at once,
says so, and resumes only after a reconnect and a fresh chunk.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import websockets.sync.client
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.protocol import State

from lerobot_serve_ros.codec import build_request, packb, unpackb
from lerobot_serve_ros.runtime import ObservationError

log = logging.getLogger(__name__)

BAD_REQUEST_PREFIX = "bad request: "


class ServerError(RuntimeError):
    """The server could not answer (it replied with a text frame)."""


class ConnectionLost(ConnectionError):
    """No connection to the server (and reconnecting did not succeed in time)."""


@dataclass
class ClientConfig:
    url: str = "ws://127.0.0.1:8000"  # ws://host:port (wss:// for TLS)
    api_key: str | None = None  # sent as "Authorization: Api-Key <key>"
    open_timeout: float = 10.0  # seconds for one connection attempt
    request_timeout: float = 30.0  # seconds to wait for one reply
    reconnect_timeout: float = 30.0  # total seconds of back-off retries before ConnectionLost
    backoff_initial: float = 0.1
    backoff_max: float = 2.0


def _url(host: str, port: int | None) -> str:
    url = host if host.startswith(("ws://", "wss://")) else f"ws://{host}"
    return f"{url}:{port}" if port is not None else url


class PolicyClient:
    """Synchronous websocket policy client; one request at a time (thread-safe through a lock)."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, api_key: str | None = None, *,
                 config: ClientConfig | None = None, connect: bool = True):
        self.config = config or ClientConfig(url=_url(host, port), api_key=api_key)
        self._ws: websockets.sync.client.ClientConnection | None = None
        self._metadata: dict | None = None
        self._lock = threading.Lock()
        if connect:
            self.connect(self.config.reconnect_timeout)

    # ---- connection ----------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while the websocket is open (the library's reader thread notices a server close at once)."""
        ws = self._ws
        return ws is not None and ws.state is State.OPEN

    def _connect_once(self) -> None:
        headers = {"Authorization": f"Api-Key {self.config.api_key}"} if self.config.api_key else None
        ws = websockets.sync.client.connect(self.config.url, compression=None, max_size=None,
                                            additional_headers=headers, open_timeout=self.config.open_timeout)
        try:
            self._metadata = unpackb(ws.recv(timeout=self.config.open_timeout))
        except Exception:
            ws.close()
            raise
        self._ws = ws

    def connect(self, timeout: float | None = None) -> dict:
        """Connect (with back-off until `timeout` s); returns the server metadata. A refusal by the server
        (401 wrong key, 503 full) is raised at once: retrying would not help."""
        self._drop()
        deadline = time.monotonic() + (self.config.reconnect_timeout if timeout is None else timeout)
        delay = self.config.backoff_initial
        attempt = 0
        while True:
            attempt += 1
            try:
                self._connect_once()
                if attempt > 1:
                    log.info("connected to %s after %d attempts", self.config.url, attempt)
                return self._metadata
            except InvalidStatus as exc:
                status = exc.response.status_code
                body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
                raise ConnectionLost(f"{self.config.url} refused the connection: HTTP {status} {body}") from None
            except (OSError, WebSocketException, TimeoutError) as exc:
                if time.monotonic() + delay > deadline:
                    raise ConnectionLost(f"cannot reach {self.config.url} after {attempt} attempt(s): "
                                         f"{type(exc).__name__}: {exc}") from None
                if attempt == 1:
                    log.warning("cannot reach %s (%s); retrying with back-off", self.config.url, exc)
                time.sleep(delay * (0.8 + 0.4 * random.random()))
                delay = min(delay * 2, self.config.backoff_max)

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- openpi interface + backend protocol -------------------------------------------------------------
    def get_server_metadata(self) -> dict:
        if self._metadata is None:
            self.connect()
        return dict(self._metadata)

    def metadata(self) -> dict:
        return self.get_server_metadata()

    def reset(self) -> None:
        """openpi interface; the server is stateless per request, so nothing to do."""

    def _roundtrip(self, payload: bytes) -> bytes | str:
        if self._ws is None:
            self.connect()
        self._ws.send(payload)
        return self._ws.recv(timeout=self.config.request_timeout)

    def infer(self, obs: dict[str, Any], prompt: str | None = None, inference_delay: float | None = None,
              prev_chunk_left_over: np.ndarray | None = None) -> dict:
        """One chunk. Plain `infer(obs)` sends openpi's flat observation dict (works against openpi servers too);
        with RTC inputs it sends the structured request. A dropped connection is re-established (back-off) and
        the request re-sent once; ObservationError for a request the server called bad, ServerError otherwise."""
        if inference_delay is None and prev_chunk_left_over is None:
            req = dict(obs) if prompt is None else {**obs, "prompt": prompt}
        else:
            req = build_request(obs, prompt, inference_delay, prev_chunk_left_over)
        payload = packb(req)
        with self._lock:
            t0 = time.perf_counter()
            try:
                reply = self._roundtrip(payload)
            except (ConnectionClosed, OSError) as exc:
                if isinstance(exc, ConnectionClosed) and exc.rcvd is not None and exc.rcvd.code == 1009:
                    self._drop()
                    raise ObservationError(f"server closed the connection: {exc.rcvd.reason}") from None
                log.warning("connection to %s lost (%s); reconnecting", self.config.url, exc)
                self.connect()
                reply = self._roundtrip(payload)
            except TimeoutError:
                self._drop()  # a late reply would desynchronise request/response pairs
                raise ConnectionLost(f"no reply from {self.config.url} within {self.config.request_timeout} s")
            rtt_ms = (time.perf_counter() - t0) * 1e3
        if isinstance(reply, str):
            if reply.startswith(BAD_REQUEST_PREFIX):
                raise ObservationError(reply.removeprefix(BAD_REQUEST_PREFIX))
            raise ServerError(reply)
        out = unpackb(reply)
        if isinstance(out, dict):
            out.setdefault("client_timing", {})["roundtrip_ms"] = rtt_ms
        return out


# ---------------------------------------------------------------------------------------------------------------
@dataclass
class AsyncLoopConfig:
    fps: float | None = None  # control rate; default the server's metadata fps
    actions_per_chunk: int | None = None  # rows of each chunk to keep; default all
    chunk_size_threshold: float = 0.5  # ask for the next chunk when queued time < threshold * chunk duration
    aggregate_fn_name: str = "weighted_average"  # weighted_average | latest_only | average | conservative
    prompt: str | None = None
    send_leftover: bool = True  # send not-yet-executed actions as prev_chunk_left_over (RTC policies use it)
    reconnect_timeout: float = 2.0  # per reconnect attempt round while disconnected


@dataclass
class LoopStats:
    chunks: int = 0
    actions_sent: int = 0
    empty_ticks: int = 0  # control ticks with nothing to execute (starved or disconnected)
    disconnects: int = 0
    last_inference_delay_s: float | None = None
    last_error: str | None = None


class AsyncPolicyLoop:
    """Robot-side asynchronous inference: `get_observation()` -> server -> ActionQueue -> `send_action(a)`.

    The loop never invents actions: when the queue has nothing for `now` (starved, or the connection is gone and
    the queue was cleared) `send_action` is simply not called, and `stats.empty_ticks` counts it; the robot's own
    controller holds position.
    """

    def __init__(self, client: PolicyClient, get_observation: Callable[[], dict],
                 send_action: Callable[[np.ndarray], None], config: AsyncLoopConfig | None = None,
                 clock: Callable[[], float] = time.monotonic):
        from lerobot_control_ros.action_queue import ActionQueue

        self.client = client
        self.get_observation = get_observation
        self.send_action = send_action
        self.cfg = config or AsyncLoopConfig()
        self.clock = clock
        meta = client.get_server_metadata()
        fps = self.cfg.fps or meta.get("fps")
        if not fps:
            raise ValueError("the server does not report fps; set AsyncLoopConfig.fps")
        self.dt = 1.0 / float(fps)
        self.chunk_rows = int(self.cfg.actions_per_chunk or meta.get("chunk_size") or 1)
        self.queue = ActionQueue(merge=self.cfg.aggregate_fn_name)
        self.stats = LoopStats()
        self.connected = True
        self._latency_s: float | None = None
        self._chunk_id = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _needs_chunk(self, now: float) -> bool:
        return self.queue.time_left(now) <= self.cfg.chunk_size_threshold * self.chunk_rows * self.dt

    def request_chunk(self) -> None:
        """One observation -> one chunk into the queue (what the inference thread does each time)."""
        obs = self.get_observation()
        t_obs = self.clock()
        leftover = None
        if self.cfg.send_leftover:
            rem = self.queue.remaining(t_obs)
            leftover = rem if len(rem) else None
        reply = self.client.infer(obs, prompt=self.cfg.prompt, inference_delay=self._latency_s,
                                  prev_chunk_left_over=leftover)
        now = self.clock()
        self._latency_s = now - t_obs  # measured: observation to chunk in hand
        self.stats.last_inference_delay_s = self._latency_s
        actions = np.asarray(reply["actions"], dtype=np.float32)[: self.chunk_rows]
        self._chunk_id += 1
        result = self.queue.push_chunk(actions, t0=t_obs, dt=self.dt, now=now, chunk_id=self._chunk_id)
        if not result.ok:
            log.warning("chunk %d refused by the action queue: %s", self._chunk_id, result.reason)
            return
        self.stats.chunks += 1

    def _on_connection_lost(self, exc: Exception) -> None:
        self.queue.clear()
        if self.connected:
            self.stats.disconnects += 1
            log.error("policy server connection lost (%s): NOT issuing actions until it is back", exc)
        self.connected = False
        self.stats.last_error = str(exc)

    def _inference_thread(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.client.connected:
                    self.client.connect(self.cfg.reconnect_timeout)
                if not self.connected or self._needs_chunk(self.clock()):
                    self.request_chunk()
                    if not self.connected:
                        self.connected = True
                        log.info("policy server back; resuming with a fresh chunk")
                else:
                    self._stop.wait(self.dt / 2)
            except (ConnectionLost, ConnectionError, OSError, WebSocketException) as exc:
                self._on_connection_lost(exc)
                self._stop.wait(0.05)
            except ObservationError as exc:
                self.stats.last_error = f"observation refused: {exc}"
                log.error("server refused the observation: %s", exc)
                self._stop.wait(self.dt)

    def _control_thread(self) -> None:
        next_t = self.clock()
        while not self._stop.is_set():
            if self.connected and not self.client.connected:  # noticed between requests, not at the next one
                self._on_connection_lost(ConnectionLost("connection to the policy server closed"))
            action = self.queue.sample(self.clock()) if self.connected else None
            if action is None:
                self.stats.empty_ticks += 1
            else:
                self.send_action(action)
                self.stats.actions_sent += 1
            next_t += self.dt
            delay = next_t - self.clock()
            if delay < -self.dt:  # fell behind by more than a period: skip, don't burst
                next_t = self.clock()
            elif delay > 0:
                self._stop.wait(delay)

    def start(self) -> "AsyncPolicyLoop":
        self._stop.clear()
        self._threads = [threading.Thread(target=self._inference_thread, name="policy-inference", daemon=True),
                         threading.Thread(target=self._control_thread, name="policy-control", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def run(self, duration: float) -> LoopStats:
        """Blocking: run for `duration` seconds (or until Ctrl-C), then stop."""
        self.start()
        try:
            self._stop.wait(duration)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        return self.stats

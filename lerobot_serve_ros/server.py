"""PolicyServer: the openpi websocket protocol over any backend (a PolicyRuntime, or a PolicyClient to chain servers).

Protocol (byte-compatible with openpi's WebsocketPolicyServer): on connect the server sends the packed metadata;
then every binary frame is a request and gets one binary reply (the backend's infer dict + `server_timing`), or a
TEXT frame saying what was wrong, which openpi's client raises as RuntimeError. Bad requests keep the connection
open; only frames over `max_msg_size` close it (code 1009, with the reason).

Before the websocket upgrade: `GET /healthz` answers JSON, a missing/wrong `Authorization: Api-Key <token>` gets 401,
and a full server answers 503 naming the limit, so a client sees a clear refusal instead of a hang.

Inference runs off the event loop on ONE worker thread (a FIFO executor): the backend's own `executor` when it has one
(PolicyRuntime: its inference thread, so websocket requests queue FIFO together with the ROS policy node's in the
bridge), else a thread of the server's own. Each connection has at most one request in flight (the protocol is
request/reply), so clients are served in arrival order and none can starve another.
Batching across clients is not done: a tiny ACT on CPU scales linearly with batch size (see benchmarks/bench_serve.py).

`on_exchange` (optional) is called on the event loop after each request is answered, with an ExchangeEvent; it must be
quick (enqueue and return). The recorder and the bridge node's ROS publishers hang off it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import http
import itertools
import json
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from lerobot_serve_ros.codec import CodecError, packb, parse_request, unpackb
from lerobot_serve_ros.runtime import ObservationError

log = logging.getLogger(__name__)

AUTH_SCHEME = "Api-Key"
HEALTH_PATH = "/healthz"


class Backend(Protocol):
    def infer(self, obs: dict, prompt: str | None = None, inference_delay: float | None = None,
              prev_chunk_left_over: Any = None) -> dict: ...

    def metadata(self) -> dict: ...


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8000  # 0 picks a free port (read PolicyServer.port once started)
    max_clients: int = 8
    max_msg_size: int = 16 * 1024 * 1024  # bytes per incoming frame; larger frames close the connection (1009)
    auth_token: str | None = None  # clients must send "Authorization: Api-Key <token>" when set
    ping_interval: float | None = 20.0  # websocket keep-alive; None disables


@dataclass
class ExchangeEvent:
    """One request and what came of it (for recording and for the bridge's ROS topics)."""

    request_id: int
    peer: str
    t_received: float  # wall-clock seconds (time.time()) when the frame arrived
    obs: dict[str, Any] | None = None  # decoded observation (None when the frame could not be decoded)
    prompt: str | None = None
    inference_delay: float | None = None
    reply: dict | None = None
    error: str | None = None


@dataclass
class ServerStats:
    requests: int = 0
    errors: int = 0
    refused: int = 0
    started: float = field(default_factory=time.time)


class PolicyServer:
    """Serve `backend` over websockets. Use `run()` (blocking, Ctrl-C stops), `serve_forever()` (inside an
    asyncio program) or `start_in_thread()`/`stop()` (inside another process, e.g. the ROS bridge node)."""

    def __init__(self, backend: Backend, config: ServerConfig | None = None,
                 on_exchange: Callable[[ExchangeEvent], None] | None = None):
        self.backend = backend
        self.config = config or ServerConfig()
        self.on_exchange = on_exchange
        self.stats = ServerStats()
        self.port: int | None = None
        self._metadata = dict(backend.metadata())
        self._metadata.setdefault("max_msg_size", self.config.max_msg_size)
        self._packed_metadata = packb(self._metadata)
        self._ids = itertools.count(1)
        self._clients: set[ServerConnection] = set()
        backend_executor = getattr(backend, "executor", None)
        self._own_worker = backend_executor is None
        self._worker = backend_executor or concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                                                thread_name_prefix="inference")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # ---- HTTP stage (before the upgrade) -------------------------------------------------------------------
    def _health(self) -> dict:
        return {"status": "ok", "policy_type": self._metadata.get("policy_type"),
                "policy_path": self._metadata.get("policy_path"), "device": self._metadata.get("device"),
                "clients": len(self._clients), "max_clients": self.config.max_clients,
                "requests": self.stats.requests, "errors": self.stats.errors, "refused": self.stats.refused,
                "uptime_s": round(time.time() - self.stats.started, 3), "auth": self.config.auth_token is not None}

    @staticmethod
    def _response(status: http.HTTPStatus, body: str, content_type: str = "text/plain; charset=utf-8") -> Response:
        data = body.encode()
        headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data))),
                           ("Connection", "close")])
        return Response(status.value, status.phrase, headers, data)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?")[0] == HEALTH_PATH:
            return self._response(http.HTTPStatus.OK, json.dumps(self._health()), "application/json")
        token = self.config.auth_token
        if token:
            got = request.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), f"{AUTH_SCHEME} {token}".encode()):
                self.stats.refused += 1
                log.warning("refused %s: %s", _peer(connection), "no Authorization header" if not got else
                            "wrong API key")
                return self._response(http.HTTPStatus.UNAUTHORIZED,
                                      f"401 Unauthorized: send 'Authorization: {AUTH_SCHEME} <token>'\n")
        if len(self._clients) >= self.config.max_clients:
            self.stats.refused += 1
            log.warning("refused %s: server full (%d/%d clients)", _peer(connection), len(self._clients),
                        self.config.max_clients)
            return self._response(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                  f"503 server full: max_clients={self.config.max_clients} already connected\n")
        return None

    # ---- websocket stage -----------------------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        peer = _peer(ws)
        if len(self._clients) >= self.config.max_clients:  # raced past the HTTP check
            await ws.close(1013, f"server full: max_clients={self.config.max_clients}")
            return
        self._clients.add(ws)
        log.info("client %s connected (%d/%d)", peer, len(self._clients), self.config.max_clients)
        loop = asyncio.get_running_loop()
        prev_total_ms: float | None = None
        try:
            await ws.send(self._packed_metadata)
            async for frame in ws:
                t0 = time.perf_counter()
                event = ExchangeEvent(request_id=next(self._ids), peer=peer, t_received=time.time())
                reply_frame: bytes | str
                try:
                    if isinstance(frame, str):
                        raise CodecError("expected a binary msgpack frame, got a text frame")
                    req = parse_request(unpackb(frame))
                    event.obs, event.prompt, event.inference_delay = req.obs, req.prompt, req.inference_delay
                    t_decoded = time.perf_counter()
                    reply = await loop.run_in_executor(self._worker, self._infer, req, t_decoded)
                    t_back = time.perf_counter()
                    reply["server_timing"] = {
                        "infer_ms": reply.pop("_infer_ms"),
                        "queue_ms": reply.pop("_queue_ms"),
                        "decode_ms": (t_decoded - t0) * 1e3,
                        "return_ms": (t_back - reply.pop("_t_done")) * 1e3,  # inference thread -> event loop
                        "prev_total_ms": prev_total_ms,
                        "request_id": event.request_id,
                    }
                    reply_frame = packb(reply)
                    event.reply = reply
                except (CodecError, ObservationError) as exc:
                    event.error = f"bad request: {exc}"
                    reply_frame = event.error
                except Exception as exc:  # the backend failed: tell the client, keep serving
                    log.error("request %d from %s failed:\n%s", event.request_id, peer, traceback.format_exc())
                    event.error = f"inference failed: {type(exc).__name__}: {exc}"
                    reply_frame = event.error
                self.stats.requests += 1
                if event.error:
                    self.stats.errors += 1
                    log.warning("request %d from %s: %s", event.request_id, peer, event.error)
                try:
                    await ws.send(reply_frame)
                finally:  # a client gone before its reply still had its request answered: record it
                    prev_total_ms = (time.perf_counter() - t0) * 1e3
                    self._notify(event)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code not in (1000, 1001):
                log.warning("client %s closed: %s", peer, exc)
            elif exc.sent is not None and exc.sent.code == 1009:
                log.warning("client %s: %s", peer, exc.sent.reason)
        finally:
            self._clients.discard(ws)
            log.info("client %s disconnected (%d/%d)", peer, len(self._clients), self.config.max_clients)

    def _notify(self, event: ExchangeEvent) -> None:
        if self.on_exchange is not None:
            try:
                self.on_exchange(event)
            except Exception:
                log.exception("on_exchange hook failed for request %d", event.request_id)

    def _infer(self, req, t_decoded: float) -> dict:
        t = time.perf_counter()
        reply = dict(self.backend.infer(req.obs, prompt=req.prompt, inference_delay=req.inference_delay,
                                        prev_chunk_left_over=req.prev_chunk_left_over))
        reply["_infer_ms"] = (time.perf_counter() - t) * 1e3
        reply["_queue_ms"] = (t - t_decoded) * 1e3
        reply["_t_done"] = time.perf_counter()
        return reply

    # ---- lifecycle -----------------------------------------------------------------------------------------
    async def serve_forever(self) -> None:
        """Serve until `stop()` is called (or the task is cancelled)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        cfg = self.config
        try:
            async with serve(self._handler, cfg.host, cfg.port, process_request=self._process_request,
                             max_size=cfg.max_msg_size, compression=None, ping_interval=cfg.ping_interval,
                             max_queue=4) as server:
                self.port = server.sockets[0].getsockname()[1]
                log.info("serving %s on ws://%s:%d (healthz: http://%s:%d%s, max_clients %d, max_msg_size %d B, "
                         "auth %s)", self._metadata.get("policy_type"), cfg.host, self.port, cfg.host, self.port,
                         HEALTH_PATH, cfg.max_clients, cfg.max_msg_size, "on" if cfg.auth_token else "off")
                self._ready.set()
                await self._stop.wait()
                for ws in list(self._clients):
                    await ws.close(1001, "server shutting down")
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            raise

    def run(self) -> None:
        """Blocking; Ctrl-C (SIGINT) or SIGTERM stops cleanly."""
        import signal

        async def main():
            task = asyncio.create_task(self.serve_forever())
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._request_stop)
            await task

        try:
            asyncio.run(main())
        finally:
            self._shutdown_worker()
            log.info("server stopped after %d requests (%d errors)", self.stats.requests, self.stats.errors)

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def start_in_thread(self, timeout: float = 10.0) -> "PolicyServer":
        """Serve from a background thread; returns once listening (self.port is then set)."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve_forever()), name="policy-server",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"policy server did not start listening within {timeout} s")
        if self._startup_error is not None:
            raise RuntimeError(f"policy server failed to start: {self._startup_error}") from self._startup_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close all connections and the listening socket; join the thread if there is one."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._shutdown_worker()

    def _shutdown_worker(self) -> None:
        if self._own_worker:  # a backend's executor belongs to the backend (it outlives this server)
            self._worker.shutdown(wait=True)


def _peer(conn: ServerConnection) -> str:
    try:
        host, port = conn.remote_address[:2]
        return f"{host}:{port}"
    except Exception:
        return "unknown"

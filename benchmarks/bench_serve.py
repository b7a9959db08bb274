"""lerobot-serve protocol overhead: client round trip vs bare PolicyRuntime.infer, measured in the same run.

Setup: a tiny ACT checkpoint with 2 cameras at 224x224x3 uint8 + 6-d state -> (50, 6) chunk; `lerobot-serve` in its
own process on 127.0.0.1; the official openpi-client (`WebsocketClientPolicy`) as client; 1 and 4 concurrent
clients. Rows:

  bare infer        PolicyRuntime.infer in this process (same checkpoint), server idle
  server infer      the server's own backend.infer time for each request (reply["server_timing"]["infer_ms"])
  round trip        client-side time of WebsocketClientPolicy.infer (encode, send, queue, infer, reply, decode)
  overhead          per request: round trip - server infer (= the protocol's cost: (de)serialisation, websocket
                    framing, loopback, event loop, hand-off to the inference thread); with 4 clients the queue
                    wait behind the other clients' inferences is also subtracted and shown on its own row (that is
                    the model, shared fairly, not the protocol)

Target (issue 2): overhead p50 <= 1 ms, p99 <= 3 ms. The machine is shared and noisy: compare within one run.
    .venv/bin/python benchmarks/bench_serve.py [--requests 60] [--image-size 224] [--clients 1,4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test" / "serve"))  # serve_testlib: free port, /healthz wait, lerobot-serve process

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


def row(name: str, xs: list[float]) -> str:
    return f"| {name:<36} | {len(xs):>5} | {pct(xs, 50):>9.2f} | {pct(xs, 99):>9.2f} | {max(xs):>9.2f} |"


def run_clients(port: int, n_clients: int, n_each: int, obs: dict) -> dict[str, list[float]]:
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    clients = [WebsocketClientPolicy(host="127.0.0.1", port=port) for _ in range(n_clients)]
    for c in clients:  # warm the connection
        c.infer(obs)
    out = {"rtt": [], "infer": [], "queue": [], "overhead": []}
    lock = threading.Lock()
    barrier = threading.Barrier(n_clients)

    def work(c):
        barrier.wait()
        for _ in range(n_each):
            t0 = time.perf_counter()
            r = c.infer(obs)
            rtt = (time.perf_counter() - t0) * 1e3
            st = r["server_timing"]
            with lock:
                out["rtt"].append(rtt)
                out["infer"].append(st["infer_ms"])
                out["queue"].append(st["queue_ms"])
                # With one client queue_ms is only the hand-off to the inference thread: part of the overhead.
                waited = st["queue_ms"] if n_clients > 1 else 0.0
                out["overhead"].append(rtt - st["infer_ms"] - waited)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c._ws.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=60, help="requests per client (and bare inferences)")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--clients", default="1,4")
    args = ap.parse_args()

    from serve_testlib import ServeProcess, make_obs

    from lerobot_serve_ros.ros_env import python_module_cmd
    from lerobot_serve_ros.runtime import PolicyRuntime, RuntimeConfig

    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        tmp = Path(tmp)
        print(f"building tiny ACT checkpoint (2 x {args.image_size}px cameras, state 6, chunk 50) ...", flush=True)
        # In a child process: torch used from a second thread of this process would give it a second OpenMP
        # team and slow the baseline (see runtime.py).
        ckpt = tmp / "ckpt"
        subprocess.run(python_module_cmd("lerobot_serve_ros.make_checkpoint", "--out", str(ckpt), "--image-size",
                                         str(args.image_size)), check=True, capture_output=True)
        print("starting lerobot-serve on 127.0.0.1 ...", flush=True)
        server = ServeProcess(ckpt, tmp).start()
        try:
            print("loading the same checkpoint in this process for the bare baseline ...", flush=True)
            rt = PolicyRuntime(RuntimeConfig(path=str(ckpt), device="cpu"))
            obs = make_obs(rt.metadata(), seed=0)
            results: dict[str, dict[str, list[float]]] = {}
            bare: list[float] = []
            # Interleave bare and served measurements so machine noise hits both alike.
            for n in [int(x) for x in args.clients.split(",")]:
                print(f"{n} client(s): {args.requests} requests each ...", flush=True)
                for _ in range(args.requests // 2):
                    t0 = time.perf_counter()
                    rt.infer(obs)
                    bare.append((time.perf_counter() - t0) * 1e3)
                results[n] = run_clients(server.port, n, args.requests, obs)
        finally:
            server.stop()

    print()
    print(f"lerobot-serve overhead, 2x{args.image_size}x{args.image_size}x3 uint8 + state(6) -> (50, 6) float32, "
          "CPU, loopback, official openpi-client; times in ms")
    print(f"| {'measurement':<36} | {'n':>5} | {'p50':>9} | {'p99':>9} | {'max':>9} |")
    print(f"|{'-' * 38}|{'-' * 7}|{'-' * 11}|{'-' * 11}|{'-' * 11}|")
    print(row("bare PolicyRuntime.infer", bare))
    for n, r in results.items():
        print(row(f"{n} client(s): round trip", r["rtt"]))
        print(row(f"{n} client(s): server infer", r["infer"]))
        if n > 1:
            print(row(f"{n} client(s): queue wait (fair FIFO)", r["queue"]))
        print(row(f"{n} client(s): protocol overhead", r["overhead"]))
    r1 = results.get(1)
    if r1:
        print()
        print(f"1 client: round-trip p50 - bare infer p50 = {pct(r1['rtt'], 50) - pct(bare, 50):+.2f} ms "
              f"(different model copies on a shared 2-core machine: indicative; the per-request overhead row "
              f"is the exact one)")
        ok = pct(r1["overhead"], 50) <= 1.0 and pct(r1["overhead"], 99) <= 3.0
        print(f"target overhead p50 <= 1 ms, p99 <= 3 ms (1 client): {'MET' if ok else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

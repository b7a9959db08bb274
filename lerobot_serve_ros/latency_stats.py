"""Rolling latency statistics (p50/p99 over a recent window) for diagnostics; pure, thread-safe."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class LatencyStats:
    """The last `window` samples (ms). A window, not the whole run: diagnostics should show how the node does now."""

    def __init__(self, window: int = 200):
        self._samples: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.count = 0  # all samples ever added

    def add(self, ms: float) -> None:
        with self._lock:
            self._samples.append(float(ms))
            self.count += 1

    def percentile(self, q: float) -> float | None:
        with self._lock:
            if not self._samples:
                return None
            return float(np.percentile(np.fromiter(self._samples, float), q))

    @property
    def last(self) -> float | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    def summary(self) -> dict[str, str]:
        """Key/values for a DiagnosticStatus ("n/a" before the first sample)."""
        def fmt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f}"

        return {"p50_ms": fmt(self.percentile(50)), "p99_ms": fmt(self.percentile(99)), "last_ms": fmt(self.last),
                "samples": str(self.count)}

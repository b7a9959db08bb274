"""The demo's end-of-run picture: queue depth, inference latency and joint positions over one time axis.

Input is the StackMonitor's series (plain tuples), so this stays a pure matplotlib function (Agg backend: no
display needed) that a test can call on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

STATE_COLORS = {"RUNNING": "#d8f0d8", "PAUSED": "#fff0c0", "IDLE": "#eeeeee", "RESETTING": "#d8e8ff",
                "EMERGENCY_STOP": "#ffc8c8", "DAMPING": "#ffd8b0"}


def _state_spans(status: Sequence[tuple]) -> list[tuple[float, float, str]]:
    spans: list[tuple[float, float, str]] = []
    for t, state, *_ in status:
        if spans and spans[-1][2] == state:
            spans[-1] = (spans[-1][0], t, state)
        else:
            if spans:
                spans[-1] = (spans[-1][0], t, spans[-1][2])
            spans.append((t, t, state))
    return spans


def plot_run(path: Path, status: Sequence[tuple], chunks: Sequence[tuple], joints: Sequence[tuple],
             joint_names: Sequence[str], title: str = "") -> Path:
    """status rows: (t, state, queue_depth, queue_time_s, loop_hz, p99_ms, misses); chunks: (t, id, inference_ms,
    rows); joints: (t, q0, q1, ...). Writes a PNG and returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True, constrained_layout=True)
    ax_q, ax_i, ax_j = axes
    for ax in axes:
        for t0, t1, state in _state_spans(status):
            ax.axvspan(t0, t1, color=STATE_COLORS.get(state, "#f4f4f4"), lw=0)
    if status:
        t = [r[0] for r in status]
        ax_q.plot(t, [r[2] for r in status], color="tab:blue", lw=1.2, label="queue depth (actions)")
        ax_q2 = ax_q.twinx()
        ax_q2.plot(t, [r[3] for r in status], color="tab:purple", lw=0.8, ls="--", label="queue time (s)")
        ax_q2.set_ylabel("queue time (s)")
        ax_q.legend(loc="upper left", fontsize=8)
        ax_q2.legend(loc="upper right", fontsize=8)
    ax_q.set_ylabel("queued actions")
    ax_q.set_title("controller queue (background: controller state; green RUNNING, yellow PAUSED, red E-STOP)",
                   fontsize=9)
    if chunks:
        ax_i.plot([c[0] for c in chunks], [c[2] for c in chunks], "o-", ms=3, lw=0.8, color="tab:red",
                  label=f"inference per chunk ({len(chunks)} chunks)")
        ax_i.legend(loc="upper right", fontsize=8)
    ax_i.set_ylabel("inference (ms)")
    ax_i.set_ylim(bottom=0)
    if joints:
        t = [r[0] for r in joints]
        n = len(joints[0]) - 1
        for i in range(n):
            label = joint_names[i] if i < len(joint_names) else f"joint {i}"
            ax_j.plot(t, [r[1 + i] for r in joints], lw=1.0, label=label)
        ax_j.legend(loc="upper right", fontsize=8, ncol=3)
    ax_j.set_ylabel("joint position (rad)")
    ax_j.set_xlabel("time since start (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

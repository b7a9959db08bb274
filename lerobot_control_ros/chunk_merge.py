"""How two predictions for the same future time step are merged when action chunks overlap.

One implementation for both consumers of chunks: the controller's action queue and the robot-side websocket client.
The names and weights are those of LeRobot's async inference (`aggregate_fn_name`), so a user switching from
LeRobot's client to ours gets the same behaviour.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

MergeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def weighted_average(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Trust the newer prediction more (it saw a fresher observation) while keeping some continuity."""
    return 0.3 * old + 0.7 * new


def latest_only(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Replace: the newest chunk wins outright."""
    return np.array(new, copy=True)


def average(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    return 0.5 * old + 0.5 * new


def conservative(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Favour the plan already being executed; new chunks bend it gently."""
    return 0.7 * old + 0.3 * new


MERGE_FUNCTIONS: dict[str, MergeFn] = {
    "weighted_average": weighted_average,
    "latest_only": latest_only,
    "average": average,
    "conservative": conservative,
}


def get_merge_fn(name: str) -> MergeFn:
    try:
        return MERGE_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown merge function {name!r}; choose one of {sorted(MERGE_FUNCTIONS)}") from None

"""What one websocket request/response looks like on ROS topics: topic names and message field values.

Pure data (no rclpy, no rosbags), so the two writers share it: lerobot-serve's `--record` (recorder.py, rosbags
types into an MCAP bag) and the bridge node (rclpy publishers, which `ros2 bag record` captures). Both therefore
produce the same topics with the same contents:

  bridge/observation_summary   lerobot_ros_msgs/msg/ObservationSummary   one per request (also refused ones)
  bridge/action_chunk          lerobot_ros_msgs/msg/ActionChunk          one per successful reply
  bridge/images/<camera>       sensor_msgs/msg/Image (rgb8)              the request's images, same stamp

Topic names are relative (the bridge node's namespace applies); recorder.py roots them at "/".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

OBSERVATION_SUMMARY_TOPIC = "bridge/observation_summary"
ACTION_CHUNK_TOPIC = "bridge/action_chunk"
IMAGE_TOPIC_PREFIX = "bridge/images/"
OBSERVATION_SUMMARY_TYPE = "lerobot_ros_msgs/msg/ObservationSummary"
ACTION_CHUNK_TYPE = "lerobot_ros_msgs/msg/ActionChunk"
IMAGE_TYPE = "sensor_msgs/msg/Image"
IMAGE_KEY_PREFIX = "observation.images."
STATE_KEY = "observation.state"


def image_topic(obs_key: str) -> str:
    """"observation.images.front" -> "bridge/images/front" (dots are not allowed in ROS names)."""
    name = obs_key.removeprefix(IMAGE_KEY_PREFIX)
    return IMAGE_TOPIC_PREFIX + "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def stamp(t: float) -> tuple[int, int]:
    """Wall-clock seconds -> (sec, nanosec) of builtin_interfaces/Time."""
    ns = int(round(t * 1e9))
    return ns // 1_000_000_000, ns % 1_000_000_000


def describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{'x'.join(str(d) for d in value.shape) or 'scalar'} {value.dtype}"
    return type(value).__name__


def summary_fields(request_id: int, source: str, obs: dict | None, prompt: str | None,
                   inference_delay: float | None, error: str | None) -> dict[str, Any]:
    """ObservationSummary fields except header."""
    obs = obs or {}
    keys = sorted(k for k in obs if isinstance(k, str))
    state = obs.get(STATE_KEY)
    state_arr = np.asarray(state, dtype=np.float32).ravel() if isinstance(state, np.ndarray) and \
        state.dtype.kind in "biuf" else np.zeros(0, np.float32)
    return {
        "request_id": int(request_id),
        "source": source,
        "prompt": prompt or "",
        "keys": keys,
        "shapes": [describe(obs[k]) for k in keys],
        "state": state_arr,
        "inference_delay": float(inference_delay) if inference_delay is not None else math.nan,
        "error": error or "",
    }


def chunk_fields(request_id: int, reply: dict, metadata: dict) -> dict[str, Any]:
    """ActionChunk fields except header, from a reply dict and the server metadata."""
    actions = np.asarray(reply["actions"], dtype=np.float32)
    rows, cols = actions.shape
    names = list(metadata.get("action_names") or [])
    if len(names) != cols:
        names = [f"action_{i}" for i in range(cols)]
    fps = metadata.get("fps")
    timing = reply.get("timing") or {}
    return {
        "chunk_id": int(request_id),
        "policy_name": str(metadata.get("policy_type", "")),
        "action_names": names,
        "rows": int(rows),
        "cols": int(cols),
        "data": np.ascontiguousarray(actions).ravel(),
        "dt": 1.0 / float(fps) if fps else 0.0,
        "start_index": 0,
        "inference_ms": float(timing.get("total_ms", 0.0)),
    }


def image_fields(img: np.ndarray) -> dict[str, Any] | None:
    """sensor_msgs/Image fields (except header) for an (H, W, 3) uint8 RGB array; None for anything else."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        return None
    h, w, _ = img.shape
    return {"height": h, "width": w, "encoding": "rgb8", "is_bigendian": 0, "step": w * 3,
            "data": np.ascontiguousarray(img).ravel()}

"""The openpi wire format: msgpack frames with numpy arrays, plus the request/reply shapes of lerobot-serve.

Out: exactly openpi_client.msgpack_numpy's encoding (its own `pack_array` hook), so the official client decodes us.
In: openpi's encoding (`__ndarray__`/`__npgeneric__`) AND the PyPI msgpack-numpy one (`nd`/`type`/`kind`), because
robot teams use both. Nothing is ever unpickled: msgpack-numpy's object arrays (kind `O`, a pickle) and structured
(`V`) arrays are refused, as are shapes that do not match the byte count. Every failure is a CodecError naming what
is wrong; the server sends it back as a text frame, which openpi's client raises as an error.
Decoded arrays are read-only, zero-copy views of the frame's bytes (as openpi's own decoder returns them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
from openpi_client.msgpack_numpy import pack_array

# Array element kinds accepted from the wire: bool, signed/unsigned int, float.
_ALLOWED_KINDS = "biuf"
# Keys of a structured request that are not observation entries (flat openpi requests mix them into the obs dict).
REQUEST_KEYS = ("obs", "prompt", "task", "inference_delay", "prev_chunk_left_over")


class CodecError(ValueError):
    """A frame that is not a well-formed request; the message says what is wrong."""


def packb(obj: Any) -> bytes:
    """Encode like openpi's server does (metadata, replies)."""
    return msgpack.packb(obj, default=pack_array)


def _dtype(descr: Any, where: str) -> np.dtype:
    if isinstance(descr, bytes):
        descr = descr.decode("ascii", "replace")
    if not isinstance(descr, str):
        raise CodecError(f"{where}: dtype must be a string like '<f4', got {type(descr).__name__} "
                         "(structured/object arrays are refused)")
    try:
        dt = np.dtype(descr)
    except (TypeError, ValueError):
        raise CodecError(f"{where}: unknown dtype {descr!r}") from None
    if dt.kind not in _ALLOWED_KINDS:
        raise CodecError(f"{where}: dtype {dt} (kind {dt.kind!r}) refused; only bool/int/uint/float arrays")
    return dt


def _array(data: Any, dtype: np.dtype, shape: Any, where: str) -> np.ndarray:
    if not isinstance(data, (bytes, bytearray)):
        raise CodecError(f"{where}: array data must be bytes, got {type(data).__name__}")
    if not isinstance(shape, (list, tuple)) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise CodecError(f"{where}: shape must be a list of non-negative ints, got {shape!r}")
    expected = math.prod(shape) * dtype.itemsize
    if expected != len(data):
        raise CodecError(f"{where}: shape {list(shape)} of {dtype} needs {expected} bytes, frame has {len(data)}")
    # A zero-copy, read-only view: the images are most of a request and copying them cost the event loop ~40 us per
    # request. A consumer that writes into it fails loudly instead of corrupting anything; PolicyRuntime only reads.
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _object_hook(obj: dict) -> Any:
    if "__ndarray__" in obj or "nd" in obj:  # written by a packer without use_bin_type: same layout, str keys
        obj = {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}
    if b"__ndarray__" in obj:  # openpi_client.msgpack_numpy
        return _array(obj.get(b"data"), _dtype(obj.get(b"dtype"), "openpi array"), obj.get(b"shape"), "openpi array")
    if b"__npgeneric__" in obj:
        dt = _dtype(obj.get(b"dtype"), "openpi scalar")
        try:
            return dt.type(obj.get(b"data"))
        except (TypeError, ValueError) as exc:
            raise CodecError(f"openpi scalar: bad value for {dt}: {exc}") from None
    if b"nd" in obj:  # PyPI msgpack-numpy
        kind = obj.get(b"kind", b"")
        if kind in (b"O", b"V", "O", "V"):
            raise CodecError(f"msgpack-numpy array of kind {kind!r} refused (object arrays would need unpickling)")
        dt = _dtype(obj.get(b"type"), "msgpack-numpy array")
        if obj[b"nd"] is True:
            return _array(obj.get(b"data"), dt, obj.get(b"shape"), "msgpack-numpy array")
        data = obj.get(b"data")
        if not isinstance(data, bytes) or len(data) != dt.itemsize:
            raise CodecError(f"msgpack-numpy scalar: expected {dt.itemsize} bytes of {dt}")
        return np.frombuffer(data, dtype=dt)[0]
    if b"complex" in obj:
        raise CodecError("complex numbers are not accepted")
    return obj


def unpackb(data: bytes) -> Any:
    """Decode one binary frame; CodecError for anything that is not valid msgpack of plain data and arrays."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected a binary frame, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, object_hook=_object_hook, raw=False, strict_map_key=False)
    except CodecError:
        raise
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError,
            UnicodeDecodeError) as exc:
        raise CodecError(f"frame is not valid msgpack: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # msgpack raises a few odd types on garbage (e.g. OutOfData is ValueError-less)
        raise CodecError(f"frame is not valid msgpack: {type(exc).__name__}: {exc}") from None


@dataclass
class InferRequest:
    obs: dict[str, Any]
    prompt: str | None = None
    inference_delay: float | None = None
    prev_chunk_left_over: np.ndarray | None = None


def parse_request(msg: Any) -> InferRequest:
    """Both request shapes: structured `{"obs": {...}, "inference_delay", "prev_chunk_left_over", "prompt"}`
    and openpi's flat observation dict (what `WebsocketClientPolicy.infer(obs)` sends, prompt inside)."""
    if not isinstance(msg, dict):
        raise CodecError(f"request must be a msgpack map, got {type(msg).__name__}")
    bad_keys = [k for k in msg if not isinstance(k, str)]
    if bad_keys:
        raise CodecError(f"request keys must be strings, got {bad_keys[:3]!r}")
    if "obs" in msg:
        obs = msg["obs"]
        if not isinstance(obs, dict):
            raise CodecError(f"'obs' must be a map of arrays, got {type(obs).__name__}")
        obs = dict(obs)
    else:
        obs = {k: v for k, v in msg.items() if k not in REQUEST_KEYS}
    prompt = msg.get("prompt", msg.get("task", obs.pop("prompt", obs.pop("task", None))))
    if prompt is not None and not isinstance(prompt, str):
        raise CodecError(f"'prompt' must be a string, got {type(prompt).__name__}")
    delay = msg.get("inference_delay")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, (int, float, np.integer, np.floating)):
            raise CodecError(f"'inference_delay' must be a number of seconds, got {type(delay).__name__}")
        delay = float(delay)
    left = msg.get("prev_chunk_left_over")
    if left is not None and not isinstance(left, np.ndarray):
        raise CodecError(f"'prev_chunk_left_over' must be an array or nil, got {type(left).__name__}")
    return InferRequest(obs=obs, prompt=prompt, inference_delay=delay, prev_chunk_left_over=left)


def build_request(obs: dict[str, Any], prompt: str | None = None, inference_delay: float | None = None,
                  prev_chunk_left_over: np.ndarray | None = None) -> dict:
    """The structured request our client sends (the inverse of parse_request)."""
    req: dict[str, Any] = {"obs": obs, "inference_delay": inference_delay,
                           "prev_chunk_left_over": prev_chunk_left_over}
    if prompt is not None:
        req["prompt"] = prompt
    return req

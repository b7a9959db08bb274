"""Camera messages -> the (H, W, 3) uint8 RGB arrays a LeRobot policy takes, without cv_bridge (not on PyPI).

Works on anything shaped like sensor_msgs/Image (height, width, encoding, is_bigendian, step, data) or
sensor_msgs/CompressedImage (format, data): no rclpy import, so it is unit-testable and usable on bag data.

Why the care: camera drivers pad rows (`step` > width * channels), publish BGR, mono or with alpha, and JPEG/PNG over
image_transport's `compressed` topics. A wrong encoding or a truncated buffer must become a clear ImageError that
names what is wrong, never a silently garbled tensor that a policy turns into motion.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# encoding -> (channels, cv2 conversion to RGB or None when already RGB)
RAW_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, cv2.COLOR_GRAY2RGB),
    "8UC3": (3, None),  # untyped 3-channel: taken as RGB, as cv_bridge's passthrough would hand it over
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
}
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


class ImageError(ValueError):
    """The message cannot be turned into an RGB image; the message says why (encoding, sizes, corrupt data)."""


def check_raw(msg: Any) -> None:
    """Cheap header/size checks for a sensor_msgs/Image (no pixel work): run on arrival, before queueing a frame."""
    enc = msg.encoding
    if enc not in RAW_ENCODINGS:
        raise ImageError(f"unsupported encoding {enc!r} (supported: {', '.join(RAW_ENCODINGS)})")
    ch = RAW_ENCODINGS[enc][0]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageError(f"empty image {w}x{h}")
    if step < w * ch:
        raise ImageError(f"step {step} < width {w} * {ch} bytes per pixel ({enc})")
    if len(msg.data) < h * step:
        raise ImageError(f"data has {len(msg.data)} bytes, {enc} {w}x{h} with step {step} needs {h * step}")


def compressed_format(fmt: str) -> str:
    """image_transport writes e.g. "jpeg", "rgb8; jpeg compressed bgr8" or "png"; return "jpeg" or "png"."""
    low = (fmt or "").lower()
    if "png" in low:
        return "png"
    if "jpeg" in low or "jpg" in low:
        return "jpeg"
    raise ImageError(f"unsupported CompressedImage format {fmt!r} (supported: jpeg, png)")


def check_compressed(msg: Any) -> None:
    compressed_format(msg.format)
    if len(msg.data) == 0:
        raise ImageError("CompressedImage has no data")


def raw_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB, honouring `step` (row padding)."""
    check_raw(msg)
    ch, conv = RAW_ENCODINGS[msg.encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(msg.data, np.uint8, count=h * step).reshape(h, step)[:, : w * ch]
    img = buf.reshape(h, w, ch) if ch > 1 else buf.reshape(h, w)
    return np.ascontiguousarray(img) if conv is None else cv2.cvtColor(img, conv)


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> (H, W, 3) uint8 RGB."""
    check_compressed(msg)
    buf = np.frombuffer(msg.data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # BGR, alpha and 16-bit reduced to 8-bit 3-channel
    if img is None:
        raise ImageError(f"cannot decode {len(buf)} bytes as {compressed_format(msg.format)}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize_to(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to the policy's input size (area averaging when shrinking, linear when enlarging)."""
    if img.shape[:2] == (height, width):
        return img
    shrink = img.shape[0] > height or img.shape[1] > width
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def to_policy_image(msg: Any, compressed: bool, height: int, width: int) -> np.ndarray:
    """Either camera message -> the policy's (height, width, 3) uint8 RGB input."""
    rgb = compressed_to_rgb(msg) if compressed else raw_to_rgb(msg)
    return resize_to(rgb, height, width)


def check_message(msg: Any, compressed: bool) -> None:
    (check_compressed if compressed else check_raw)(msg)


class PolicyFrame:
    """One camera message and, once computed, the policy's image of it (memoized).

    Lets the node choose *when* the pixel work happens with one implementation of it: as soon as the frame arrives
    (mode=continuous: it overlaps with waiting for the other cameras instead of delaying the inference), or only
    when an inference uses the frame (rate/trigger modes, where most frames are never used). One thread converts a
    given frame: the subscription callback before it is shared, or else the node's inference loop.
    """

    __slots__ = ("msg", "compressed", "height", "width", "_image")

    def __init__(self, msg: Any, compressed: bool, height: int, width: int):
        self.msg = msg
        self.compressed = compressed
        self.height = height
        self.width = width
        self._image: np.ndarray | None = None

    @property
    def converted(self) -> bool:
        return self._image is not None

    def image(self) -> np.ndarray:
        """The policy's (height, width, 3) uint8 RGB input; raises ImageError when the message cannot be decoded."""
        if self._image is None:
            self._image = to_policy_image(self.msg, self.compressed, self.height, self.width)
            self.msg = None  # not needed any more: the buffer then holds the small image, not the ~1 MB message
        return self._image

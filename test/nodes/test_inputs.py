"""Pure input handling (no ROS graph): camera messages -> policy images, observation freshness, joint reordering."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from lerobot_serve_ros import ros_image
from lerobot_serve_ros.latency_stats import LatencyStats
from lerobot_serve_ros.observation import JointOrder, ObservationBuffer

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)


def raw(img: np.ndarray, encoding: str, pad: int = 0) -> Image:
    h, w = img.shape[:2]
    ch = 1 if img.ndim == 2 else img.shape[2]
    rows = np.zeros((h, w * ch + pad), np.uint8)
    rows[:, : w * ch] = img.reshape(h, w * ch)
    return Image(height=h, width=w, encoding=encoding, step=w * ch + pad, data=rows.tobytes())


@pytest.mark.parametrize("pad", [0, 7])
def test_rgb_bgr_mono_rgba_honour_step(pad):
    assert np.array_equal(ros_image.raw_to_rgb(raw(RGB, "rgb8", pad)), RGB)
    assert np.array_equal(ros_image.raw_to_rgb(raw(RGB[..., ::-1].copy(), "bgr8", pad)), RGB)
    rgba = np.concatenate([RGB, np.full((6, 5, 1), 9, np.uint8)], axis=2)
    assert np.array_equal(ros_image.raw_to_rgb(raw(rgba, "rgba8", pad)), RGB)
    gray = RGB[..., 0].copy()
    out = ros_image.raw_to_rgb(raw(gray, "mono8", pad))
    assert out.shape == (6, 5, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))


def test_compressed_png_exact_and_jpeg_close():
    ok, png = cv2.imencode(".png", RGB[..., ::-1])
    assert np.array_equal(ros_image.compressed_to_rgb(CompressedImage(format="png", data=png.tobytes())), RGB)
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
    ok, jpg = cv2.imencode(".jpg", smooth[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = ros_image.compressed_to_rgb(CompressedImage(format="rgb8; jpeg compressed bgr8", data=jpg.tobytes()))
    assert out.shape == smooth.shape and np.abs(out.astype(int) - smooth).mean() < 3


def test_resize_to_policy_input():
    big = RNG.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    out = ros_image.to_policy_image(raw(big, "rgb8"), False, 96, 96)
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    assert ros_image.to_policy_image(raw(RGB, "rgb8"), False, 6, 5) is not None


def test_policy_frame_converts_once_and_keeps_only_the_image():
    big = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame = ros_image.PolicyFrame(raw(big, "rgb8"), False, 24, 32)
    assert not frame.converted
    img = frame.image()
    assert np.array_equal(img, ros_image.to_policy_image(raw(big, "rgb8"), False, 24, 32))
    assert frame.converted and frame.msg is None  # the ~1 MB message is not kept once converted
    assert frame.image() is img
    bad = ros_image.PolicyFrame(CompressedImage(format="jpeg", data=b"not a jpeg"), True, 4, 4)
    for _ in range(2):  # a failure is not memoized: it is raised again wherever the frame is used
        with pytest.raises(ros_image.ImageError, match="cannot decode"):
            bad.image()
    assert not bad.converted


@pytest.mark.parametrize("msg, match", [
    (Image(height=2, width=2, encoding="16UC1", step=4, data=bytes(8)), "unsupported encoding '16UC1'"),
    (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(7)), "needs 12"),
    (Image(height=2, width=2, encoding="rgb8", step=5, data=bytes(10)), "step 5 < width 2"),
    (Image(height=0, width=2, encoding="rgb8", step=6, data=b""), "empty image"),
    (CompressedImage(format="tiff", data=b"x"), "unsupported CompressedImage format 'tiff'"),
    (CompressedImage(format="jpeg", data=b"not a jpeg"), "cannot decode 10 bytes as jpeg"),
    (CompressedImage(format="png", data=b""), "no data"),
])
def test_bad_images_get_clear_errors(msg, match):
    with pytest.raises(ros_image.ImageError, match=match):
        ros_image.to_policy_image(msg, isinstance(msg, CompressedImage), 4, 4)


def test_buffer_complete_fresh_stale_invalid():
    t = [100.0]
    buf = ObservationBuffer({"front": 0.5, "joint_states": 0.2}, clock=lambda: t[0])
    r = buf.check()
    assert not r.ready and r.reasons == {"front": "never received", "joint_states": "never received"}
    buf.put("front", "img", stamp_ns=5)
    buf.put("joint_states", np.zeros(6), stamp_ns=7)
    r = buf.check()
    assert r.ready and r.stamp_ns == 7 and set(r.samples) == {"front", "joint_states"}
    t[0] += 0.3  # joints stale, camera still fresh
    r = buf.check()
    assert not r.ready and list(r.reasons) == ["joint_states"] and "stale" in r.reasons["joint_states"]
    assert "limit 0.2 s" in r.summary()
    buf.put("joint_states", np.zeros(6), stamp_ns=9)
    assert buf.check().ready
    s = buf.latest("front")
    buf.put_invalid("front", "unsupported encoding 'yuv422'")  # a bad frame replaces the good one
    r = buf.check()
    assert r.reasons == {"front": "invalid: unsupported encoding 'yuv422'"}
    assert buf.freshness()["front"].startswith("INVALID")
    buf.put("front", "img2", stamp_ns=11)
    new = buf.latest("front")
    buf.put_invalid("front", "late decode error", seq=s.seq)  # refers to an older frame: ignored
    assert buf.check().ready and buf.latest("front") is new
    assert buf.has_new(["front"], {"front": s.seq}) and not buf.has_new(["front"], {"front": new.seq})
    with pytest.raises(KeyError):
        buf.put("nope", 1, 0)


def test_joint_order_by_name():
    order = JointOrder(["a", "b", "c"])
    out = order.reorder(["c", "x", "a", "b"], [3.0, 99.0, 1.0, 2.0])
    assert out.dtype == np.float32 and out.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"lacks joint\(s\) \['b'\]"):
        order.reorder(["a", "c"], [1.0, 3.0])
    with pytest.raises(ValueError, match="2 names but 1 positions"):
        order.reorder(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        order.reorder(["a", "b", "c"], [1.0, float("nan"), 3.0])
    with pytest.raises(ValueError, match="duplicate"):
        JointOrder(["a", "a"])


def test_latency_stats_window():
    s = LatencyStats(window=100)
    assert s.summary()["p50_ms"] == "n/a"
    for v in range(1, 201):
        s.add(v)
    assert s.count == 200 and s.percentile(50) == pytest.approx(150.5) and s.percentile(99) > 198

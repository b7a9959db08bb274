"""The wire codec: openpi and msgpack-numpy encodings in, openpi out, nothing unpickled, clear errors."""

from __future__ import annotations

import pickle

import msgpack
import msgpack_numpy
import numpy as np
import pytest
from openpi_client import msgpack_numpy as openpi_msgpack

from lerobot_serve_ros.codec import CodecError, InferRequest, build_request, packb, parse_request, unpackb


def test_openpi_encoding_round_trip_and_openpi_can_read_ours():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    decoded = unpackb(openpi_msgpack.packb({"a": arr, "img": img, "x": np.float64(1.5), "s": "txt"}))
    np.testing.assert_array_equal(decoded["a"], arr)
    np.testing.assert_array_equal(decoded["img"], img)
    assert decoded["img"].dtype == np.uint8
    # zero-copy: read-only views of the frame (no per-request copy of the images; writing fails loudly)
    assert not decoded["img"].flags.writeable and not decoded["img"].flags.owndata
    with pytest.raises(ValueError, match="read-only"):
        decoded["a"][0, 0, 0] = 1.0
    assert decoded["x"] == 1.5 and decoded["s"] == "txt"
    ours = openpi_msgpack.unpackb(packb({"actions": arr}))
    np.testing.assert_array_equal(ours["actions"], arr)
    assert ours["actions"].dtype == np.float32


def test_pypi_msgpack_numpy_encoding_decodes():
    arr = np.linspace(0, 1, 12, dtype=np.float64).reshape(3, 4)
    frame = msgpack.packb({"a": arr, "n": np.int32(7)}, default=msgpack_numpy.encode)
    decoded = unpackb(frame)
    np.testing.assert_array_equal(decoded["a"], arr)
    assert decoded["n"] == 7 and isinstance(decoded["n"], np.int32)


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('unpickled!')",))


def test_object_arrays_are_refused_never_unpickled():
    obj = np.empty(1, dtype=object)
    obj[0] = _Boom()
    frame = msgpack.packb({"a": obj}, default=msgpack_numpy.encode)
    assert b"unpickled" in frame  # the payload really is a pickle that would run on decode
    with pytest.raises(CodecError, match="object arrays"):
        unpackb(frame)
    structured = np.zeros(2, dtype=[("x", "<f4"), ("y", "<i4")])
    with pytest.raises(CodecError):
        unpackb(msgpack.packb({"a": structured}, default=msgpack_numpy.encode))
    with pytest.raises(CodecError, match="refused"):
        unpackb(msgpack.packb({b"__ndarray__": True, b"data": pickle.dumps(1), b"dtype": "|O", b"shape": [1]}))


@pytest.mark.parametrize("frame, match", [
    (b"\xc1", "not valid msgpack"),
    (b"\x92\x01", "not valid msgpack"),  # truncated array
    (msgpack.packb({b"__ndarray__": True, b"data": b"abc", b"dtype": "<f4", b"shape": [1]}), "needs 4 bytes"),
    (msgpack.packb({b"__ndarray__": True, b"data": b"abcd", b"dtype": "<f4", b"shape": [-1]}), "non-negative"),
    (msgpack.packb({b"__ndarray__": True, b"data": b"abcd", b"dtype": "nonsense", b"shape": [1]}), "unknown dtype"),
    (msgpack.packb({b"__ndarray__": True, b"data": "text", b"dtype": "<f4", b"shape": [1]}), "must be bytes"),
])
def test_malformed_frames_raise_codec_error(frame, match):
    with pytest.raises(CodecError, match=match):
        unpackb(frame)


def test_random_bytes_never_crash_the_decoder():
    rng = np.random.default_rng(1)
    for _ in range(300):
        frame = rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
        try:
            unpackb(frame)
        except CodecError:
            pass


def test_parse_request_flat_and_structured():
    img = np.zeros((2, 2, 3), np.uint8)
    flat = parse_request({"observation.images.front": img, "prompt": "pick"})
    assert isinstance(flat, InferRequest) and list(flat.obs) == ["observation.images.front"]
    assert flat.prompt == "pick" and flat.inference_delay is None
    left = np.zeros((3, 6), np.float32)
    structured = parse_request(unpackb(packb(build_request({"observation.images.front": img}, "place", 0.1, left))))
    assert structured.prompt == "place" and structured.inference_delay == pytest.approx(0.1)
    np.testing.assert_array_equal(structured.prev_chunk_left_over, left)
    assert list(structured.obs) == ["observation.images.front"]


@pytest.mark.parametrize("msg, match", [
    ([1, 2, 3], "must be a msgpack map"),
    ({"obs": [1, 2]}, "'obs' must be a map"),
    ({"obs": {}, "prompt": 3}, "'prompt' must be a string"),
    ({"obs": {}, "inference_delay": "soon"}, "'inference_delay' must be a number"),
    ({"obs": {}, "prev_chunk_left_over": [[1.0]]}, "'prev_chunk_left_over' must be an array"),
    ({1: 2}, "keys must be strings"),
])
def test_parse_request_rejects_wrong_types(msg, match):
    with pytest.raises(CodecError, match=match):
        parse_request(msg)

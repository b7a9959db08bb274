"""ActionQueue: time-stamping, latency compensation, merging, interpolation, never extrapolating."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lerobot_control_ros.action_queue import ActionQueue
from lerobot_control_ros.chunk_merge import MERGE_FUNCTIONS

DT = 0.1


def ramp(n: int, a: int = 2, start: float = 0.0) -> np.ndarray:
    """Row i = start + i in every column (column j offset by 100*j), so values tell which row they came from."""
    return np.array([[start + i + 100 * j for j in range(a)] for i in range(n)], dtype=np.float32)


def test_rows_are_stamped_from_t0_dt_and_start_index():
    q = ActionQueue()
    r = q.push_chunk(ramp(5), t0=10.0, dt=DT, now=9.0, start_index=2)
    assert (r.accepted, r.dropped, r.merged, r.ok) == (5, 0, 0, True)
    np.testing.assert_allclose(q.times(), 10.0 + (np.arange(5) + 2) * DT)
    np.testing.assert_allclose(q.sample(10.2), [0, 100])
    assert q.sample(10.0) is None  # before the first row: nothing planned


def test_latency_compensation_drops_past_rows_keeps_one_anchor():
    q = ActionQueue()
    # observation at t=0, chunk arrives at t=0.25: rows at 0.0, 0.1, 0.2 are past; 0.2 stays as interpolation anchor
    r = q.push_chunk(ramp(6), t0=0.0, dt=DT, now=0.25)
    assert (r.accepted, r.dropped) == (4, 2)
    np.testing.assert_allclose(q.times(), [0.2, 0.3, 0.4, 0.5])
    np.testing.assert_allclose(q.sample(0.25), [2.5, 102.5])  # between row 2 and row 3, not row 0
    assert q.depth(0.25) == 3


def test_chunk_entirely_in_the_past_is_dropped():
    q = ActionQueue()
    r = q.push_chunk(ramp(3), t0=0.0, dt=DT, now=5.0)
    assert (r.accepted, r.dropped) == (0, 3)
    assert len(q) == 0 and q.sample(5.0) is None


def test_interpolation_is_linear_and_exact_at_rows():
    q = ActionQueue()
    q.push_chunk(ramp(4), t0=1.0, dt=DT, now=0.0)
    for k in range(4):
        np.testing.assert_allclose(q.sample(1.0 + k * DT), [k, 100 + k], atol=1e-9)
    np.testing.assert_allclose(q.sample(1.0 + 0.1 * DT), [0.1, 100.1], atol=1e-9)
    np.testing.assert_allclose(q.sample(1.0 + 2.75 * DT), [2.75, 102.75], atol=1e-9)
    # 500 Hz sampling of a 10 Hz chunk: consecutive samples never jump more than the slope allows
    ts = np.linspace(1.0, 1.3, 151)
    vals = np.array([q.sample(t)[0] for t in ts])
    assert np.max(np.abs(np.diff(vals))) <= 0.002 / DT + 1e-9


def test_never_extrapolates():
    q = ActionQueue()
    q.push_chunk(ramp(3), t0=0.0, dt=DT, now=0.0)
    assert q.sample(0.2 + 1e-6) is None
    assert q.sample(-1e-6) is None
    assert q.time_left(0.25) == 0.0 and q.depth(0.25) == 0


@pytest.mark.parametrize("name", sorted(MERGE_FUNCTIONS))
def test_overlapping_chunks_are_merged_with_the_named_function(name):
    fn = MERGE_FUNCTIONS[name]
    q = ActionQueue(merge=name)
    old = np.zeros((10, 2), np.float32)
    new = np.ones((10, 2), np.float32) * 10
    q.push_chunk(old, t0=0.0, dt=DT, now=0.0)
    r = q.push_chunk(new, t0=0.5, dt=DT, now=0.5)
    # new rows at 0.5..1.4; old plan covers up to 0.9 -> 5 merged rows (0.5, 0.6, 0.7, 0.8, 0.9)
    assert r.merged == 5 and r.accepted == 10
    expect_overlap = fn(np.zeros(2), np.full(2, 10.0))
    np.testing.assert_allclose(q.sample(0.7), expect_overlap, atol=1e-6)
    np.testing.assert_allclose(q.sample(1.2), [10, 10], atol=1e-6)  # only the new chunk there
    np.testing.assert_allclose(q.sample(0.3), [0, 0])  # old rows before the new chunk stay


def test_merge_interpolates_old_plan_at_unaligned_times():
    q = ActionQueue(merge="average")
    q.push_chunk(ramp(10, a=1), t0=0.0, dt=DT, now=0.0)  # value = 10 * t
    q.push_chunk(np.zeros((3, 1)), t0=0.35, dt=DT, now=0.35)  # rows at 0.35, 0.45, 0.55
    np.testing.assert_allclose(q.sample(0.45), [0.5 * 4.5], atol=1e-9)


def test_latest_only_replaces_overlap():
    q = ActionQueue(merge="latest_only")
    q.push_chunk(np.zeros((10, 1)), t0=0.0, dt=DT, now=0.0)
    q.push_chunk(np.full((10, 1), 7.0), t0=0.3, dt=DT, now=0.3)
    assert q.sample(0.5)[0] == pytest.approx(7.0)


def test_depth_time_left_remaining():
    q = ActionQueue()
    q.push_chunk(ramp(5), t0=0.0, dt=DT, now=0.0)
    assert q.depth(0.0) == 4 and q.time_left(0.0) == pytest.approx(0.4)
    assert q.depth(0.25) == 2 and q.time_left(0.25) == pytest.approx(0.15)
    rem = q.remaining(0.25)
    assert rem.dtype == np.float32
    np.testing.assert_allclose(rem, ramp(5)[3:])
    assert q.remaining(1.0).shape[0] == 0


def test_pop_until_keeps_interpolation_anchor():
    q = ActionQueue()
    q.push_chunk(ramp(5), t0=0.0, dt=DT, now=0.0)
    assert q.pop_until(0.25) == 2
    np.testing.assert_allclose(q.sample(0.25), [2.5, 102.5])
    assert q.pop_until(10.0) == 3 and len(q) == 0


def test_bad_chunks_are_refused_with_a_reason_and_the_plan_is_kept():
    q = ActionQueue()
    q.push_chunk(ramp(5), t0=1.0, dt=DT, now=1.0)
    before = q.times()
    cases = [
        (np.zeros(5), 1.1, DT, "2-D"),
        (np.full((3, 2), np.nan), 1.1, DT, "NaN"),
        (ramp(3), 1.1, 0.0, "dt"),
        (ramp(3, a=3), 1.1, DT, "columns"),
        (ramp(3), 0.5, DT, "out of order"),
    ]
    for actions, t0, dt, word in cases:
        r = q.push_chunk(actions, t0=t0, dt=dt, now=1.1)
        assert not r.ok and word in r.reason
    np.testing.assert_array_equal(q.times(), before)
    assert q.chunks_refused == len(cases)


def test_clear_forgets_plan_and_order():
    q = ActionQueue()
    q.push_chunk(ramp(5), t0=5.0, dt=DT, now=5.0, chunk_id=9)
    assert q.last_chunk_id == 9
    q.clear()
    assert len(q) == 0 and q.sample(5.1) is None
    assert q.push_chunk(ramp(5), t0=1.0, dt=DT, now=1.0, chunk_id=1).ok  # restarted producer, older clock: fine


def test_unknown_merge_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown merge function"):
        ActionQueue(merge="median")


def test_sampling_while_pushing_from_another_thread_is_consistent():
    """The control loop samples while the ROS thread pushes: every sample is a value of some consistent plan."""
    q = ActionQueue(merge="latest_only")
    stop = threading.Event()
    errors: list[str] = []

    def writer():
        k = 0
        while not stop.is_set():
            k += 1
            q.push_chunk(np.full((20, 3), float(k)), t0=k * 0.01, dt=DT, now=k * 0.01)

    th = threading.Thread(target=writer)
    th.start()
    try:
        for _ in range(20000):
            v = q.sample(q.times()[0] + 0.05) if len(q) else None
            if v is not None and not (v[0] == v[1] == v[2]):
                errors.append(repr(v))
    finally:
        stop.set()
        th.join()
    assert not errors

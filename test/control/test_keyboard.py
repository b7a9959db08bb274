"""Operator keys -> controller services, without a terminal."""

from __future__ import annotations

import os

import pytest

from lerobot_control_ros.keyboard import ESC, KeyDispatcher, read_key, service_for_key


@pytest.mark.parametrize("key,state,service", [
    (" ", "IDLE", "start"), (" ", "RUNNING", "pause"), (" ", "PAUSED", "resume"), (" ", "RESETTING", "pause"),
    (" ", None, "pause"), ("r", "PAUSED", "reset"), ("R", "IDLE", "reset"), ("q", "RUNNING", "stop"),
    (ESC, "RUNNING", "estop"), (ESC, None, "estop"), ("x", "RUNNING", None),
])
def test_service_for_key(key, state, service):
    assert service_for_key(key, state) == service


def test_dispatcher_calls_and_logs():
    calls = []
    state = {"s": "IDLE"}

    def call(name):
        calls.append(name)
        return name != "reset", f"{name} done"

    d = KeyDispatcher(call, lambda: state["s"])
    assert d.handle(" ") == ("start", True, "start done")
    state["s"] = "RUNNING"
    assert d.handle(" ")[0] == "pause"
    assert d.handle("z") is None
    assert d.handle("r") == ("reset", False, "reset done")
    assert d.handle(ESC)[0] == "estop"
    assert calls == ["start", "pause", "reset", "estop"]
    assert [entry[1] for entry in d.log] == calls


def test_read_key_tells_esc_from_escape_sequences():
    r, w = os.pipe()
    try:
        os.write(w, b"q")
        assert read_key(r, 0.1) == "q"
        os.write(w, b"\x1b")
        assert read_key(r, 0.1) == ESC
        os.write(w, b"\x1b[A")  # arrow up: not an e-stop
        assert read_key(r, 0.1) is None
        assert read_key(r, 0.01) is None
    finally:
        os.close(r)
        os.close(w)

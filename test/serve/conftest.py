"""Fixtures of the serve tests: one loaded runtime per session (servers: one `lerobot-serve` process per module)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def act_runtime(tiny_act_checkpoint):
    from lerobot_serve_ros.runtime import PolicyRuntime, RuntimeConfig

    return PolicyRuntime(RuntimeConfig(path=str(tiny_act_checkpoint), device="cpu"))

"""Controller tests: the node and a stand-in policy in their own processes, the probe in this one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # controller_probe and chunk_publisher


@pytest.fixture
def probe(ros_env):
    from controller_probe import ControllerProbe

    p = ControllerProbe(int(ros_env["ROS_DOMAIN_ID"]))
    yield p
    p.close()

"""Fixtures of the bringup tests: the package's share layout (the source tree) for the launch stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session", autouse=True)
def _package_share():
    """FindPackageShare('lerobot_ros') -> the source tree: setup.py installs launch/, config/, rviz/ under the same
    names, so a path that resolves here resolves in an installed share/ too."""
    import launch_standin

    launch_standin.PACKAGE_SHARE["lerobot_ros"] = REPO_ROOT
    yield

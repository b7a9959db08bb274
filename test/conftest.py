"""Shared fixtures. Every ROS process of the suite (this one included) stays on loopback in a domain of its own.

Sub-folders add their own conftest.py for what only they use; this file holds what several areas share.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lerobot_serve_ros.ros_env import ManagedProcess, cleanup_shm, localhost_ros_env, shm_snapshot

# Confine this pytest process (and anything it starts without an explicit env) before any rclpy import happens.
os.environ.update(localhost_ros_env())
os.environ["HF_HUB_OFFLINE"] = "1"

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _shm_cleanup_session():
    """Remove Fast DDS /dev/shm files that processes started by this session left behind (kill -9 drills)."""
    before = shm_snapshot()
    yield
    cleanup_shm(before)


@pytest.fixture
def ros_env() -> dict[str, str]:
    """An environment for child ROS processes with a fresh ROS_DOMAIN_ID, so tests never hear each other."""
    return localhost_ros_env()


@pytest.fixture
def procs(tmp_path, request):
    """Start child processes that are always stopped (by pid) at teardown; logs go to tmp_path and are printed
    when the test fails, so a failing integration test says what the child said."""
    started: list[ManagedProcess] = []

    def start(args: list[str], env: dict[str, str], name: str) -> ManagedProcess:
        p = ManagedProcess(args=args, env=env, log_path=tmp_path / f"{name}.log", name=name).start()
        started.append(p)
        return p

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for p in reversed(started):
        p.stop()
        if failed:
            print(f"\n----- log of {p.name} (pid {p.pid}) -----\n{p.log_tail(80)}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def tiny_act_checkpoint(tmp_path_factory) -> Path:
    """The contract's default demo policy (ACT, cameras front+wrist 96 px, state 6, action 6, chunk 50), built once
    per session with lerobot_serve_ros.make_checkpoint into a temporary folder."""
    from lerobot_serve_ros.make_checkpoint import CheckpointSpec, build_checkpoint

    return build_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_act", CheckpointSpec(policy_type="act"))


@pytest.fixture(scope="session")
def tiny_diffusion_checkpoint(tmp_path_factory) -> Path:
    """Same features with a tiny Diffusion policy; skipped where lerobot's [diffusion] extra (diffusers) is absent."""
    pytest.importorskip("diffusers", reason="Diffusion needs lerobot[diffusion] (diffusers), not in requirements.lock")
    from lerobot_serve_ros.make_checkpoint import CheckpointSpec, build_checkpoint

    return build_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_diffusion",
                            CheckpointSpec(policy_type="diffusion", chunk_size=8))

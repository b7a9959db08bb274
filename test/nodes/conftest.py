"""Fixtures of the node tests: nodes under test in their own processes (one per module where tests can share it),
the test's own ROS side (ros_harness.RosHarness) in this process, on a domain of their own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from lerobot_serve_ros.ros_env import ManagedProcess, localhost_ros_env, python_module_cmd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "serve"))  # serve_testlib: free_port, wait_healthy, make_obs, ServeProcess


def write_params(path: Path, node_name: str, params: dict) -> Path:
    path.write_text(yaml.safe_dump({node_name: {"ros__parameters": params}}))
    return path


class NodeProcesses:
    """Processes started for a module; stopped by pid at teardown, their logs printed if a test of it failed."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir, self.started = env, log_dir, []

    def start_node(self, module: str, node_name: str, params: dict, tag: str | None = None) -> ManagedProcess:
        tag = tag or node_name
        pfile = write_params(self.log_dir / f"{tag}.yaml", node_name, params)
        p = ManagedProcess(python_module_cmd(module, "--ros-args", "--params-file", str(pfile)), self.env,
                           log_path=self.log_dir / f"{tag}.log", name=tag).start()
        self.started.append(p)
        return p

    def start(self, args: list[str], name: str) -> ManagedProcess:
        p = ManagedProcess(args, self.env, log_path=self.log_dir / f"{name}.log", name=name).start()
        self.started.append(p)
        return p

    def stop_all(self, print_logs: bool) -> None:
        for p in reversed(self.started):
            p.stop()
            if print_logs:
                print(f"\n----- log of {p.name} (pid {p.pid}) -----\n{p.log_tail(60)}")


@pytest.fixture(scope="module")
def module_env() -> dict[str, str]:
    return localhost_ros_env()


@pytest.fixture(scope="module")
def node_procs(module_env, tmp_path_factory, request):
    procs = NodeProcesses(module_env, tmp_path_factory.mktemp("nodes"))
    failed_before = request.session.testsfailed
    yield procs
    procs.stop_all(print_logs=request.session.testsfailed > failed_before)


@pytest.fixture(scope="module")
def harness(module_env):
    from ros_harness import RosHarness

    h = RosHarness(int(module_env["ROS_DOMAIN_ID"]))
    yield h
    h.close()

"""config/policy_node.yaml and config/bridge_node.yaml hold EVERY parameter the nodes declare (and only those), with
the nodes' own defaults where the file does not deliberately differ; each is declared with a description."""

from __future__ import annotations

from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.context import Context

REPO = Path(__file__).resolve().parents[2]
BUILTIN = {"use_sim_time", "start_type_description_service"}


@pytest.fixture(scope="module")
def ctx():
    c = Context()
    rclpy.init(context=c, domain_id=0)  # no communication: nodes are only constructed and inspected
    yield c
    rclpy.try_shutdown(context=c)


@pytest.mark.parametrize("module, cls, name", [("lerobot_serve_ros.policy_node", "PolicyNode", "policy_node"),
                                               ("lerobot_serve_ros.bridge_node", "BridgeNode", "bridge_node")])
def test_yaml_matches_declared_parameters(ctx, module, cls, name):
    import importlib

    node = getattr(importlib.import_module(module), cls)(context=ctx, enable_rosout=False)
    try:
        declared = {n: node.get_parameter(n).value for n in node._parameters if n not in BUILTIN}
        descriptions = {n: node.describe_parameter(n).description for n in declared}
    finally:
        node.destroy_node()
    data = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    in_file = data[name]["ros__parameters"]
    assert set(in_file) == set(declared), (set(in_file) ^ set(declared))
    assert all(descriptions.values()), [n for n, d in descriptions.items() if not d]
    for key, value in in_file.items():  # the file documents the defaults
        default = declared[key]
        assert (value or None) == (default or None) or key == "policy_path", (key, value, default)

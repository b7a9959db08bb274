"""ROS params YAML rules and the parameters a node really declares (asked of the running node, so it cannot drift).

`declared_parameters` starts the node's console-script entry point (module:function from setup.py) as its own
process with exactly the parameter files `ros2 launch` would pass, then asks it over the standard
rcl_interfaces services (`<node>/list_parameters`, `<node>/describe_parameters`), like `ros2 param list/describe`.
Nodes that declare parameters from other parameters' values (policy_node's cameras.<name>.*) are covered because
the node gets the same files the launch gives it.
"""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROS_SCALARS = (bool, int, float, str)


def console_scripts(setup_py: Path) -> dict[str, str]:
    """name -> "module:function" of setup.py's console_scripts, read from its source (ast, nothing executed)."""
    tree = ast.parse(setup_py.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            entry_points = ast.literal_eval(node.value)
            return dict(tuple(part.strip() for part in line.split("=", 1))
                        for line in entry_points.get("console_scripts", []))
    raise AssertionError(f"{setup_py} has no entry_points")


def check_params_yaml(path: Path) -> dict:
    """Load a ROS 2 params file and check what rcl_yaml_param_parser requires; returns the loaded dict."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data, f"{path}: not a mapping of node names"
    for node, body in data.items():
        assert isinstance(body, dict) and set(body) == {"ros__parameters"}, \
            f"{path}: '{node}' must hold exactly one key 'ros__parameters'"
        params = body["ros__parameters"]
        assert isinstance(params, dict), f"{path}: {node}.ros__parameters is not a mapping"
        for key, value in flatten(params).items():
            ok = isinstance(value, ROS_SCALARS) or (
                isinstance(value, list) and len({type(v) for v in value}) <= 1
                and all(isinstance(v, ROS_SCALARS) for v in value))
            assert ok, f"{path}: {node}: parameter {key}={value!r} is not a ROS parameter value " \
                       "(scalar or homogeneous list)"
    return data


def flatten(params: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def params_for_node(data: dict, fqn: str) -> dict:
    """Parameters a params file gives the node with fully qualified name `fqn` (rcl's matching rules: exact name,
    '/**', '/**/name', and a bare 'name' meaning '/name')."""
    name = fqn.rsplit("/", 1)[-1]
    out: dict = {}
    for key, body in data.items():
        k = key if key.startswith("/") else "/" + key
        if k in (fqn, "/**", f"/**/{name}", "/*") or (k.startswith("/**/") and fqn.endswith(k[3:])):
            out.update(flatten(body["ros__parameters"]))
    return out


@dataclass
class Declared:
    names: set[str]
    descriptions: dict[str, str]
    log: str


def declared_parameters(entry_point: str, name: str, namespace: str, param_files: list[Path],
                        env: dict[str, str], timeout: float = 30.0) -> Declared:
    """Start `entry_point` ("module:function") as node `namespace/name` with `param_files`; ask what it declares."""
    import rclpy
    from rcl_interfaces.srv import DescribeParameters, ListParameters
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    module, func = entry_point.split(":")
    fqn = (namespace.rstrip("/") + "/" + name) if namespace.strip("/") else "/" + name
    args = [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())", "--ros-args",
            "-r", f"__node:={name}", "-r", f"__ns:={namespace or '/'}"]
    for f in param_files:
        args += ["--params-file", str(f)]
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        ctx = Context()
        rclpy.init(context=ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
        node = Node("param_checker", context=ctx)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        try:
            lister = node.create_client(ListParameters, f"{fqn}/list_parameters")
            describer = node.create_client(DescribeParameters, f"{fqn}/describe_parameters")
            deadline = time.monotonic() + timeout
            while not lister.service_is_ready():
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise AssertionError(f"{fqn} ({entry_point}) did not come up (exit {proc.poll()}):\n"
                                         f"{log.read().decode(errors='replace')[-3000:]}")
                executor.spin_once(timeout_sec=0.1)

            def call(client, request):
                """Idempotent queries, so resent every 2 s: a server that just appeared may not have matched our
                reply reader yet and then drops its answer (rmw 'failed to send response')."""
                end = time.monotonic() + 20.0
                while time.monotonic() < end:
                    future = client.call_async(request)
                    attempt_end = time.monotonic() + 2.0
                    while not future.done() and time.monotonic() < attempt_end:
                        executor.spin_once(timeout_sec=0.05)
                    if future.done():
                        return future.result()
                    client.remove_pending_request(future)
                raise AssertionError(f"{client.srv_name} did not answer in 20 s")

            names = list(call(lister, ListParameters.Request()).result.names)
            describer.wait_for_service(timeout_sec=5.0)
            descs = call(describer, DescribeParameters.Request(names=names)).descriptors
            descriptions = {d.name: d.description for d in descs}
        finally:
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
            rclpy.try_shutdown(context=ctx)
            if proc.poll() is None:  # stopped by the pid we started
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            log.seek(0)
            text = log.read().decode(errors="replace")
    return Declared(set(names), descriptions, text)

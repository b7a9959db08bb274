"""Every launch/*.launch.py checked for real without `ros2 launch` (not installable here).

How: launch_standin.py EXECUTES each launch file against stand-in `launch`/`launch_ros` modules that keep the real
constructor signatures, then runs the description like `ros2 launch` (arguments, substitutions, conditions,
OpaqueFunctions, includes, lifecycle events). For what would start, the tests assert:
  - the package is lerobot_ros and the executable is a console script in setup.py;
  - every config file named exists and loads as a ROS params YAML;
  - every parameter passed (inline dicts, and every key of the YAML files under that node's name) is declared by
    the node: the node's own entry point is started with those files and asked (rcl_interfaces services);
  - lifecycle nodes end up active through the launch's own ChangeState / OnStateTransition wiring;
  - bringup's arguments (policy_path, device, robot, config, use_bridge, record) do what they say.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from launch_standin import LaunchError, evaluate_launch_file
from ros_params import check_params_yaml, console_scripts, declared_parameters, params_for_node

from lerobot_serve_ros.ros_env import localhost_ros_env

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
BRINGUP = REPO / "launch" / "bringup.launch.py"
SETUPS = ("sim_arm", "so101", "arx5")
BRINGUP_VARIANTS = {
    "default": {},
    "no_bridge": {"use_bridge": "false"},
    "record": {"record": "true"},
    "so101": {"robot": "so101"},
    "arx5": {"robot": "arx5", "use_bridge": "false", "record": "true"},
    "overrides": {"config": str(REPO / "config" / "sim_arm.yaml"), "policy_path": "/data/ckpt", "device": "cpu"},
}


def all_launches():
    """(label, LaunchResult) for bringup's variants and every other launch file with its defaults."""
    out = [(f"bringup[{k}]", evaluate_launch_file(BRINGUP, v)) for k, v in BRINGUP_VARIANTS.items()]
    out += [(p.name, evaluate_launch_file(p)) for p in LAUNCH_FILES if p != BRINGUP]
    return out


@pytest.fixture(scope="module")
def launches():
    return all_launches()


def test_launch_files_exist_and_evaluate(launches):
    assert BRINGUP in LAUNCH_FILES
    for label, result in launches:
        assert result.nodes, f"{label} starts no node"


def test_nodes_are_console_scripts_of_this_package(launches):
    scripts = console_scripts(REPO / "setup.py")
    for label, result in launches:
        for n in result.nodes:
            assert n.package == "lerobot_ros", f"{label}: {n.executable} is in package {n.package!r}"
            assert n.executable in scripts, f"{label}: executable {n.executable!r} is not a console script " \
                                            f"in setup.py ({sorted(scripts)})"
            assert n.name, f"{label}: {n.executable} has no explicit name (parameter files are keyed by it)"


def test_config_files_exist_and_load(launches):
    named = {p for _l, r in launches for n in r.nodes for p in n.parameters if isinstance(p, Path)}
    assert named, "no launch file passes a config file"
    for path in sorted(named | set((REPO / "config").glob("*.yaml"))):
        assert path.is_file(), f"config file {path} does not exist"
        check_params_yaml(path)


def test_every_setup_has_the_stack(launches):
    for setup in SETUPS:
        data = check_params_yaml(REPO / "config" / f"{setup}.yaml")
        for node in ("controller_node", "policy_node", "bridge_node", "bag_recorder_node"):
            assert node in data, f"config/{setup}.yaml has no {node} section"


def test_lifecycle_nodes_are_configured_and_activated(launches):
    for label, result in launches:
        lifecycle = [n for n in result.nodes if n.lifecycle]
        for n in lifecycle:
            assert n.state == "active", f"{label}: lifecycle node {n.name} ends {n.state}, not active"
    default = dict(launches)["bringup[default]"]
    assert {n.name for n in default.nodes if n.lifecycle} == {"policy_node", "bridge_node", "controller_node"}


def _by_name(result):
    return {n.name: n for n in result.nodes}


def _inline(node) -> dict:
    out: dict = {}
    for p in node.parameters:
        if isinstance(p, dict):
            out.update(p)
    return out


def test_bringup_arguments_do_what_they_say(launches):
    results = dict(launches)
    args = results["bringup[default]"].arguments
    assert set(args) >= {"policy_path", "device", "robot", "config", "use_bridge", "record"}
    for name, arg in args.items():
        assert arg.description, f"launch argument {name} has no description"

    default = _by_name(results["bringup[default]"])
    assert set(default) == {"controller_node", "sim_camera_node", "arm_viz_node", "bridge_node", "policy_node"}
    assert _inline(default["policy_node"])["server_url"].startswith("ws://127.0.0.1:")
    port = yaml.safe_load((REPO / "config" / "sim_arm.yaml").read_text())["bridge_node"]["ros__parameters"]["port"]
    assert _inline(default["policy_node"])["server_url"] == f"ws://127.0.0.1:{port}"
    assert all(n.parameters[0] == REPO / "config" / "sim_arm.yaml" for n in default.values())

    no_bridge = _by_name(results["bringup[no_bridge]"])
    assert "bridge_node" not in no_bridge and _inline(no_bridge["policy_node"])["server_url"] == ""

    assert "bag_recorder_node" in _by_name(results["bringup[record]"])
    assert "bag_recorder_node" not in default

    so101 = _by_name(results["bringup[so101]"])
    assert "sim_camera_node" not in so101, "a real robot setup must not start simulated cameras"
    assert so101["controller_node"].parameters[0] == REPO / "config" / "so101.yaml"

    over = _by_name(results["bringup[overrides]"])
    assert _inline(over["bridge_node"]) == {"policy_path": "/data/ckpt", "device": "cpu"}
    with pytest.raises(LaunchError):
        evaluate_launch_file(BRINGUP, {"use_bridge": "maybe"})


def _node_cases(launches):
    """Unique (entry point, node name, namespace, parameter files, passed keys) over every launch."""
    scripts = console_scripts(REPO / "setup.py")
    cases: dict = {}
    for label, result in launches:
        for n in result.nodes:
            fqn = (n.namespace.rstrip("/") + "/" + n.name) if n.namespace != "/" else "/" + n.name
            passed: dict = {}
            files: list[Path] = []
            tmp_inline = []
            for p in n.parameters:
                if isinstance(p, Path):
                    passed.update(params_for_node(check_params_yaml(p), fqn))
                    files.append(p)
                else:
                    passed.update(p)
                    tmp_inline.append(p)
            key = (n.executable, fqn, tuple(files), yaml.safe_dump(tmp_inline))
            cases.setdefault(key, (label, scripts[n.executable], n, files, tmp_inline, passed))
    return list(cases.values())


@pytest.mark.ros
@pytest.mark.timeout(300)
def test_every_passed_parameter_is_declared_by_its_node(launches, tmp_path):
    cases = _node_cases(launches)

    def check(i_case):
        i, (label, entry, node, files, inline, passed) = i_case
        files = list(files)
        for j, d in enumerate(inline):  # what launch_ros does with a dict: a temp YAML under '/**'
            f = tmp_path / f"inline_{i}_{j}.yaml"
            f.write_text(yaml.safe_dump({"/**": {"ros__parameters": d}}))
            files.append(f)
        env = localhost_ros_env()  # a claimed domain per case: concurrent cases never see each other
        declared = declared_parameters(entry, node.name, node.namespace, files, env)
        undeclared = sorted(set(passed) - declared.names)
        undescribed = sorted(k for k in passed if not declared.descriptions.get(k))
        return label, node.name, undeclared, undescribed, declared.log

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(check, enumerate(cases)))
    problems = []
    for label, name, undeclared, undescribed, log in results:
        if undeclared:
            problems.append(f"{label}: {name} is given parameters it does not declare: {undeclared}")
        if undescribed:
            problems.append(f"{label}: {name} declares without a description: {undescribed}")
    assert not problems, "\n".join(problems)
    assert len(results) >= 6


# ------------------------------------------------------------------------- the checker itself can fail
BROKEN_LAUNCH = '''
from launch import LaunchDescription
from launch_ros.actions import LifecycleNode, Node
def generate_launch_description():
    cam = Node(package="lerobot_ros", executable="sim_camera_node", name="sim_camera_node", namespace="robot1",
               parameters=[{"rate_hz": 15.0, "frame_rate": 30}])
    policy = LifecycleNode(package="lerobot_ros", executable="policy_node", name="policy_node", namespace="")
    return LaunchDescription([cam, policy])
'''


def test_checker_catches_an_unactivated_node_and_a_wrong_signature(tmp_path):
    f = tmp_path / "broken.launch.py"
    f.write_text(BROKEN_LAUNCH)
    result = evaluate_launch_file(f)
    assert {n.name: n.state for n in result.nodes if n.lifecycle} == {"policy_node": "unconfigured"}
    assert result.nodes[0].namespace == "/robot1"
    f.write_text(BROKEN_LAUNCH.replace('name="policy_node", namespace=""', 'node_executable="x"'))
    with pytest.raises(TypeError):  # LifecycleNode without name/namespace, as launch_ros refuses it
        evaluate_launch_file(f)


@pytest.mark.ros
@pytest.mark.timeout(60)
def test_checker_catches_an_undeclared_parameter(tmp_path):
    f = tmp_path / "broken.launch.py"
    f.write_text(BROKEN_LAUNCH)
    cam = evaluate_launch_file(f).nodes[0]
    params = tmp_path / "cam.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": cam.parameters[0]}}))
    declared = declared_parameters(console_scripts(REPO / "setup.py")[cam.executable], cam.name, cam.namespace,
                                   [params], localhost_ros_env())
    assert "rate_hz" in declared.names and "frame_rate" not in declared.names
    assert declared.descriptions["rate_hz"]


def test_setups_carry_every_parameter_of_the_node_references():
    """config/<setup>.yaml is composed from the per-node references (config/<node>.yaml, owned by the nodes'
    authors): a parameter added there must appear, commented, in every setup."""
    for node in ("controller_node", "policy_node", "bridge_node"):
        ref = set(check_params_yaml(REPO / "config" / f"{node}.yaml")[node]["ros__parameters"])
        ref = {k for k in ref if not k.startswith("cameras.")}  # per camera: the setups name their own cameras
        for setup in SETUPS:
            path = REPO / "config" / f"{setup}.yaml"
            mine = set(check_params_yaml(path)[node]["ros__parameters"])
            assert not ref - mine, f"{path.name}: {node} lacks {sorted(ref - mine)} (see config/{node}.yaml)"
            for line in path.read_text().splitlines():
                if line.startswith("    ") and not line.strip().startswith(("#", "-")) and ":" in line:
                    assert "#" in line, f"{path.name}: parameter line without a comment: {line.strip()}"

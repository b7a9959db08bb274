"""The whole stack as separate processes in one private ROS domain: what `lerobot-ros-demo` runs and what the
end-to-end drills start, kill and restart (no rclpy import here; stack_monitor.py drives it over ROS).

Processes (each `python -m <module> --ros-args -r __node:=<name> --params-file <setup yaml> --params-file
<overrides>`, exactly the parameters bringup.launch.py gives them):

  controller   lerobot_control_ros.controller_node   the only process that commands the (simulated) arm
  camera       lerobot_control_ros.sim_camera_node   simulated cameras rendering the arm (demo/sim setups only)
  bridge       lerobot_serve_ros.bridge_node         loads the policy once, serves websocket clients
  policy       lerobot_serve_ros.policy_node         cameras + joints -> chunks, through the bridge (server_url)
  viz          lerobot_control_ros.arm_viz_node      rviz mirror: arm + predicted chunk as standard messages
  recorder     lerobot_control_ros.bag_recorder_node the configured topics -> one rosbag2 MCAP folder

The setup YAML (config/sim_arm.yaml by default) holds one section per node; the per-run values the launch file
would pass as arguments (policy path, bridge port, bag folder) go in a small overrides YAML written to the output
folder, later on the command line so they win, the same way launch_ros passes dict parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from lerobot_serve_ros.ros_env import ManagedProcess, localhost_ros_env, python_module_cmd

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETUP = "sim_arm"


@dataclass(frozen=True)
class Component:
    module: str
    node: str
    lifecycle: bool


COMPONENTS = {
    "controller": Component("lerobot_control_ros.controller_node", "controller_node", True),
    "camera": Component("lerobot_control_ros.sim_camera_node", "sim_camera_node", False),
    "recorder": Component("lerobot_control_ros.bag_recorder_node", "bag_recorder_node", False),
    "viz": Component("lerobot_control_ros.arm_viz_node", "arm_viz_node", False),
    "bridge": Component("lerobot_serve_ros.bridge_node", "bridge_node", True),
    "policy": Component("lerobot_serve_ros.policy_node", "policy_node", True),
}


def config_dir() -> Path:
    """config/ of the source tree, else the installed share/lerobot_ros/config."""
    here = REPO_ROOT / "config"
    if here.is_dir():
        return here
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("lerobot_ros")) / "config"


def setup_yaml(name_or_path: str | Path) -> Path:
    """'sim_arm' -> config/sim_arm.yaml; a path is returned as is (checked)."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = config_dir() / f"{p}.yaml"
    if not p.is_file():
        raise FileNotFoundError(f"setup config {p} not found (setups: {[f.stem for f in config_dir().glob('*.yaml')]})")
    return p


def load_params(path: Path) -> dict[str, dict]:
    """node name -> ros__parameters of a ROS params YAML (keys without a leading '/')."""
    data = yaml.safe_load(path.read_text()) or {}
    return {k.strip("/"): (v or {}).get("ros__parameters", {}) for k, v in data.items()}


@dataclass
class StackConfig:
    setup: Path  # the per-setup params YAML
    out_dir: Path  # logs, overrides, bag, plot
    checkpoint: Path  # policy checkpoint folder the bridge (or the policy node) loads
    port: int = 8000  # bridge websocket port
    bridge: bool = True  # False: the policy node loads the model itself, no websocket server
    record: bool = True
    camera: bool = True  # simulated cameras (sim setups); a real robot has camera drivers instead
    viz: bool = True  # the rviz mirror of arm and chunk (arm_viz_node)

    def components(self) -> list[str]:
        names = ["controller"] + (["camera"] if self.camera else []) + (["viz"] if self.viz else [])
        names += ["recorder"] if self.record else []
        return names + (["bridge"] if self.bridge else []) + ["policy"]


class Stack:
    """Processes of one stack; start/stop/kill by component name. The env (and so the domain) is shared."""

    def __init__(self, cfg: StackConfig, env: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.env = env or localhost_ros_env()
        self.procs: dict[str, ManagedProcess] = {}
        self.starts: dict[str, int] = {}
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        (cfg.out_dir / "logs").mkdir(exist_ok=True)
        self.params = load_params(cfg.setup)
        self.overrides_file = cfg.out_dir / "overrides.yaml"
        self.overrides_file.write_text(yaml.safe_dump(self.overrides(), sort_keys=False))

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.cfg.port}"

    @property
    def bag_path(self) -> Path:
        return self.cfg.out_dir / "bag"

    def overrides(self) -> dict:
        """What `ros2 launch lerobot_ros bringup.launch.py policy_path:=... use_bridge:=... record:=...` sets."""
        ckpt = str(self.cfg.checkpoint)
        o: dict[str, dict] = {"bridge_node": {"policy_path": ckpt, "port": int(self.cfg.port)},
                              "bag_recorder_node": {"output": str(self.bag_path)}}
        if self.cfg.bridge:
            o["policy_node"] = {"server_url": self.url, "policy_path": ""}
        else:
            o["policy_node"] = {"server_url": "", "policy_path": ckpt}
        return {name: {"ros__parameters": p} for name, p in o.items()}

    def process_env(self, name: str) -> dict[str, str]:
        """The model's processes get one CPU thread for torch unless OMP_NUM_THREADS says otherwise: torch's
        default (one per core) spins on every core, and on a small machine (2 cores in CI) that starves the 500 Hz
        loop and slows inference itself several-fold when anything else runs (measured here: tiny ACT 50-70 ms
        with 1 thread vs 250 ms median / 750 ms p90 with 2 under load)."""
        env = dict(self.env)
        if name in ("bridge", "policy"):
            env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def command(self, name: str) -> list[str]:
        c = COMPONENTS[name]
        return python_module_cmd(c.module, "--ros-args", "-r", f"__node:={c.node}", "--params-file",
                                 str(self.cfg.setup), "--params-file", str(self.overrides_file))

    def start(self, name: str) -> ManagedProcess:
        if name in self.procs and self.procs[name].alive():
            raise RuntimeError(f"{name} is already running (pid {self.procs[name].pid})")
        n = self.starts[name] = self.starts.get(name, 0) + 1
        log = self.cfg.out_dir / "logs" / (f"{name}.log" if n == 1 else f"{name}.{n}.log")
        self.procs[name] = ManagedProcess(self.command(name), self.process_env(name), log, name).start()
        return self.procs[name]

    def alive(self, name: str) -> bool:
        return name in self.procs and self.procs[name].alive()

    def stop(self, name: str, timeout: float = 10.0) -> int | None:
        return self.procs[name].stop(timeout) if name in self.procs else None

    def kill9(self, name: str) -> None:
        self.procs[name].kill9()

    def stop_all(self) -> dict[str, int | None]:
        """Policy side first (no new chunks), controller after, the recorder last so it sees everything."""
        order = ["policy", "bridge", "camera", "viz", "controller", "recorder"]
        return {n: self.stop(n) for n in order if n in self.procs}

    def log_tails(self, n: int = 40) -> str:
        return "\n".join(f"----- {k} (pid {p.pid}) -----\n{p.log_tail(n)}" for k, p in self.procs.items())

"""Bring up a robot: controller node + policy node (+ websocket bridge, + simulated cameras, + bag recorder).

    ros2 launch lerobot_ros bringup.launch.py                                # simulated arm, tiny demo policy
    ros2 launch lerobot_ros bringup.launch.py robot:=so101 policy_path:=/path/to/checkpoint device:=cuda
    ros2 launch lerobot_ros bringup.launch.py config:=/my/robot.yaml use_bridge:=false record:=true

Arguments
  robot        setup name: config/<robot>.yaml (sim_arm | so101 | arx5)                     default sim_arm
  config       a params YAML instead of the robot's (one section per node)                   default ''
  policy_path  checkpoint folder / hub id; overrides the YAML's                              default ''
  device       torch device (auto | cpu | cuda | cuda:N | mps); overrides the YAML's         default ''
  use_bridge   true: bridge_node loads the policy and serves websockets, and policy_node uses it through
               server_url (one model in memory); false: policy_node loads the policy itself  default true
  record       true: bag_recorder_node records the YAML's topics to one rosbag2 MCAP folder default false

Which nodes start: controller_node always; sim_camera_node when the YAML has a `sim_camera_node` section (the
simulated setup; a real robot runs its camera drivers); arm_viz_node (rviz mirror of the arm and the predicted
chunk) when the YAML has an `arm_viz_node` section; bridge_node with use_bridge; policy_node always;
bag_recorder_node with record. Lifecycle nodes are configured and activated here with the standard launch_ros
pattern (ChangeState events + OnStateTransition handlers): controller_node configure (connects the hardware, holds)
-> activate; bridge_node configure (loads the policy) -> activate -> policy_node configure (it connects to the
bridge) -> activate. The controller is configured and active but NOT started by the launch (IDLE, holding): the
arm moves only after an operator command (`ros2 service call /controller/start std_srvs/srv/Trigger`, or the
teleop_keyboard tool).
"""

import os

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from lerobot_control_ros.launch_lifecycle import activate_on_inactive, change_state, is_true, on_state

PACKAGE = "lerobot_ros"


def _setup(context):
    share = FindPackageShare(PACKAGE).perform(context)
    robot = LaunchConfiguration("robot").perform(context)
    config = LaunchConfiguration("config").perform(context) or os.path.join(share, "config", robot + ".yaml")
    policy_path = LaunchConfiguration("policy_path").perform(context)
    device = LaunchConfiguration("device").perform(context)
    use_bridge = is_true(LaunchConfiguration("use_bridge").perform(context))
    record = is_true(LaunchConfiguration("record").perform(context))
    with open(config) as f:
        sections = {k.strip("/"): (v or {}).get("ros__parameters", {}) for k, v in (yaml.safe_load(f) or {}).items()}

    # launch arguments override the YAML only when given (an empty argument keeps the YAML's value)
    model = {}
    if policy_path:
        model["policy_path"] = policy_path
    if device:
        model["device"] = device

    controller = LifecycleNode(package=PACKAGE, executable="controller_node", name="controller_node", namespace="",
                               parameters=[config], output="screen")
    actions = [controller,
               activate_on_inactive(controller),
               change_state(controller, Transition.TRANSITION_CONFIGURE)]
    if "sim_camera_node" in sections:
        actions.append(Node(package=PACKAGE, executable="sim_camera_node", name="sim_camera_node", namespace="",
                            parameters=[config], output="screen"))
    if "arm_viz_node" in sections:
        actions.append(Node(package=PACKAGE, executable="arm_viz_node", name="arm_viz_node", namespace="",
                            parameters=[config], output="screen"))
    if record:
        actions.append(Node(package=PACKAGE, executable="bag_recorder_node", name="bag_recorder_node", namespace="",
                            parameters=[config], output="screen"))

    if use_bridge:
        port = int(sections.get("bridge_node", {}).get("port", 8000))
        policy_params = [config, {"server_url": "ws://127.0.0.1:%d" % port}]
        bridge_params = [config] + ([model] if model else [])
    else:
        policy_params = [config, dict(model, server_url="")]
    policy = LifecycleNode(package=PACKAGE, executable="policy_node", name="policy_node", namespace="",
                           parameters=policy_params, output="screen")
    actions.append(policy)
    actions.append(activate_on_inactive(policy))
    if use_bridge:
        bridge = LifecycleNode(package=PACKAGE, executable="bridge_node", name="bridge_node", namespace="",
                               parameters=bridge_params, output="screen")
        actions.append(bridge)
        actions.append(activate_on_inactive(bridge))
        actions.append(on_state(bridge, "active", [change_state(policy, Transition.TRANSITION_CONFIGURE)]))
        actions.append(change_state(bridge, Transition.TRANSITION_CONFIGURE))
    else:
        actions.append(change_state(policy, Transition.TRANSITION_CONFIGURE))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("robot", default_value="sim_arm", description="setup name: config/<robot>.yaml"),
        DeclareLaunchArgument("config", default_value="", description="params YAML used instead of the robot's"),
        DeclareLaunchArgument("policy_path", default_value="", description="checkpoint folder or hub id (overrides "
                                                                           "the YAML)"),
        DeclareLaunchArgument("device", default_value="", description="torch device (overrides the YAML)"),
        DeclareLaunchArgument("use_bridge", default_value="true", choices=["true", "false"],
                              description="serve the policy over websockets from bridge_node and let policy_node "
                                          "use it (one model in memory)"),
        DeclareLaunchArgument("record", default_value="false", choices=["true", "false"],
                              description="record the YAML's bag_recorder_node topics to a rosbag2 MCAP folder"),
        OpaqueFunction(function=_setup),
    ])

"""Hardware the controller can command. `make_hardware(kind, ...)` picks one; each lives in its own module:

  sim_arm.SimArm            simulated arm (per-joint first-order dynamics with limits), the default
  topic_output.TopicOutput  ros2_control-style: Float64MultiArray commands out, JointState feedback in
  lerobot_robot.LeRobotHardware  any LeRobot Robot, built with lerobot's make_robot_from_config from --robot.* flags
"""

from lerobot_control_ros.hardware.base import Hardware

__all__ = ["Hardware"]

"""The interface between the control loop and a robot (no rclpy import)."""

from __future__ import annotations

import abc

import numpy as np


class Hardware(abc.ABC):
    """Called from the control loop thread only (connect/disconnect from the node's thread, before/after the loop).

    Units are the hardware's own (radians for the simulated arm and ros2_control; whatever the LeRobot robot uses),
    the controller's limits and home pose must be given in the same units.
    """

    joint_names: list[str]

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities) in joint_names order; velocities may be estimates."""

    @abc.abstractmethod
    def write(self, positions: np.ndarray) -> None:
        """Position command in joint_names order."""

    @abc.abstractmethod
    def damp(self) -> None:
        """Enter the hardware's damping / torque-off-with-damping mode; no further commands are sent."""

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    @property
    def is_ready(self) -> bool:
        """True once read() returns real measurements (topic feedback may take a moment to arrive)."""
        return True

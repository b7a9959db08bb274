"""Operator keyboard for the controller: space start/pause/resume, r reset, q safe stop, Esc e-stop.

    python -m lerobot_control_ros.keyboard            (ros2 run lerobot_ros teleop_keyboard)

It only calls the controller's std_srvs/Trigger services (so it can run on any machine of the ROS graph) and shows
the controller's status line. The key -> service decision (`service_for_key`) and the dispatch (`KeyDispatcher`) are
plain Python, tested without a terminal; only `main()` touches the tty and rclpy.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from typing import Callable

ESC = "\x1b"
HELP = "space: start / pause / resume   r: reset (home)   q: safe stop   Esc: EMERGENCY STOP   Ctrl-C: quit tool"


def service_for_key(key: str, state_name: str | None) -> str | None:
    """The controller service a key asks for, given the controller state (None: key not bound).

    Space toggles: IDLE -> start, RUNNING -> pause, PAUSED -> resume; in other states it asks for pause (harmless:
    refused with a reason where it makes no sense, e.g. EMERGENCY_STOP)."""
    if key == " ":
        return {"IDLE": "start", "RUNNING": "pause", "PAUSED": "resume"}.get(state_name or "", "pause")
    return {"r": "reset", "R": "reset", "q": "stop", "Q": "stop", ESC: "estop"}.get(key)


class KeyDispatcher:
    """Turns keys into service calls. `call(name) -> (success, message)` is injected (rclpy in main, fake in tests)."""

    def __init__(self, call: Callable[[str], tuple[bool, str]], state: Callable[[], str | None]):
        self.call = call
        self.state = state
        self.log: list[tuple[str, str, bool, str]] = []  # (key, service, success, message)

    def handle(self, key: str) -> tuple[str, bool, str] | None:
        service = service_for_key(key, self.state())
        if service is None:
            return None
        ok, message = self.call(service)
        self.log.append((key, service, ok, message))
        return service, ok, message


def read_key(fd: int, timeout: float = 0.1) -> str | None:
    """One key from a raw-mode tty; a lone Esc is ESC, an escape sequence (arrow keys...) is swallowed."""
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return None
    ch = os.read(fd, 1).decode(errors="replace")
    if ch == ESC:
        more, _, _ = select.select([fd], [], [], 0.03)
        if more:
            os.read(fd, 16)  # the rest of an escape sequence: not the Esc key
            return None
    return ch


def main(args: list[str] | None = None) -> int:
    import rclpy
    from lerobot_ros_msgs.msg import ControllerStatus
    from rclpy.executors import SingleThreadedExecutor
    from std_srvs.srv import Trigger

    from lerobot_serve_ros.ros_common import STATUS_QOS

    if not sys.stdin.isatty():
        print("controller keyboard needs a terminal (stdin is not a tty)", file=sys.stderr)
        return 2
    rclpy.init(args=sys.argv if args is None else args)
    node = rclpy.create_node("controller_keyboard")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    latest: dict[str, ControllerStatus] = {}
    node.create_subscription(ControllerStatus, "controller/status", lambda m: latest.__setitem__("s", m), STATUS_QOS)
    clients = {name: node.create_client(Trigger, f"controller/{name}")
               for name in ("start", "pause", "resume", "reset", "stop", "estop")}

    def call(name: str) -> tuple[bool, str]:
        cli = clients[name]
        if not cli.wait_for_service(timeout_sec=2.0):
            return False, f"controller/{name} not available (is controller_node running in this namespace?)"
        fut = cli.call_async(Trigger.Request())
        executor.spin_until_future_complete(fut, timeout_sec=3.0)
        if not fut.done():
            return False, f"controller/{name}: no reply within 3 s"
        return fut.result().success, fut.result().message

    def state() -> str | None:
        s = latest.get("s")
        return s.state_name if s is not None else None

    dispatcher = KeyDispatcher(call, state)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    print(HELP, flush=True)
    try:
        tty.setcbreak(fd)
        last_line = ""
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.0)
            key = read_key(fd, timeout=0.05)
            if key is not None:
                res = dispatcher.handle(key)
                if res is not None:
                    service, ok, message = res
                    print(f"\r\n{service}: {'ok' if ok else 'REFUSED'}: {message}", flush=True)
            s = latest.get("s")
            line = ("no controller/status yet" if s is None else
                    f"{s.state_name:<14} {'HOLD ' if s.holding else '     '}queue {s.queue_time_s:5.2f}s "
                    f"loop {s.loop_rate_hz:6.1f}Hz p99 {s.period_p99_ms:5.2f}ms misses {s.deadline_misses} | {s.reason}")
            if line != last_line:
                print("\r" + line[:150].ljust(150), end="", flush=True)
                last_line = line
    except KeyboardInterrupt:
        pass
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        print()
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

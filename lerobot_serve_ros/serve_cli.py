"""`lerobot-serve`: serve a LeRobot policy checkpoint over the openpi websocket protocol (no ROS needed).

    lerobot-serve --policy.path=DIR_OR_HUB_ID [--policy.device=cuda] [--policy.<any config field>=...]
                  [--host=0.0.0.0] [--port=8000] [--default_prompt="pick up the cube"] [--record=DIR]
                  [--max_clients=8] [--max_msg_size=16777216] [--auth_token=TOKEN] [--warmup=true]
                  [--fps=30] [--log_level=INFO]

Flags are draccus-style like lerobot's own scripts (`--x=y` or `--x y`; `--max-clients` spellings work too).
Every `--policy.<field>` other than path/device is handed to lerobot's config parser as a CLI override
(e.g. `--policy.n_action_steps=20`, `--policy.rtc_config.enabled=true`). The auth token may also come from the
LEROBOT_SERVE_AUTH_TOKEN environment variable (keeps it out of `ps`).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

import draccus

log = logging.getLogger("lerobot_serve")

AUTH_ENV = "LEROBOT_SERVE_AUTH_TOKEN"


@dataclass
class PolicyArgs:
    path: str | None = None  # checkpoint folder or Hugging Face hub id (required)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps


@dataclass
class ServeArgs:
    policy: PolicyArgs = field(default_factory=PolicyArgs)
    host: str = "0.0.0.0"  # listen address; 127.0.0.1 keeps it on this machine
    port: int = 8000  # 0 picks a free port (logged)
    default_prompt: str | None = None  # task text for language policies when a request has none
    record: str | None = None  # write every request/response to this new rosbag2 (MCAP) folder
    max_clients: int = 8  # further connections get HTTP 503 "server full"
    max_msg_size: int = 16 * 1024 * 1024  # bytes per incoming frame
    auth_token: str | None = None  # require "Authorization: Api-Key <token>"; default $LEROBOT_SERVE_AUTH_TOKEN
    warmup: bool = True  # one inference at load so the first client does not pay for it
    fps: float | None = None  # policy control rate (metadata + RTC step conversion); default from the checkpoint
    log_level: str = "INFO"  # DEBUG | INFO | WARNING | ERROR


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(args for ServeArgs, lerobot policy-config overrides). Hyphenated flag names become underscored."""
    own, overrides = [], []
    it = iter(range(len(argv)))
    for i in it:
        arg = argv[i]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + eq + value
            if name.startswith("policy.") and name not in ("policy.path", "policy.device"):
                if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                    arg += "=" + argv[i + 1]
                    next(it, None)
                overrides.append(arg)
                continue
        own.append(arg)
    return own, overrides


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, overrides = split_args(argv)
    args = draccus.parse(ServeArgs, args=own, prog="lerobot-serve")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # our server logs connects/refusals itself
    if not args.policy.path:
        print("lerobot-serve: --policy.path is required (a checkpoint folder or hub id)", file=sys.stderr)
        return 2

    from lerobot_serve_ros.runtime import PolicyRuntime, RuntimeConfig
    from lerobot_serve_ros.server import PolicyServer, ServerConfig

    try:
        runtime = PolicyRuntime(RuntimeConfig(path=args.policy.path, device=args.policy.device,
                                              default_prompt=args.default_prompt, overrides=overrides,
                                              warmup=args.warmup, fps=args.fps))
    except (OSError, ValueError) as exc:  # missing folder, unknown hub id, offline, bad override
        log.error("cannot load policy %s: %s", args.policy.path, exc)
        return 2
    recorder = None
    if args.record:
        from lerobot_serve_ros.recorder import BagRecorder

        recorder = BagRecorder(args.record, runtime.metadata())
    token = args.auth_token or os.environ.get(AUTH_ENV) or None
    server = PolicyServer(runtime, ServerConfig(host=args.host, port=args.port, max_clients=args.max_clients,
                                                max_msg_size=args.max_msg_size, auth_token=token),
                          on_exchange=recorder)
    try:
        server.run()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    finally:
        if recorder is not None:
            recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

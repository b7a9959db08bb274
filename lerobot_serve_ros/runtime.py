"""PolicyRuntime: one loaded LeRobot policy behind a lock, turning numpy observations into whole action chunks.

Loads through lerobot's own machinery, the way `lerobot-eval` and lerobot's async policy server do it:
`PreTrainedConfig.from_pretrained(path, cli_overrides=...)`, `get_policy_class(type).from_pretrained(path,
config=cfg)` (make_policy would insist on dataset metadata), and `make_pre_post_processors(cfg, pretrained_path)`
with the saved processors and the device step overridden to the runtime's device. So a user's checkpoint folder (or
hub id) and our tiny test checkpoints take the identical path.

Policies and processors keep state and are not thread-safe, hence one lock around everything touching the device.
All torch work (loading included) also runs on ONE dedicated inference thread (`executor`), whoever calls `infer`:
each thread entering torch's CPU kernels gets its own OpenMP team, whose idle threads spin; two teams on a 2-core
machine slowed a tiny 224 px ACT from ~40 to ~55 ms here, for good, once a second thread had touched torch.
No rclpy here: the websocket server, the ROS policy node and the bridge all use this module.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
STATE_KEY = "observation.state"
IMAGE_PREFIX = "observation.images."
SIDECAR_NAME = "lerobot_ros.json"  # same name make_checkpoint writes; optional for user checkpoints
# Policies whose lerobot implementation has real-time chunking (RTCConfig + predict_action_chunk kwargs).
RTC_POLICY_TYPES = ("smolvla", "pi0", "pi05")


def release_device_memory() -> None:
    """After dropping the last reference to a runtime (lifecycle cleanup): give its memory back now, so a
    reconfigure with another checkpoint does not briefly need room for two models on the GPU."""
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ObservationError(ValueError):
    """The observation cannot be fed to the policy; the message names the key and what is wrong."""


@dataclass
class RuntimeConfig:
    """How to load a policy. `overrides` are draccus-style `--policy.x=y` strings, as lerobot's scripts take them."""

    path: str
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    default_prompt: str | None = None  # task text for policies that take one, when a request has none
    overrides: list[str] = field(default_factory=list)
    warmup: bool = True
    fps: float | None = None  # control rate the policy was trained at; default: the checkpoint's lerobot_ros.json


def resolve_device(device: str) -> str:
    import torch

    if device and device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def policy_cli_overrides(overrides: list[str]) -> list[str]:
    """`--policy.x=y` -> `--x=y` (lerobot's own parser helper); bare `--x=y` strings pass through unchanged."""
    from lerobot.configs import parser

    prefixed = [o for o in overrides if o.startswith("--policy.")]
    bare = [o for o in overrides if not o.startswith("--policy.")]
    for o in bare:
        if not o.startswith("--"):
            raise ValueError(f"override {o!r} must look like --policy.<field>=<value>")
    return (parser.get_cli_overrides("policy", prefixed) or []) + bare


def _as_array(key: str, value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            raise ObservationError(f"{key}: ragged list cannot be an array ({exc})") from None
    else:
        raise ObservationError(f"{key}: expected a numpy array, got {type(value).__name__}")
    if arr.dtype.kind not in "biuf":
        raise ObservationError(f"{key}: dtype {arr.dtype} is not numeric")
    return arr


class PolicyRuntime:
    """A loaded policy. `infer` is safe to call from any thread (serialised by `lock`)."""

    def __init__(self, cfg: RuntimeConfig):
        self.cfg = cfg
        self.lock = threading.Lock()
        # The one thread that loads and runs the model (see module docstring); FIFO across all callers.
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-infer")
        self._infer_ident = self.executor.submit(threading.get_ident).result()
        try:
            self.executor.submit(self._load).result()
        except BaseException:
            self.executor.shutdown(wait=False)
            raise
        if cfg.warmup:
            self.warmup()

    def _load(self) -> None:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.configs.types import FeatureType
        from lerobot.policies import get_policy_class, make_pre_post_processors

        cfg = self.cfg
        self.device = resolve_device(cfg.device)
        t0 = time.perf_counter()
        path = str(cfg.path)
        overrides = policy_cli_overrides(cfg.overrides)
        overrides = [o for o in overrides if not o.startswith("--device=")] + [f"--device={self.device}"]
        if not Path(path).exists() and (path.startswith(("/", ".", "~")) or path.count("/") != 1):
            raise FileNotFoundError(f"no checkpoint folder at {path} (and it is not a hub id like 'user/model')")
        if Path(path).exists() and not (Path(path) / "config.json").exists():
            raise FileNotFoundError(f"{path} is not a LeRobot checkpoint folder (no config.json)")
        log.info("loading policy from %s on %s (overrides: %s)", path, self.device, overrides or "none")
        self.policy_cfg = PreTrainedConfig.from_pretrained(path, cli_overrides=overrides)
        self.policy_cfg.pretrained_path = Path(path) if Path(path).exists() else path
        policy = get_policy_class(self.policy_cfg.type).from_pretrained(path, config=self.policy_cfg)
        policy.to(self.device)
        policy.eval()
        policy.reset()
        self.policy = policy
        device_override = {"device": self.device}
        self.preprocessor, self.postprocessor = make_pre_post_processors(
            self.policy_cfg,
            pretrained_path=path,
            preprocessor_overrides={"device_processor": device_override},
            postprocessor_overrides={"device_processor": device_override},
        )
        self._normalizer = next((s for s in self.preprocessor.steps if hasattr(s, "_normalize_action")), None)
        self.load_s = time.perf_counter() - t0

        sidecar = self._read_sidecar(path)
        feats = self.policy_cfg.input_features
        self.image_shapes: dict[str, tuple[int, int, int]] = {
            k: (int(f.shape[1]), int(f.shape[2]), int(f.shape[0]))
            for k, f in feats.items() if f.type is FeatureType.VISUAL
        }
        self.state_key = STATE_KEY if STATE_KEY in feats else None
        self.state_dim = int(feats[STATE_KEY].shape[0]) if self.state_key else 0
        # Every non-image numeric input (the state, an environment state, ...): float vectors of a fixed shape.
        self.vector_shapes: dict[str, tuple[int, ...]] = {
            k: tuple(int(d) for d in f.shape) for k, f in feats.items()
            if f.type in (FeatureType.STATE, FeatureType.ENV)
        }
        action_feat = self.policy_cfg.output_features["action"]
        self.action_dim = int(action_feat.shape[0])
        names = getattr(self.policy_cfg, "action_feature_names", None) or sidecar.get("action_names")
        self.action_names = list(names) if names and len(names) == self.action_dim else [
            f"action_{i}" for i in range(self.action_dim)]
        # ACT and the VLAs return chunk_size rows, Diffusion n_action_steps; warmup() measures it.
        self.chunk_size = int(getattr(self.policy_cfg, "chunk_size", None)
                              or getattr(self.policy_cfg, "n_action_steps", 0))
        self.fps = cfg.fps if cfg.fps is not None else sidecar.get("fps")
        self.policy_type = self.policy_cfg.type
        self.supports_rtc = self.policy_type in RTC_POLICY_TYPES and hasattr(policy, "_rtc_enabled")
        self.takes_prompt = any("tokenizer" in type(s).__name__.lower() for s in self.preprocessor.steps)
        self.n_infer = 0
        log.info("loaded %s (%d params) in %.2f s: images %s, state %d, action %d, chunk %d, rtc %s, prompt %s",
                 self.policy_type, sum(p.numel() for p in policy.parameters()), self.load_s,
                 {k.removeprefix(IMAGE_PREFIX): v for k, v in self.image_shapes.items()}, self.state_dim,
                 self.action_dim, self.chunk_size, self.rtc_active, self.takes_prompt)

    @staticmethod
    def _read_sidecar(path: str) -> dict:
        p = Path(path) / SIDECAR_NAME
        if not p.exists():
            return {}
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("ignoring unreadable %s: %s", p, exc)
            return {}

    @property
    def rtc_active(self) -> bool:
        return bool(self.supports_rtc and self.policy._rtc_enabled())

    def dummy_observation(self) -> dict[str, np.ndarray]:
        """A valid observation of the right shapes (mid-grey images, zero state): warm-up, tests, benchmarks."""
        obs: dict[str, np.ndarray] = {k: np.full(s, 128, np.uint8) for k, s in self.image_shapes.items()}
        for key, shape in self.vector_shapes.items():
            obs[key] = np.zeros(shape, np.float32)
        return obs

    def warmup(self) -> float:
        """One inference at load (kernels, allocator); also learns the true chunk length (ACT returns chunk_size
        rows whatever n_action_steps says, Diffusion n_action_steps)."""
        t0 = time.perf_counter()
        rows = self.infer(self.dummy_observation())["actions"].shape[0]
        dt = time.perf_counter() - t0
        self.policy.reset()
        if rows != self.chunk_size:
            log.info("policy returns chunks of %d actions (config suggested %d)", rows, self.chunk_size)
            self.chunk_size = rows
        log.info("warm-up inference on %s took %.1f ms", self.device, dt * 1e3)
        return dt

    def metadata(self) -> dict:
        return {
            "protocol_version": PROTOCOL_VERSION,
            "policy_type": self.policy_type,
            "policy_path": str(self.cfg.path),
            "image_keys": list(self.image_shapes),
            "image_shapes": {k: list(v) for k, v in self.image_shapes.items()},
            "image_dtype": "uint8",
            "state_key": self.state_key,
            "state_dim": self.state_dim,
            "state_dtype": "float32",
            "vector_shapes": {k: list(v) for k, v in self.vector_shapes.items()},
            "action_dim": self.action_dim,
            "action_names": list(self.action_names),
            "chunk_size": self.chunk_size,
            "fps": self.fps,
            "device": self.device,
            "supports_rtc": bool(self.supports_rtc),
            "rtc_enabled": self.rtc_active,
            "takes_prompt": bool(self.takes_prompt),
            "default_prompt": self.cfg.default_prompt,
        }

    def validate(self, obs: Any) -> dict[str, np.ndarray]:
        """Check keys, shapes and dtypes against the policy's input features; return the arrays the policy needs."""
        if not isinstance(obs, dict):
            raise ObservationError(f"observation must be a dict of arrays, got {type(obs).__name__}")
        needed = [*self.image_shapes, *self.vector_shapes]
        missing = [k for k in needed if k not in obs]
        if missing:
            raise ObservationError(f"missing key(s) {missing}; the policy needs {needed}")
        out: dict[str, np.ndarray] = {}
        for key, shape in self.image_shapes.items():
            img = _as_array(key, obs[key])
            if img.dtype != np.uint8:
                raise ObservationError(f"{key}: dtype {img.dtype}, expected uint8 HWC")
            if img.shape != shape:
                raise ObservationError(f"{key}: shape {list(img.shape)}, expected {list(shape)} (H, W, 3) uint8")
            out[key] = img
        for key, shape in self.vector_shapes.items():
            vec = _as_array(key, obs[key])
            if vec.dtype.kind == "b":
                raise ObservationError(f"{key}: dtype bool, expected float32")
            if vec.shape != shape:
                raise ObservationError(f"{key}: shape {list(vec.shape)}, expected {list(shape)}")
            vec = vec.astype(np.float32, copy=False)
            if not np.all(np.isfinite(vec)):
                raise ObservationError(f"{key}: contains NaN or inf")
            out[key] = vec
        return out

    def _leftover_tensor(self, left: Any):
        """prev_chunk_left_over arrives in action units (what the robot executes); RTC wants normalised model space."""
        import torch

        arr = np.array(_as_array("prev_chunk_left_over", left), dtype=np.float32)  # a private copy (wire: read-only)
        if arr.ndim != 2 or arr.shape[1] != self.action_dim:
            raise ObservationError(f"prev_chunk_left_over: shape {list(arr.shape)}, expected [N, {self.action_dim}]")
        t = torch.from_numpy(arr).to(self.device).unsqueeze(0)
        if self._normalizer is not None:
            t = self._normalizer._normalize_action(t, inverse=False)
        return t

    def infer(self, obs: dict[str, Any], prompt: str | None = None, inference_delay: float | None = None,
              prev_chunk_left_over: np.ndarray | None = None) -> dict:
        """Whole action chunk for one observation. `inference_delay` is in seconds (measured by the caller);
        RTC policies get it as a number of control steps, ceil(delay * fps). Callable from any thread: the work
        is handed to the inference thread (callers already on it, like PolicyServer, run it directly)."""
        if threading.get_ident() == self._infer_ident:
            return self._infer(obs, prompt, inference_delay, prev_chunk_left_over)
        return self.executor.submit(self._infer, obs, prompt, inference_delay, prev_chunk_left_over).result()

    def _infer(self, obs: dict[str, Any], prompt: str | None, inference_delay: float | None,
               prev_chunk_left_over: np.ndarray | None) -> dict:
        import torch

        t_start = time.perf_counter()
        arrays = self.validate(obs)
        if inference_delay is not None:
            try:
                inference_delay = float(inference_delay)
            except (TypeError, ValueError):
                raise ObservationError(f"inference_delay: expected seconds as a number, got {inference_delay!r}")
            if not math.isfinite(inference_delay) or inference_delay < 0:
                raise ObservationError(f"inference_delay: {inference_delay} is not a non-negative number of seconds")
        if prompt is not None and not isinstance(prompt, str):
            raise ObservationError(f"prompt: expected a string, got {type(prompt).__name__}")
        task = prompt if prompt else (self.cfg.default_prompt or "")
        use_rtc = self.rtc_active and (inference_delay is not None or prev_chunk_left_over is not None)
        leftover_rows = None if prev_chunk_left_over is None else int(np.shape(prev_chunk_left_over)[0])
        batch: dict[str, Any] = {}
        for key, arr in arrays.items():
            # Arrays decoded off the wire are read-only views of the frame (codec.py): read them, never write them
            # (torch.from_numpy would also warn on them). Images: HWC uint8 -> float CHW in [0, 1] in one pass,
            # bitwise equal to .to(float32).div_(255); vectors (a few floats): a private copy processors may modify.
            if key in self.image_shapes:
                batch[key] = torch.from_numpy(np.divide(arr, np.float32(255.0), dtype=np.float32)).permute(2, 0, 1)
            else:
                batch[key] = torch.from_numpy(np.array(arr, dtype=np.float32))
        batch["task"] = task
        batch["robot_type"] = ""
        with self.lock:
            t_locked = time.perf_counter()
            # RTC guidance needs autograd inside predict_action_chunk; inference_mode would break it.
            grad_ctx = torch.no_grad() if use_rtc else torch.inference_mode()
            with grad_ctx:
                processed = self.preprocessor(batch)
                n_obs = int(getattr(self.policy_cfg, "n_obs_steps", 1) or 1)
                if self.policy_type == "diffusion":
                    # Stateless serving: the one observation stands for the whole history window. Diffusion's
                    # predict_action_chunk reads (B, n_obs_steps, ...) for every observation key, n_obs_steps=1 too.
                    for k, v in list(processed.items()):
                        if k.startswith("observation.") and isinstance(v, torch.Tensor):
                            processed[k] = v.unsqueeze(1).expand(v.shape[0], n_obs, *v.shape[1:])
                t_pre = time.perf_counter()
                kwargs: dict[str, Any] = {}
                if use_rtc:
                    if inference_delay is not None:
                        dt = 1.0 / self.fps if self.fps else 0.0
                        kwargs["inference_delay"] = math.ceil(inference_delay / dt) if dt else 0
                    if prev_chunk_left_over is not None:
                        kwargs["prev_chunk_left_over"] = self._leftover_tensor(prev_chunk_left_over)
                actions = self.policy.predict_action_chunk(processed, **kwargs)
                if actions.ndim == 2:
                    actions = actions.unsqueeze(0)
                t_model = time.perf_counter()
                actions = self.postprocessor(actions)
                out = actions[0].detach().to("cpu", torch.float32).numpy()
            t_end = time.perf_counter()
            self.n_infer += 1
        if not use_rtc and prev_chunk_left_over is not None:
            _as_array("prev_chunk_left_over", prev_chunk_left_over)  # still reject garbage, even when unused
        reply: dict[str, Any] = {
            "actions": np.ascontiguousarray(out, dtype=np.float32),
            "timing": {
                "total_ms": (t_end - t_start) * 1e3,
                "lock_wait_ms": (t_locked - t_start) * 1e3,
                "preprocess_ms": (t_pre - t_locked) * 1e3,
                "model_ms": (t_model - t_pre) * 1e3,
                "postprocess_ms": (t_end - t_model) * 1e3,
            },
            "rtc": {
                "supported": bool(self.supports_rtc),
                "applied": bool(use_rtc),
                "inference_delay": inference_delay,
                "prev_chunk_left_over_rows": leftover_rows,
            },
        }
        if self.takes_prompt or task:
            reply["prompt"] = task
        return reply

    def reset(self) -> None:
        """New episode: clear the policy's internal queues (temporal ensembling, observation history)."""
        with self.lock:
            self.policy.reset()

    def close(self) -> None:
        """Stop the inference thread (after the queued requests); infer() is unusable afterwards."""
        self.executor.shutdown(wait=True)

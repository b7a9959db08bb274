"""Tiny, randomly initialised but REAL LeRobot checkpoint folders (ACT, Diffusion) for tests, benchmarks and the demo.

Nothing can be downloaded here, so the project builds its own checkpoints: a genuine lerobot policy config with
explicit input/output features, normalisation statistics, `pretrained_backbone_weights=None` (the default would fetch
ImageNet weights even when loading), saved with `save_pretrained` together with the pre/post processor pipelines
exactly as `lerobot-train` saves them. The folder then loads through the same code path as any user's checkpoint
(see runtime.py). A small sidecar `lerobot_ros.json` carries what a lerobot checkpoint does not (fps, action and
state names); the runtime treats it as optional.

CLI:  lerobot-ros-make-checkpoint --type act --out DIR [--cameras front,wrist --image-size 96 --state-dim 6
      --action-dim 6 --chunk-size 50 --fps 30 --seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lerobot_serve_ros.runtime import IMAGE_PREFIX, SIDECAR_NAME, STATE_KEY

log = logging.getLogger(__name__)

ACTION_KEY = "action"
SO101_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def image_key(camera: str) -> str:
    return f"{IMAGE_PREFIX}{camera}"


def default_joint_names(n: int) -> list[str]:
    """SO-101 joint names for the default 6-dof demo; generic names otherwise."""
    return list(SO101_JOINTS) if n == len(SO101_JOINTS) else [f"joint_{i}" for i in range(n)]


@dataclass
class CheckpointSpec:
    """What the tiny checkpoint looks like. Defaults are the contract's demo setup (2 cameras 96 px, 6 dof, ACT 50)."""

    policy_type: str = "act"  # "act" | "diffusion"
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 96
    state_dim: int = 6
    action_dim: int = 6
    chunk_size: int = 50  # ACT chunk_size (= n_action_steps); Diffusion: n_action_steps (horizon rounded up to 8)
    fps: float = 30.0
    seed: int = 0
    dim_model: int = 64  # small enough to run at tens of ms on a laptop CPU
    action_names: tuple[str, ...] | None = None  # default: "<joint>.pos" per action dimension

    def resolved_action_names(self) -> list[str]:
        if self.action_names is not None:
            if len(self.action_names) != self.action_dim:
                raise ValueError(f"{len(self.action_names)} action names for action_dim={self.action_dim}")
            return list(self.action_names)
        return [f"{j}.pos" for j in default_joint_names(self.action_dim)]


def _features(spec: CheckpointSpec):
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {image_key(c): PolicyFeature(type=FeatureType.VISUAL, shape=(3, spec.image_size, spec.image_size))
              for c in spec.cameras}
    if spec.state_dim > 0:
        inputs[STATE_KEY] = PolicyFeature(type=FeatureType.STATE, shape=(spec.state_dim,))
    outputs = {ACTION_KEY: PolicyFeature(type=FeatureType.ACTION, shape=(spec.action_dim,))}
    return inputs, outputs


def _stats(spec: CheckpointSpec) -> dict[str, dict]:
    """Plausible dataset statistics: ImageNet-like for images, joint angles within +-pi for state and action."""
    import numpy as np

    rng = np.random.default_rng(spec.seed)
    stats: dict[str, dict] = {}
    for cam in spec.cameras:
        stats[image_key(cam)] = {
            "mean": np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1),
            "std": np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1),
            "min": np.zeros((3, 1, 1), np.float32),
            "max": np.ones((3, 1, 1), np.float32),
        }
    for key, dim in ((STATE_KEY, spec.state_dim), (ACTION_KEY, spec.action_dim)):
        if dim <= 0:
            continue
        stats[key] = {
            "mean": rng.uniform(-0.2, 0.2, dim).astype(np.float32),
            "std": rng.uniform(0.3, 0.6, dim).astype(np.float32),
            "min": np.full(dim, -np.pi, np.float32),
            "max": np.full(dim, np.pi, np.float32),
        }
    return stats


def _make_config(spec: CheckpointSpec):
    inputs, outputs = _features(spec)
    if spec.policy_type == "act":
        from lerobot.policies.act.configuration_act import ACTConfig

        return ACTConfig(
            input_features=inputs, output_features=outputs, device="cpu",
            chunk_size=spec.chunk_size, n_action_steps=spec.chunk_size,
            pretrained_backbone_weights=None, dim_model=spec.dim_model, n_heads=4,
            dim_feedforward=2 * spec.dim_model, n_encoder_layers=1, n_decoder_layers=1,
            use_vae=True, latent_dim=8, n_vae_encoder_layers=1,
        )
    if spec.policy_type == "diffusion":
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

        horizon = max(8, -(-spec.chunk_size // 8) * 8)  # the U-Net downsamples twice: a multiple of 8
        return DiffusionConfig(
            input_features=inputs, output_features=outputs, device="cpu",
            n_obs_steps=1, horizon=horizon, n_action_steps=min(spec.chunk_size, horizon),
            drop_n_last_frames=max(0, horizon - spec.chunk_size),
            pretrained_backbone_weights=None, use_group_norm=True,
            crop_shape=None, crop_is_random=False, down_dims=(32, 64), spatial_softmax_num_keypoints=16,
            diffusion_step_embed_dim=32, num_train_timesteps=10, num_inference_steps=4,
            noise_scheduler_type="DDIM",
        )
    raise ValueError(f"unsupported policy_type {spec.policy_type!r}: choose 'act' or 'diffusion'")


def build_checkpoint(out_dir: str | Path, spec: CheckpointSpec | None = None) -> Path:
    """Write a loadable checkpoint folder to `out_dir` (created if needed) and return its path."""
    import torch

    from lerobot.policies import get_policy_class, make_pre_post_processors

    spec = spec or CheckpointSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    torch.manual_seed(spec.seed)
    cfg = _make_config(spec)
    stats = _stats(spec)
    try:
        policy = get_policy_class(cfg.type)(cfg)
    except ImportError as exc:  # Diffusion without the [diffusion] extra (diffusers)
        raise RuntimeError(f"cannot build a {cfg.type} policy: {exc}") from exc
    policy.eval()
    preprocessor, postprocessor = make_pre_post_processors(cfg, dataset_stats=stats)
    policy.save_pretrained(out)
    preprocessor.save_pretrained(out)
    postprocessor.save_pretrained(out)
    sidecar = {
        "fps": spec.fps,
        "action_names": spec.resolved_action_names(),
        "state_names": [f"{j}.pos" for j in default_joint_names(spec.state_dim)] if spec.state_dim else [],
        "cameras": list(spec.cameras),
        "built_by": "lerobot_serve_ros.make_checkpoint",
        "seed": spec.seed,
    }
    (out / SIDECAR_NAME).write_text(json.dumps(sidecar, indent=2) + "\n")
    n_params = sum(p.numel() for p in policy.parameters())
    log.info("built %s checkpoint (%.1fM parameters) in %s in %.1f s", cfg.type, n_params / 1e6, out,
             time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lerobot-ros-make-checkpoint", description=__doc__.split("\n\n")[0])
    ap.add_argument("--type", dest="policy_type", default="act", choices=["act", "diffusion"])
    ap.add_argument("--out", required=True, help="checkpoint folder to write")
    ap.add_argument("--cameras", default="front,wrist", help="comma-separated camera names ('' for none)")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--state-dim", type=int, default=6)
    ap.add_argument("--action-dim", type=int, default=6)
    ap.add_argument("--chunk-size", type=int, default=50)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dim-model", type=int, default=64)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = CheckpointSpec(
        policy_type=args.policy_type, cameras=tuple(c for c in args.cameras.split(",") if c),
        image_size=args.image_size, state_dim=args.state_dim, action_dim=args.action_dim,
        chunk_size=args.chunk_size, fps=args.fps, seed=args.seed, dim_model=args.dim_model,
    )
    try:
        path = build_checkpoint(args.out, spec)
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PolicyRuntime over a real (tiny, random) lerobot ACT checkpoint, loaded the way a user's checkpoint is."""

from __future__ import annotations

import json
import threading
import warnings

import numpy as np
import pytest

from lerobot_serve_ros.codec import packb, unpackb
from lerobot_serve_ros.runtime import ObservationError, PolicyRuntime, RuntimeConfig, policy_cli_overrides

from serve_testlib import make_obs


def test_metadata_describes_the_demo_policy(act_runtime, tiny_act_checkpoint):
    md = act_runtime.metadata()
    assert md["policy_type"] == "act" and md["protocol_version"] >= 1
    assert md["image_keys"] == ["observation.images.front", "observation.images.wrist"]
    assert md["image_shapes"]["observation.images.front"] == [96, 96, 3]
    assert md["state_key"] == "observation.state" and md["state_dim"] == 6 and md["action_dim"] == 6
    assert md["chunk_size"] == 50 and md["fps"] == 30.0 and md["device"] == "cpu"
    assert md["action_names"][0] == "shoulder_pan.pos" and len(md["action_names"]) == 6
    assert md["supports_rtc"] is False and md["takes_prompt"] is False
    json.dumps(md)  # plain data, serialisable anywhere
    cfg = json.loads((tiny_act_checkpoint / "config.json").read_text())
    assert cfg["type"] == "act" and cfg["pretrained_backbone_weights"] is None


def test_infer_returns_whole_chunk_that_depends_on_the_observation(act_runtime):
    md = act_runtime.metadata()
    a = act_runtime.infer(make_obs(md, seed=1))
    b = act_runtime.infer(make_obs(md, seed=1))
    c = act_runtime.infer(make_obs(md, seed=2))
    assert a["actions"].shape == (50, 6) and a["actions"].dtype == np.float32
    assert np.all(np.isfinite(a["actions"]))
    np.testing.assert_allclose(a["actions"], b["actions"], atol=1e-5)  # eval mode: deterministic
    assert not np.allclose(a["actions"], c["actions"], atol=1e-4)  # the images/state actually reach the model
    t = a["timing"]
    assert t["total_ms"] >= t["model_ms"] > 0


def test_actions_are_unnormalised_with_the_saved_stats(act_runtime, tiny_act_checkpoint):
    """Shifting the saved action mean must shift the output: proves the saved postprocessor is in the path."""
    from safetensors.torch import load_file, save_file

    path = tiny_act_checkpoint.parent / "act_shifted"
    import shutil

    shutil.copytree(tiny_act_checkpoint, path)
    f = next(path.glob("policy_postprocessor_step_*_unnormalizer_processor.safetensors"))
    stats = load_file(f)
    stats["action.mean"] = stats["action.mean"] + 10.0
    save_file(stats, f)
    shifted = PolicyRuntime(RuntimeConfig(path=str(path), device="cpu", warmup=False))
    obs = make_obs(act_runtime.metadata(), seed=3)
    diff = shifted.infer(obs)["actions"] - act_runtime.infer(obs)["actions"]
    np.testing.assert_allclose(diff, 10.0, atol=1e-3)


@pytest.mark.parametrize("mutate, match", [
    (lambda o: o.pop("observation.images.wrist"), r"missing key\(s\) \['observation.images.wrist'\]"),
    (lambda o: o.pop("observation.state"), r"missing key\(s\) \['observation.state'\]"),
    (lambda o: o.__setitem__("observation.images.front", np.zeros((64, 96, 3), np.uint8)),
     r"observation.images.front: shape \[64, 96, 3\], expected \[96, 96, 3\]"),
    (lambda o: o.__setitem__("observation.images.front", np.zeros((96, 96, 3), np.float32)),
     "observation.images.front: dtype float32, expected uint8"),
    (lambda o: o.__setitem__("observation.state", np.zeros(5, np.float32)),
     r"observation.state: shape \[5\], expected \[6\]"),
    (lambda o: o.__setitem__("observation.state", "1,2,3"), "observation.state: expected a numpy array"),
    (lambda o: o.__setitem__("observation.state", np.full(6, np.nan, np.float32)), "NaN"),
])
def test_bad_observations_raise_observation_error(act_runtime, mutate, match):
    obs = make_obs(act_runtime.metadata())
    mutate(obs)
    with pytest.raises(ObservationError, match=match):
        act_runtime.infer(obs)
    assert issubclass(ObservationError, ValueError)


def test_state_as_float64_list_is_accepted(act_runtime):
    obs = make_obs(act_runtime.metadata())
    ref = act_runtime.infer(obs)["actions"]
    obs["observation.state"] = [float(x) for x in obs["observation.state"]]
    np.testing.assert_allclose(act_runtime.infer(obs)["actions"], ref, atol=1e-5)


def test_read_only_wire_arrays_are_used_as_they_are(act_runtime):
    """The codec hands over read-only views of the frame: same chunk as from writable arrays, the frame's bytes are
    not written, and torch's warning about non-writable arrays never fires."""
    obs = make_obs(act_runtime.metadata(), seed=3)
    wire = unpackb(packb(obs))
    assert not any(v.flags.writeable for v in wire.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = act_runtime.infer(wire, prev_chunk_left_over=unpackb(packb(np.ones((4, 6), np.float32))))["actions"]
    np.testing.assert_allclose(got, act_runtime.infer(obs)["actions"], atol=1e-5)
    for key, value in obs.items():
        np.testing.assert_array_equal(wire[key], value)


def test_rtc_inputs_are_accepted_and_recorded_for_act(act_runtime):
    obs = make_obs(act_runtime.metadata())
    r = act_runtime.infer(obs, prompt="stack", inference_delay=0.07,
                          prev_chunk_left_over=np.zeros((12, 6), np.float32))
    assert r["rtc"] == {"supported": False, "applied": False, "inference_delay": 0.07,
                        "prev_chunk_left_over_rows": 12}
    assert r["prompt"] == "stack"
    with pytest.raises(ObservationError, match="inference_delay"):
        act_runtime.infer(obs, inference_delay=-1.0)


def test_concurrent_callers_are_serialised_by_the_lock(act_runtime):
    obs = make_obs(act_runtime.metadata(), seed=5)
    ref = act_runtime.infer(obs)["actions"]
    results, errors = [], []

    def worker():
        try:
            results.append(act_runtime.infer(obs)["actions"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, ref, atol=1e-5)


def test_cli_overrides_and_default_prompt(tiny_act_checkpoint):
    assert policy_cli_overrides(["--policy.n_action_steps=20", "--temporal_ensemble_coeff=0.01"]) == [
        "--n_action_steps=20", "--temporal_ensemble_coeff=0.01"]
    with pytest.raises(ValueError):
        policy_cli_overrides(["n_action_steps=20"])
    rt = PolicyRuntime(RuntimeConfig(path=str(tiny_act_checkpoint), device="cpu", default_prompt="tidy up",
                                     overrides=["--policy.n_action_steps=20"], warmup=False))
    assert rt.policy_cfg.n_action_steps == 20 and rt.policy_cfg.device == "cpu"
    assert rt.infer(rt.dummy_observation())["prompt"] == "tidy up"


def test_not_a_checkpoint_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        PolicyRuntime(RuntimeConfig(path=str(tmp_path), device="cpu"))


def test_make_checkpoint_cli_builds_custom_features(tmp_path):
    from lerobot_serve_ros.make_checkpoint import main

    out = tmp_path / "one_cam"
    assert main(["--type", "act", "--out", str(out), "--cameras", "top", "--image-size", "64", "--state-dim", "4",
                 "--action-dim", "3", "--chunk-size", "10"]) == 0
    rt = PolicyRuntime(RuntimeConfig(path=str(out), device="cpu"))
    md = rt.metadata()
    assert md["image_shapes"] == {"observation.images.top": [64, 64, 3]}
    assert (md["state_dim"], md["action_dim"], md["chunk_size"]) == (4, 3, 10)
    assert rt.infer(rt.dummy_observation())["actions"].shape == (10, 3)


def test_diffusion_checkpoint(tiny_diffusion_checkpoint):
    rt = PolicyRuntime(RuntimeConfig(path=str(tiny_diffusion_checkpoint), device="cpu"))
    md = rt.metadata()
    assert md["policy_type"] == "diffusion"
    r = rt.infer(make_obs(md))
    assert r["actions"].shape == (md["chunk_size"], 6) and r["actions"].dtype == np.float32

"""The lerobot-serve command line: flag spelling, policy overrides, clear refusals."""

from __future__ import annotations

from lerobot_serve_ros.serve_cli import ServeArgs, main, split_args


def test_split_args_separates_policy_overrides_and_accepts_hyphens():
    own, overrides = split_args(["--policy.path=/ck", "--policy.device", "cuda", "--max-clients=2",
                                 "--policy.n_action_steps", "20", "--policy.rtc_config.enabled=true",
                                 "--auth-token=t"])
    assert own == ["--policy.path=/ck", "--policy.device", "cuda", "--max_clients=2", "--auth_token=t"]
    assert overrides == ["--policy.n_action_steps=20", "--policy.rtc_config.enabled=true"]
    import draccus

    args = draccus.parse(ServeArgs, args=own)
    assert (args.policy.path, args.policy.device, args.max_clients, args.auth_token) == ("/ck", "cuda", 2, "t")


def test_missing_or_wrong_policy_path_exits_with_a_message(tmp_path, capsys, caplog):
    assert main(["--port=0"]) == 2
    assert "--policy.path is required" in capsys.readouterr().err
    assert main([f"--policy.path={tmp_path / 'nope'}", "--port=0"]) == 2
    assert main([f"--policy.path={tmp_path}", "--port=0"]) == 2
    text = caplog.text
    assert "no checkpoint folder" in text and "no config.json" in text

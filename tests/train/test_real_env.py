"""Training on the real embedded env (SUMO DriveEnv): hand-designed and bundled-model rewards, the CLI,
an LVLM server that fails mid-run, a simulator process killed mid-episode, and kill -9 then --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from drivevlm.cli import app
from drivevlm.config import EnvConfig
from drivevlm.presets import PRESETS_DIR
from drivevlm.presets.training import TrainConfig
from drivevlm.train.trainer import _default_env_factory, make_vec_env, train
from support.chat_server import ChatServer, Reply
from support.training import SMALL_TRAINING

SMALL = list(SMALL_TRAINING)


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _sets(*extra: str) -> list[str]:
    return [part for item in (*SMALL, *extra) for part in ("--set", item)]


def test_cli_trains_chen_on_the_embedded_env_then_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out, err = _cli(
        "train",
        "--config",
        str(PRESETS_DIR / "chen_sac.yaml"),
        *_sets("train.total_timesteps=128", "train.checkpoint_interval=64"),
        "--run-dir",
        str(run),
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["steps"] == 128 and summary["annotator"]["annotated"] == 128
    assert summary["annotator"]["fallbacks"] == 0
    header = (run / "logs" / "session-0" / "progress.csv").read_text().splitlines()[0]
    # The chen preset's own terms reach the logs, as do the env's per-step metrics.
    assert "reward/final" in header and "metrics/speed_kmh" in header and "train/actor_loss" in header
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["reward"]["preset"] == "chen" and saved["train"]["algorithm"] == "sac"

    saved["train"]["total_timesteps"] = 192
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    code, out, err = _cli("train", "--resume", str(run), "--json")
    assert code == 0, err
    resumed = json.loads(out.strip().splitlines()[-1])
    assert resumed["session"] == 1 and resumed["steps"] == 192 and resumed["steps_this_session"] == 64
    buffer = np.load(Path(resumed["checkpoint"]) / "replay_buffer.npz")
    assert int(buffer["counters"][2]) == 192 and bool(buffer["annotated"][:192].all())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "train.sac.gamma=3"], "train.sac.gamma"),
        (["--set", "env.density=crowded"], "env.density"),
        (["--set", "train.algo=dqn"], "train.algo"),
    ],
)
def test_cli_bad_config_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    code, _out, err = _cli(
        "train", "--config", str(PRESETS_DIR / "chen_sac.yaml"), *args, "--run-dir", str(tmp_path / "r")
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_cli_resume_of_a_folder_without_a_run_is_exit_2(tmp_path: Path) -> None:
    code, _, err = _cli("train", "--resume", str(tmp_path))
    assert code == 2 and "no config.yaml" in err


def test_bundled_models_train_through_an_lvlm_server_that_fails_mid_run(tmp_path: Path) -> None:
    """DriveVLM-RL's reward with the bundled models; the LVLM server answers, then returns 503s, garbage,
    then time-outs, then answers again. Training never stops, each failure falls back and is counted,
    and the LVLM's answers are used again once the server recovers."""
    script = [Reply()] * 40 + [Reply(status=503)] * 30 + [Reply(raw=b"<html>oops")] * 30
    script += [Reply(delay_s=1.5)] * 20 + [Reply("A cyclist is crossing ahead")]
    data = yaml.safe_load((PRESETS_DIR / "drivevlm_rl.yaml").read_text())
    with ChatServer(script, lifetime_s=300) as server:
        data["env"].update({"scenario": "pedestrian_crossing", "rgb_size": 96})
        data["models"] = {
            "clip": {"backend": "aligned", "model": "bundled"},
            "detector": {"backend": "tiny", "model": "bundled"},
            "lvlm": {
                "backend": "openai",
                "base_url": server.base_url,
                "model": "stand-in",
                "timeout_s": 1.0,
                "retries": 0,
            },
            "cache": {"enabled": False},
        }
        from drivevlm.config import apply_overrides

        # People on the sidewalks by the standing car keep the gate open (the crossing pedestrian alone is a
        # speck far down the road while the warm-up's random actions barely move the car).
        overrides = [*SMALL, "env.density=regular", "train.total_timesteps=320"]
        overrides.append("train.annotator.batch_size=16")
        data = apply_overrides(data, overrides)
        summary = train(data, tmp_path / "run")
        served = len(server.requests)
    counters = summary["annotator"]
    assert summary["steps"] == 320 and counters["annotated"] == 320 and counters["fallbacks"] == 0
    fallbacks = {k: v for k, v in counters.items() if k.startswith("reward_fn/fallback:")}
    assert fallbacks["reward_fn/fallback:lvlm_error:http_retryable"] == 30, fallbacks
    assert fallbacks["reward_fn/fallback:lvlm_error:malformed"] == 30, fallbacks
    # The server answers one request at a time: requests queued behind a slow answer can time out
    # client-side before the server reads them, so how many of the 20 slow answers surface varies.
    assert 1 <= fallbacks["reward_fn/fallback:lvlm_error:timeout"] <= 40, fallbacks
    # The gate opens where the bundled detector sees a person: most frames, enough for the script (40
    # answers, 80 failures, 20 slow answers, then answers again).
    calls = counters["reward_fn/lvlm_calls"]
    assert counters["reward_fn/gate_open"] == calls >= 180
    assert summary["gate_rate"] == counters["reward_fn/gate_open"] / counters["reward_fn/frames"]
    logged = (tmp_path / "run" / "logs" / "session-0" / "progress.csv").read_text().splitlines()
    assert "reward/gate_rate" in logged[0].split(",")
    # A request timed out client-side may never have been read by the server; every other one was.
    assert calls - fallbacks["reward_fn/fallback:lvlm_error:timeout"] <= served <= calls
    # Only 40 answers came before the failures: the rest of the used answers came after the recovery.
    assert calls - sum(fallbacks.values()) - 40 >= 40


def test_dead_simulator_process_is_restarted_and_its_episode_truncated() -> None:
    cfg = TrainConfig(n_envs=2, vec_env="subprocess")
    env_cfg = EnvConfig(density="empty", seed=4)
    env = make_vec_env(_default_env_factory(env_cfg, False, 0), cfg)
    try:
        env.reset()
        for _ in range(3):
            env.step(np.zeros((2, 2), np.float32))
        os.kill(env.processes[0].pid, signal.SIGKILL)
        env.processes[0].join(timeout=10)
        obs, _, dones, infos = env.step(np.zeros((2, 2), np.float32))
        assert dones[0] and infos[0]["simulator_restarted"] and infos[0]["TimeLimit.truncated"]
        assert infos[0]["terminal_observation"]["bev"].shape == (12, 96, 96)
        assert "signals" in infos[0] and not dones[1] and "simulator_restarted" not in infos[1]
        assert env.restarts == 1 and env.processes[0].is_alive()
        _, _, dones, infos = env.step(np.zeros((2, 2), np.float32))
        assert not dones[0] and obs["bev"].shape == (2, 12, 96, 96)
    finally:
        env.close()


def test_kill_9_during_real_training_then_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        "train",
        "--config",
        str(PRESETS_DIR / "chen_sac.yaml"),
        *_sets("train.total_timesteps=100000", "train.checkpoint_interval=64"),
        "--run-dir",
        str(run),
        "--quiet",
    ]
    command = [
        sys.executable,
        "-c",
        "import sys; from drivevlm.cli import main; sys.argv[0] = 'drivevlm'; main()",
    ]
    process = subprocess.Popen([*command, *args], env={**os.environ, "OMP_NUM_THREADS": "1"})
    latest = run / "checkpoints" / "latest.json"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            if latest.exists() and json.loads(latest.read_text())["num_timesteps"] >= 128:
                break
            time.sleep(0.2)
        assert latest.exists(), "no checkpoint before the kill"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = json.loads(latest.read_text())["num_timesteps"]
    assert not list((run / "checkpoints").glob(".*.tmp")) or latest.exists()
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["train"]["total_timesteps"] = saved + 64
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    code, out, err = _cli("train", "--resume", str(run), "--json")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["session"] == 1 and summary["steps"] == saved + 64

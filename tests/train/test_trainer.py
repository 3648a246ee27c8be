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
import torch as th
import yaml

from drivevlm.config import ConfigError
from drivevlm.train.trainer import train
from support.rewards_for_tests import SignalsReward
from support.toy_env import ToyDriveEnv

HERE = Path(__file__).parents[1]  # tests/, where support/ lives
SMALL_POLICY = {"cnn_channels": [8, 16], "cnn_kernels": [5, 3], "cnn_strides": [4, 2], "bev_features": 32}


def _config(**train_overrides) -> dict:
    sac = {
        "buffer_size": 2000,
        "batch_size": 32,
        "train_freq": 16,
        "gradient_steps": 4,
        "learning_starts": 64,
        "net_arch": [32, 32],
    }
    train_cfg = {
        "total_timesteps": 192,
        "n_envs": 2,
        "vec_env": "dummy",
        "seed": 3,
        "log_interval": 50,
        "checkpoint_interval": 100,
        "backlog_limit": 64,
        "sac": sac,
        "policy": SMALL_POLICY,
    }
    for key, value in train_overrides.items():
        if isinstance(value, dict) and isinstance(train_cfg.get(key), dict):
            train_cfg[key] = {**train_cfg[key], **value}
        else:
            train_cfg[key] = value
    # The tests inject their own reward function; the section still names a registered preset, as the
    # whole config is validated (and saved for resume).
    return {"env": {"seed": 0}, "train": train_cfg, "reward": {"preset": "tirl"}}


def _toy_factory(rank: int) -> ToyDriveEnv:
    return ToyDriveEnv(size=32, render_frames=True)


def test_sac_trains_end_to_end_with_logs_checkpoints_and_progress(tmp_path: Path) -> None:
    seen: list[dict] = []
    summary = train(
        _config(), tmp_path / "run", reward_fn=SignalsReward(), env_factory=_toy_factory, progress=seen.append
    )
    assert summary["steps"] == 192 and summary["episodes"] >= 2
    assert summary["annotator"]["annotated"] == 192 and summary["annotator"]["fallbacks"] == 0
    run = tmp_path / "run"
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["sac"]["gamma"] == 0.98
    assert "git_commit" in json.loads((run / "run.json").read_text())
    assert (run / "checkpoints" / "latest.json").is_file()
    header = (run / "logs" / "session-0" / "progress.csv").read_text().splitlines()[0]
    for column in ("reward/final", "reward/r_shaping", "annotator/steps_behind", "train/critic_loss"):
        assert column in header
    # The episode return from annotated rewards (the env's own rewards are provisional).
    assert "episode/annotated_return" in header
    assert list((run / "logs" / "session-0").glob("events.out.tfevents*"))
    assert seen and {"steps", "episodes", "collision_rate", "annotator_steps_behind", "eta_s"} <= set(
        seen[-1]
    )


def _buffer_rewards(mode: str, tmp_path: Path) -> dict[int, float]:
    from drivevlm.presets.training import TrainConfig
    from drivevlm.train.trainer import make_annotation, make_model, make_vec_env

    cfg = TrainConfig(**{**_config(mode=mode)["train"], "total_timesteps": 160})
    cfg.sac.learning_starts = 10_000  # random actions from the seeded action space: same transitions
    env = make_vec_env(_toy_factory, cfg)
    model = make_model(cfg, env)
    link = make_annotation(model, cfg, SignalsReward(delay_s=0.002), 4)
    if mode == "async":
        link.annotator.start()
    model.learn(160)
    link.annotator.wait_idle(10)
    link.annotator.close()
    buffer = model.replay_buffer
    return {int(i): buffer.reward_of(int(i)) for i in buffer.ids[: buffer.pos].reshape(-1)}


def test_sync_and_async_write_the_same_rewards(tmp_path: Path) -> None:
    sync, asynchronous = _buffer_rewards("sync", tmp_path), _buffer_rewards("async", tmp_path)
    assert len(sync) == 160 and None not in sync.values()
    assert sync == asynchronous


def test_ppo_annotates_the_rollout_before_learning(tmp_path: Path) -> None:
    cfg = _config(
        algorithm="ppo",
        ppo={"n_steps": 32, "batch_size": 32, "n_epochs": 2, "net_arch": [32]},
        total_timesteps=128,
    )
    summary = train(cfg, tmp_path / "ppo", reward_fn=SignalsReward(), env_factory=_toy_factory)
    assert summary["steps"] == 128 and summary["annotator"]["annotated"] == 128


def test_reward_failures_never_stop_training(tmp_path: Path) -> None:
    cfg = _config(annotator={"max_retries": 1, "backoff_s": 0.0})
    summary = train(
        cfg, tmp_path / "run", reward_fn=SignalsReward(always_fail=True), env_factory=_toy_factory
    )
    assert summary["steps"] == 192 and summary["annotator"]["fallbacks"] == 192


_KILL_SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from support.rewards_for_tests import SignalsReward
from support.toy_env import ToyDriveEnv
from drivevlm.train.trainer import train
train({config!r}, {run!r}, reward_fn=SignalsReward(), env_factory=lambda r: ToyDriveEnv(render_frames=True))
"""


def test_resuming_a_complete_run_trains_nothing_and_reports_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = train(_config(total_timesteps=64), run, reward_fn=SignalsReward(), env_factory=_toy_factory)
    again = train(None, run, resume=True, reward_fn=SignalsReward(), env_factory=_toy_factory)
    assert again["session"] == 1 and again["steps"] == first["steps"] == 64
    assert again["steps_this_session"] == 0 and again["episodes"] == first["episodes"]


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = _config(total_timesteps=100_000, checkpoint_interval=64)
    script = _KILL_SCRIPT.format(here=str(HERE), config=config, run=str(run))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    latest = run / "checkpoints" / "latest.json"
    try:
        deadline = time.monotonic() + 120
        while not latest.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert latest.exists(), "no checkpoint before the kill"
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = json.loads(latest.read_text())["num_timesteps"]
    config["train"]["total_timesteps"] = saved + 64
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    summary = train(None, run, resume=True, reward_fn=SignalsReward(), env_factory=_toy_factory)
    assert summary["session"] == 1 and summary["steps"] == saved + 64 and summary["steps_this_session"] == 64

    from drivevlm.train.sac import AnnotatedSAC

    model = AnnotatedSAC.load(Path(summary["checkpoint"]) / "model.zip", device="cpu")
    assert model.num_timesteps == saved + 64
    assert model.actor.optimizer.state_dict()["state"], "optimiser state must survive the resume"
    arrays = np.load(Path(summary["checkpoint"]) / "replay_buffer.npz")
    assert int(arrays["counters"][2]) * 2 == saved + 64  # every transition, old and new, is in the buffer


@pytest.mark.slow
def test_dead_simulator_process_is_restarted(tmp_path: Path) -> None:
    marker = tmp_path / "died"

    def factory(rank: int) -> ToyDriveEnv:
        return ToyDriveEnv(render_frames=True, die_at_step=5 if rank == 0 else None, die_marker=str(marker))

    cfg = _config(vec_env="subprocess", total_timesteps=96)
    summary = train(cfg, tmp_path / "run", reward_fn=SignalsReward(), env_factory=factory)
    assert marker.exists() and summary["env_restarts"] == 1 and summary["steps"] == 96


def test_exploration_and_entropy_settings_reach_the_learner() -> None:
    from drivevlm.presets.training import TrainConfig
    from drivevlm.train.trainer import make_model, make_vec_env

    settings = {"warmup_steer": 0.2, "warmup_throttle": [0.1, 0.9], "ent_coef_lr": 3e-3, "sde_sample_freq": 8}
    cfg = TrainConfig(**_config(sac=settings)["train"])
    env = make_vec_env(_toy_factory, cfg)
    model = make_model(cfg, env)
    actions = np.concatenate([model._sample_action(cfg.sac.learning_starts, None, 2)[0] for _ in range(200)])
    assert np.abs(actions[:, 0]).max() <= 0.2 and actions[:, 0].std() > 0.05
    assert actions[:, 1].min() >= 0.1 and actions[:, 1].max() <= 0.9
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(None, []))
    model._update_learning_rate([model.actor.optimizer])
    assert model.ent_coef_optimizer.param_groups[0]["lr"] == 3e-3
    assert model.actor.optimizer.param_groups[0]["lr"] == cfg.sac.learning_rate
    assert model.sde_sample_freq == 8
    # Defaults: SB3's own uniform warm-up and the scheduled entropy learning rate.
    plain = make_model(TrainConfig(**_config()["train"]), env)
    assert plain.warmup_bounds is None and plain.ent_coef_lr is None
    env.close()


def test_route_follower_warmup_drives_then_hands_over_to_the_policy(tmp_path: Path) -> None:
    """`warmup_driver: route_follower`: each warm-up action is the scripted driver's for the last
    observation (prior data along the route); from learning_starts on the policy acts."""
    from drivevlm.config import EnvConfig
    from drivevlm.presets.training import TrainConfig
    from drivevlm.scripted_policy import RouteFollower
    from drivevlm.train.trainer import make_model, make_vec_env

    sac = {"warmup_driver": "route_follower", "warmup_noise": 0.0}
    cfg = TrainConfig(**_config(n_envs=1, sac=sac)["train"])
    env = make_vec_env(_toy_factory, cfg)
    model = make_model(cfg, env, EnvConfig(target_speed_kmh=20.0))
    driver = RouteFollower(target_speed_kmh=20.0)
    model._last_obs = env.reset()
    for _ in range(40):
        action, _ = model._sample_action(cfg.sac.learning_starts, None, 1)
        np.testing.assert_allclose(action[0], driver.act({"state": model._last_obs["state"][0]}))
        model._last_obs, *_ = env.step(action)
    assert model._last_obs["state"][0][2] > 15.0  # km/h: it drove towards its 20 km/h
    policy_action, _ = model._sample_action(0, None, 1)
    assert not np.allclose(policy_action[0], driver.act({"state": model._last_obs["state"][0]}))
    env.close()
    # Through the trainer (signals passed on from each step): the whole warm-up is driven.
    summary = train(
        _config(sac={**sac, "learning_starts": 192}),
        tmp_path / "run",
        reward_fn=SignalsReward(),
        env_factory=_toy_factory,
    )
    progress = (tmp_path / "run" / "logs" / "session-0" / "progress.csv").read_text().splitlines()
    header, last = progress[0].split(","), progress[-1].split(",")
    assert summary["steps"] == 192 and float(last[header.index("metrics/speed_kmh")]) > 15.0


def test_imitation_of_the_warmup_runs_once_fits_the_driver_then_warms_the_critic(tmp_path: Path) -> None:
    sac = {"warmup_driver": "route_follower", "warmup_noise": 0.0, "learning_starts": 128}
    config = _config(n_envs=1, total_timesteps=192, sac={**sac, "warmup_imitation_steps": 150})
    summary = train(config, tmp_path / "run", reward_fn=SignalsReward(), env_factory=_toy_factory)
    rows = (tmp_path / "run" / "logs" / "session-0" / "progress.csv").read_text().splitlines()
    header = rows[0].split(",")
    logged = [
        (
            float(row[header.index("train/imitation_loss_first")]),
            float(row[header.index("train/imitation_loss_last")]),
        )
        for row in (line.split(",") for line in rows[1:])
        if row[header.index("train/imitation_loss_first")]
    ]
    assert len(logged) == 1  # once, at the first update
    first, last = logged[0]
    assert last < 0.5 * first
    # Then the critics learnt the cloned policy's values before its first SAC update.
    warmup = [row.split(",")[header.index("train/critic_warmup_loss_last")] for row in rows[1:]]
    assert sum(1 for value in warmup if value) == 1
    from drivevlm.train.sac import AnnotatedSAC

    model = AnnotatedSAC.load(Path(summary["checkpoint"]) / "model.zip", device="cpu")
    assert model._imitated and model.imitation_steps == 150  # a resumed run does not clone again


def test_a_bfloat16_encoder_trains_and_its_precision_survives_the_checkpoint(tmp_path: Path) -> None:
    from drivevlm.train.sac import AnnotatedSAC

    sac = {"encoder_precision": "bfloat16", "warmup_driver": "route_follower", "warmup_imitation_steps": 8}
    summary = train(
        _config(n_envs=1, sac=sac), tmp_path / "run", reward_fn=SignalsReward(), env_factory=_toy_factory
    )
    assert summary["steps"] == 192
    model = AnnotatedSAC.load(Path(summary["checkpoint"]) / "model.zip", device="cpu")
    assert model.encoder_dtype is th.bfloat16 and model._imitated
    assert all(p.dtype == th.float32 and th.isfinite(p).all() for p in model.policy.parameters())
    # A resumed run takes the precision its config names now (auto: this machine's answer).
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    config["train"]["total_timesteps"] = 256
    config["train"]["sac"]["encoder_precision"] = "float32"
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(config))
    summary = train(None, tmp_path / "run", resume=True, reward_fn=SignalsReward(), env_factory=_toy_factory)
    model = AnnotatedSAC.load(Path(summary["checkpoint"]) / "model.zip", device="cpu")
    assert summary["steps"] == 256 and model.encoder_dtype is None


def test_bfloat16_needs_the_shared_encoder() -> None:
    from drivevlm.presets.training import train_section

    with pytest.raises(ConfigError, match="encoder_precision: bfloat16 needs encoder: shared"):
        train_section({"train": {"sac": {"encoder": "separate", "encoder_precision": "bfloat16"}}})
    assert train_section({"train": {"sac": {"encoder": "separate", "encoder_precision": "auto"}}})

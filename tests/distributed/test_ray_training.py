"""Training with the Ray executor on the real embedded env (SUMO) with the hand-designed chen reward:
two runner actors and one annotator actor, the CLI and resume, and actors killed mid-run."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from stable_baselines3.common.callbacks import BaseCallback
from typer.testing import CliRunner

from drivevlm.cli import app
from drivevlm.config import EnvConfig, apply_overrides
from drivevlm.presets import PRESETS_DIR, Preset
from drivevlm.train.trainer import (
    _default_env_factory,
    _default_reward,
    make_annotation,
    make_model,
    make_vec_env,
)
from support.training import SMALL_TRAINING

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RAY_SETTINGS = (
    "train.n_envs=2",
    "train.ray.num_annotators=1",
    "train.ray.runner.num_cpus=0.5",
    "train.ray.annotator.num_cpus=0.25",
)
SMALL = apply_overrides(
    {},
    [*SMALL_TRAINING, *RAY_SETTINGS, "train.algo=sac", "train.executor=ray", "train.backlog_limit=256"],
)["train"]


def _sets() -> list[str]:
    return [part for item in (*SMALL_TRAINING, *RAY_SETTINGS) for part in ("--set", item)]


def test_cli_trains_with_runner_and_annotator_actors_then_resumes(ray_local: Any, tmp_path: Path) -> None:
    run = tmp_path / "run"
    runner = CliRunner()
    args = ["train", "--config", str(PRESETS_DIR / "chen_sac.yaml"), "--executor", "ray", *_sets()]
    args += ["--run-dir", str(run), "--json"]
    args += ["--set", "train.total_timesteps=128", "--set", "train.checkpoint_interval=64"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 128
    annotator = summary["annotator"]
    assert annotator["annotated"] == 128 and annotator["accepted"] == 128 and annotator["fallbacks"] == 0
    assert annotator["reward_fn/actors"] == 1.0 and annotator["reward_fn/actor_restarts"] == 0.0
    assert (run / "checkpoints" / "latest.json").is_file()
    assert "executor: ray" in (run / "config.yaml").read_text()

    config = (run / "config.yaml").read_text().replace("total_timesteps: 128", "total_timesteps: 192")
    (run / "config.yaml").write_text(config)
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--json"])
    assert resumed.exit_code == 0, resumed.output
    again = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert again["session"] == 1 and again["steps"] == 192 and again["steps_this_session"] == 64
    assert again["annotator"]["annotated"] == 64 and again["annotator"]["fallbacks"] == 0


class _KillActors(BaseCallback):
    """From step `at`, kills runner 0 and annotator actor 0 with ray.kill as soon as a batch is in flight
    (on a loaded machine the annotator may have nothing outstanding at one step; the next step adds work)."""

    def __init__(self, ray: Any, annotator: Any, at: int) -> None:
        super().__init__()
        self.ray, self.annotator, self.at = ray, annotator, at
        self.killed_with_batches_in_flight = -1

    def _on_step(self) -> bool:
        if self.num_timesteps < self.at or self.killed_with_batches_in_flight >= 0:
            return True
        deadline = time.monotonic() + 0.5
        while not self.annotator.pool.outstanding[0] and time.monotonic() < deadline:
            time.sleep(0.005)
        if self.annotator.pool.outstanding[0] or self.num_timesteps >= self.at + 64:
            self.killed_with_batches_in_flight = self.annotator.pool.outstanding[0]
            self.ray.kill(self.annotator.pool.actors[0], no_restart=True)
            self.ray.kill(self.training_env.runners[0], no_restart=True)
        return True


def test_killed_runner_and_annotator_recover_and_annotate_each_transition_once(ray_local: Any) -> None:
    from slow_reward import DelayedReward

    data = {"env": {"density": "empty", "seed": 3}, "reward": {"preset": "chen"}, "train": dict(SMALL)}
    data["train"]["annotator"] = {"batch_size": 8}
    preset = Preset.parse(data)
    cfg = preset.train
    chen, window = _default_reward(preset)
    reward = DelayedReward(chen, delay_s=0.05)
    env_cfg = EnvConfig(density="empty", seed=3)
    env = make_vec_env(_default_env_factory(env_cfg, False, 0), cfg)
    try:
        model = make_model(cfg, env)
        link = make_annotation(model, cfg, reward, window)
        buffer = model.replay_buffer
        writes: Counter[int] = Counter()
        write_rewards = buffer._write_rewards

        def counting_sink(records: Any, terms: Any, fell_back: Any) -> int:
            writes.update(record.transition_id for record in records)
            return write_rewards(records, terms, fell_back)

        buffer.pending.attach(counting_sink)
        link.annotator.start()
        killer = _KillActors(ray_local, link.annotator, at=80)
        model.learn(192, callback=killer)
        assert link.annotator.wait_idle(timeout=60)
        stats = link.annotator.stats()
        link.annotator.close()
    finally:
        env.close()
    assert killer.killed_with_batches_in_flight > 0
    assert env.restarts == 1 and stats["reward_fn/actor_restarts"] == 1.0
    # Each batch in flight goes back to the queue; a batch holds up to 8 transitions (fewer when the
    # annotator drained the queue before it filled).
    requeued = stats["requeued"]
    assert (
        requeued >= killer.killed_with_batches_in_flight and stats["fallbacks"] == 0 and stats["stale"] == 0
    )
    # Every transition written exactly once, none lost, none twice.
    assert sorted(writes) == list(range(192))
    assert max(writes.values()) == 1
    assert all(buffer.reward_of(i) is not None for i in range(192))

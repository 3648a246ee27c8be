"""A tiny real training run folder for the evaluation tests: SB3 SAC on a DriveEnv, briefly trained.

Laid out as the trainer lays out a run (config.yaml, run.json, checkpoints/step-N/model.zip,
checkpoints/latest.json), so the evaluation code reads it exactly as it reads a real run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

# Small masks: fast to render and to train on.
TINY_ENV: dict[str, Any] = {
    "density": "empty",
    "bev_size": 32,
    "route_waypoints": 4,
    "max_episode_steps": 200,
}
TINY_POLICY = {"cnn_channels": [4, 8], "cnn_kernels": [5, 3], "cnn_strides": [4, 2], "bev_features": 16}


def make_tiny_run(run_dir: Path, steps: int = 64, seed: int = 0, env: dict[str, Any] | None = None) -> Path:
    """Train SAC for `steps` env steps and save it in the run-folder layout; returns `run_dir`."""
    import torch
    from stable_baselines3 import SAC

    from drivevlm.env import DriveEnv
    from drivevlm.train.policy import BevStateExtractor

    torch.set_num_threads(1)
    env_section = {**TINY_ENV, **(env or {}), "seed": seed}
    drive_env = DriveEnv(env_section)
    model = SAC(
        "MultiInputPolicy",
        drive_env,
        learning_starts=16,
        batch_size=16,
        buffer_size=1000,
        train_freq=16,
        gradient_steps=4,
        use_sde=True,
        seed=seed,
        device="cpu",
        policy_kwargs={
            "net_arch": [32, 32],
            "features_extractor_class": BevStateExtractor,
            "features_extractor_kwargs": TINY_POLICY,
        },
    )
    model.learn(steps)
    drive_env.close()
    name = f"step-{model.num_timesteps:010d}"
    checkpoints = run_dir / "checkpoints"
    (checkpoints / name).mkdir(parents=True)
    model.save(checkpoints / name / "model.zip")
    (checkpoints / "latest.json").write_text(
        json.dumps({"checkpoint": name, "num_timesteps": model.num_timesteps})
    )
    config = {"env": env_section, "reward": {"preset": "tirl"}, "train": {"algorithm": "sac", "seed": seed}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "run.json").write_text(json.dumps({"seed": seed}))
    return run_dir

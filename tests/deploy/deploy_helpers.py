"""A tiny dict-observation gymnasium env and tiny SB3 models built in-process (no simulator, no files)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

MASKS = ("road", "lane_markings", "vehicles")
WAYPOINTS = 2


class TinyDictEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """The env's observation layout at toy size: uint8 masks (C, H, W) and a float state vector."""

    def __init__(self, discrete: bool = False) -> None:
        self.observation_space = gym.spaces.Dict(
            {
                "bev": gym.spaces.Box(0, 255, (len(MASKS), 36, 36), np.uint8),
                "state": gym.spaces.Box(-np.inf, np.inf, (3 + 2 * WAYPOINTS,), np.float32),
            }
        )
        self.action_space = (
            gym.spaces.Discrete(5) if discrete else gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


def sample_batch(env: TinyDictEnv, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    bev = rng.integers(0, 256, size=(n, *env.observation_space["bev"].shape), dtype=np.uint8)
    state = rng.normal(0.0, 5.0, size=(n, *env.observation_space["state"].shape)).astype(np.float32)
    return {"bev": bev, "state": state}


def build_sac(env: gym.Env, use_sde: bool = True) -> Any:
    import torch
    from stable_baselines3 import SAC

    torch.set_num_threads(1)
    return SAC(
        "MultiInputPolicy",
        env,
        policy_kwargs={"net_arch": [16, 16]},
        use_sde=use_sde,
        buffer_size=10,
        seed=0,
        device="cpu",
    )

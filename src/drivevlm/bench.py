"""Environment throughput: steps/s bare, with the policy masks, and with all three images.

Shared by `drivevlm sim bench` and `benchmarks/env_throughput.py`.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import numpy as np

from drivevlm.config import EnvConfig, build
from drivevlm.env import DriveEnv
from drivevlm.render import BevRgbRenderer
from drivevlm.sim.base import EpisodeSpec, make_backend
from drivevlm.sim.world import Control


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _random_actions(steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-0.3, 0.3, size=(steps, 2)).astype(np.float32)
    actions[:, 1] = np.abs(actions[:, 1]) + 0.2
    return actions


def _time_env(env: DriveEnv, steps: int, seed: int, top_down: BevRgbRenderer | None = None) -> float:
    actions = _random_actions(steps, seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if top_down is not None:
            assert env.world_state is not None
            top_down.render(env.world_state)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def measure_env(
    config: EnvConfig | dict[str, Any] | None = None, steps: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Steps/s of the backend alone, of the env with masks (plus a top-down RGB), and with all three images.

    Resets (which reload SUMO) are inside the timed loop, as they are in training; the off-route and
    speed terminations are disabled so that episodes run long.
    """
    cfg = config if isinstance(config, EnvConfig) else build(EnvConfig, config or {}, "env")
    cfg = cfg.model_copy(update={"training": False, "render_frames": False})
    results: dict[str, Any] = {"steps": steps, "town": cfg.town, "density": cfg.density}

    backend = make_backend(cfg.simulator, **({"cache_dir": cfg.cache_dir} if cfg.simulator == "sumo" else {}))
    spec = EpisodeSpec(town=cfg.town, scenario=cfg.scenario, density=cfg.density)
    backend.reset(spec, seed)
    actions = _random_actions(steps, seed)
    start = time.perf_counter()
    for steer, throttle in actions:
        state = backend.step(Control(float(steer), float(throttle)))
        if state.events.collisions:
            backend.reset(spec, seed + 1)
    results["bare_steps_per_s"] = steps / (time.perf_counter() - start)
    backend.close()

    env = DriveEnv(cfg)
    results["masks_steps_per_s"] = _time_env(env, steps, seed)
    # One top-down RGB picture per step besides the masks: the rendering highway-env does.
    results["masks_and_top_down_steps_per_s"] = _time_env(env, steps, seed, BevRgbRenderer(size=cfg.rgb_size))
    env.close()
    env = DriveEnv(cfg.model_copy(update={"render_frames": True}))
    results["all_images_steps_per_s"] = _time_env(env, max(steps // 4, 100), seed)
    env.close()
    results["peak_rss_mb"] = peak_rss_mb()
    return results

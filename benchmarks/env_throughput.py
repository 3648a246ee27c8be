"""Env throughput: drivevlm's embedded SUMO env beside highway-env's intersection-v2, in one run.

Both run at 15 Hz with continuous actions and draw a top-down RGB image of the same size every step
(ours: the BEV RGB, besides the policy masks it always draws; highway-env: its pygame top-down view).
Ours with all three images (masks, BEV RGB, front camera) is reported too. Prints ratios;
`--json` prints one JSON object as the last line. Never gates CI.

    python benchmarks/env_throughput.py --steps 2000 [--json]
Needs the `bench` extra (highway-env) for the peer; without it the peer is reported as missing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from drivevlm.bench import measure_env, peak_rss_mb


def measure_highway_env(steps: int, size: int, seed: int) -> dict[str, Any]:
    os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
    try:
        import gymnasium as gym
        import highway_env  # noqa: F401  (registers the envs)
    except ImportError:
        return {"error": "highway-env not installed: pip install -e '.[bench]'"}
    env = gym.make(
        "intersection-v2",
        render_mode="rgb_array",
        config={
            "action": {"type": "ContinuousAction"},
            "policy_frequency": 15,
            "simulation_frequency": 15,
            "screen_width": size,
            "screen_height": size,
        },
    )
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)

    def run(n: int, render: bool) -> float:
        start = time.perf_counter()
        for _ in range(n):
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, size=2).astype(np.float32))
            if render:
                env.render()
            if terminated or truncated:
                env.reset()
        return n / (time.perf_counter() - start)

    result = {"bare_steps_per_s": run(steps, render=False), "rendered_steps_per_s": run(steps, render=True)}
    env.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--peer-steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=224, help="top-down image size for both envs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    ours = measure_env({"rgb_size": args.size}, steps=args.steps, seed=args.seed)
    ours_rss = peak_rss_mb()
    peer = measure_highway_env(args.peer_steps, args.size, args.seed)
    result: dict[str, Any] = {"drivevlm": ours, "highway_env": peer, "drivevlm_peak_rss_mb": ours_rss}
    if "error" not in peer:
        result["ratio_bare"] = ours["bare_steps_per_s"] / peer["bare_steps_per_s"]
        result["ratio_rendered"] = ours["masks_and_top_down_steps_per_s"] / peer["rendered_steps_per_s"]
        result["ratio_all_images"] = ours["all_images_steps_per_s"] / peer["rendered_steps_per_s"]
    print(f"drivevlm   bare      {ours['bare_steps_per_s']:9.1f} steps/s")
    print(f"drivevlm   masks     {ours['masks_steps_per_s']:9.1f} steps/s   (goal >= 1000)")
    print(f"drivevlm   masks+top-down {ours['masks_and_top_down_steps_per_s']:9.1f} steps/s")
    print(f"drivevlm   3 images  {ours['all_images_steps_per_s']:9.1f} steps/s   (goal >= 300)")
    print(f"drivevlm   peak RSS  {ours_rss:9.1f} MB        (goal < 500)")
    if "error" in peer:
        print(f"highway-env: {peer['error']}")
    else:
        print(f"highway-env bare     {peer['bare_steps_per_s']:9.1f} steps/s")
        print(f"highway-env rendered {peer['rendered_steps_per_s']:9.1f} steps/s")
        print(
            f"ratio with equal rendering (one top-down image): {result['ratio_rendered']:.1f}x (goal >= 20x)"
        )
        print(f"ratio, ours with all three images: {result['ratio_all_images']:.1f}x")
    if args.json:
        print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()

"""The motorway's static score against the traffic around the ego (README, "The motorway hazards").

Drives the `random` motorway scenario with the scripted route follower at several target speeds and
seeds, scores every frame with the `vlm_rl_highway` preset (the bundled image-text model on the BEV), and
counts the vehicles in a box around the ego (8 m behind to 24 m ahead, 16 m to each side). Prints and
writes (`--out`) R_static per episode and per number of vehicles in the box, pooled, skipping each
episode's first 100 steps (the start from standstill).

    python docs/benchmark/highway_40k/static_by_traffic.py --out static_by_traffic.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from drivevlm.inspection.frames import drive_episode, scenario_env_config
from drivevlm.presets import Preset, as_preset, load_preset
from drivevlm.rewards.base import RewardFunction, RewardRequest
from drivevlm.rewards.build import build_reward
from drivevlm.scripted_policy import RouteFollower
from drivevlm.sim.world import WorldState

SKIP = 100


def vehicles_in_box(state: WorldState) -> int:
    ego = state.ego.pose
    cos, sin = math.cos(ego.yaw), math.sin(ego.yaw)
    count = 0
    for actor in state.actors:
        dx, dy = actor.pose.x - ego.x, actor.pose.y - ego.y
        ahead, left = dx * cos + dy * sin, -dx * sin + dy * cos
        count += -8 < ahead < 24 and abs(left) < 16
    return count


def episode(
    preset: Preset, reward_fn: RewardFunction, speed_kmh: float, seed: int, steps: int
) -> list[tuple[float, int, float]]:
    """(R_static, vehicles in the box, ego speed in km/h) per frame."""
    env_cfg = scenario_env_config(preset.env, "random", seed, render_frames=True)
    driver = RouteFollower(target_speed_kmh=speed_kmh, seed=seed, env_config=env_cfg)
    rows: list[tuple[float, int, float]] = []
    chunk: list[tuple[RewardRequest, int, float]] = []
    for item in drive_episode(env_cfg, steps, preset.reward.window_frames, seed, driver):
        chunk.append((item.request, vehicles_in_box(item.state), item.state.ego.speed * 3.6))
        if len(chunk) == 32:
            rows += score(reward_fn, chunk)
            chunk = []
    return rows + score(reward_fn, chunk)


def score(
    reward_fn: RewardFunction, chunk: list[tuple[RewardRequest, int, float]]
) -> list[tuple[float, int, float]]:
    terms = reward_fn([request for request, _, _ in chunk]) if chunk else []
    return [(t.terms["r_static"], n, v) for t, (_, n, v) in zip(terms, chunk, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--speeds", type=float, nargs="+", default=[20, 40, 60, 80, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    preset = as_preset(load_preset("vlm_rl_highway", []))
    reward_fn = build_reward(preset.reward, preset.models)
    episodes: dict[str, dict[str, float]] = {}
    pooled: dict[int, list[float]] = defaultdict(list)
    for speed in args.speeds:
        for seed in args.seeds:
            rows = episode(preset, reward_fn, speed, seed, args.steps)[SKIP:]
            if not rows:
                continue
            for r_static, vehicles, _ in rows:
                pooled[min(vehicles, 3)].append(r_static)
            episodes[f"v{speed:g}_s{seed}"] = {
                "frames": len(rows),
                "speed_kmh": statistics.mean(v for _, _, v in rows),
                "vehicles_in_box": statistics.mean(n for _, n, _ in rows),
                "r_static": statistics.mean(r for r, _, _ in rows),
            }
            print(f"v{speed:g}_s{seed}", episodes[f"v{speed:g}_s{seed}"], flush=True)
    by_vehicles = {
        f"{n}{'+' if n == 3 else ''}": {"frames": len(v), "r_static": statistics.mean(v)}
        for n, v in sorted(pooled.items())
    }
    print("pooled, by vehicles in the box:", by_vehicles)
    if args.out:
        args.out.write_text(json.dumps({"episodes": episodes, "by_vehicles": by_vehicles}, indent=1))


if __name__ == "__main__":
    main()

"""Generate the bundled models' training data by driving the simulator with scripted and noisy drivers.

Every stored step holds the BEV RGB and front camera frames, ground-truth boxes in the front frame,
scene descriptions and labels (risk category, collision within the next 2 s, a vulnerable road user
within 10 m ahead). The split is by town and by seed: episodes in the training town ("grid") use seeds
from one range and go to `train`; episodes in the unseen towns use another range and go to `heldout`.
The one motorway (`highway`) is a training town too: its held-out frames come from another `seed`.

Layout: ``out_dir/<split>/shard_NNNNN.npz`` (uint8 ``bev``, ``front``: (n, S, S, 3)) beside
``shard_NNNNN.jsonl`` (one record per frame, same order), and ``out_dir/dataset.json`` (manifest).
Every file is written to a temporary name first and moved into place.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drivevlm.atomic import atomic_output, write_atomic
from drivevlm.data.boxes import front_boxes
from drivevlm.data.describe import describe_bev, describe_front
from drivevlm.data.risk import describe_risk
from drivevlm.env import DriveEnv
from drivevlm.render.front_camera import FrontCameraRenderer
from drivevlm.scripted_policy import RouteFollower
from drivevlm.sim.base import EpisodeSpec
from drivevlm.sim.scenarios import (
    SCENARIOS,
    TOWNS,
    TRAINING_TOWN,
    URBAN_SCENARIOS,
    URBAN_TOWNS,
    check_choice,
    check_town,
    town_speed_scale,
)

FORMAT_VERSION = 1
DEFAULT_SIZE = 160
SHARD_FRAMES = 256
COLLISION_HORIZON_S = 2.0
VRU_NEAR_M = 10.0
# Held-out episodes draw their seeds from a range training episodes never use.
HELDOUT_SEED_OFFSET = 1_000_000
POLICIES = ("cautious", "reckless", "random")
DENSITIES = ("regular", "dense", "empty")


def split_of_town(town: str) -> str:
    motorway = town in TOWNS and TOWNS[town].kind == "highway"
    return "train" if town == TRAINING_TOWN or motorway else "heldout"


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    with atomic_output(path) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, **arrays)


@dataclass
class _ShardWriter:
    """Collects frames of one split and writes a shard (npz + jsonl) every `SHARD_FRAMES` frames."""

    root: Path
    split: str
    shard_frames: int = SHARD_FRAMES
    bev: list[np.ndarray] = field(default_factory=list)
    front: list[np.ndarray] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    shards: int = 0
    frames: int = 0

    def add(self, bev: np.ndarray, front: np.ndarray, record: dict[str, Any]) -> None:
        self.bev.append(bev)
        self.front.append(front)
        self.records.append(record)
        if len(self.records) >= self.shard_frames:
            self.flush()

    def flush(self) -> None:
        if not self.records:
            return
        name = f"shard_{self.shards:05d}"
        folder = self.root / self.split
        _atomic_savez(folder / f"{name}.npz", bev=np.stack(self.bev), front=np.stack(self.front))
        lines = "".join(
            json.dumps({**r, "shard": name, "index": i}) + "\n" for i, r in enumerate(self.records)
        )
        write_atomic(folder / f"{name}.jsonl", lines.encode())
        self.frames += len(self.records)
        self.shards += 1
        self.bev, self.front, self.records = [], [], []


def _make_policy(kind: str, rng: np.random.Generator, speed_scale: float = 1.0) -> RouteFollower:
    """A scripted driver of the kind; its urban target speeds times `speed_scale` (a motorway's 4)."""
    seed = int(rng.integers(0, 2**31 - 1))
    if kind == "cautious":
        return RouteFollower(
            target_speed_kmh=speed_scale * float(rng.uniform(15, 30)), cautious=True, noise=0.05, seed=seed
        )
    if kind == "reckless":
        return RouteFollower(
            target_speed_kmh=speed_scale * float(rng.uniform(20, 40)), cautious=False, noise=0.1, seed=seed
        )
    target = speed_scale * float(rng.uniform(10, 45))
    return RouteFollower(target_speed_kmh=target, cautious=False, noise=0.35, seed=seed)


def _run_episode(
    env: DriveEnv,
    camera: FrontCameraRenderer,
    town: str,
    scenario: str,
    density: str,
    seed: int,
    policy_kind: str,
    rng: np.random.Generator,
    max_steps: int,
) -> list[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """One episode's steps (after the first action), labelled with look-ahead over the whole episode."""
    obs, _ = env.reset(seed=seed, options={"town": town, "scenario": scenario, "density": density})
    speed_scale = town_speed_scale(town)
    policy = _make_policy(policy_kind, rng, speed_scale)
    signals = None
    steps: list[tuple[np.ndarray, np.ndarray, dict[str, Any]]] = []
    states = []
    collision_step: int | None = None
    for step in range(1, max_steps + 1):
        obs, _, terminated, truncated, info = env.step(policy.act(obs, signals))
        signals = info["signals"]
        state = env.world_state
        assert state is not None
        states.append(state)
        risk = describe_risk(state)
        record = {
            "town": town,
            "scenario": scenario,
            "density": density,
            "seed": seed,
            "policy": policy_kind,
            "step": step,
            "time_s": round(state.time, 3),
            "speed_kmh": round(signals.speed_kmh, 2),
            "collided": bool(signals.collided),
            "collision_kind": info["collision_kind"],
            "nearest_vru_ahead_m": _finite(signals.nearest_vru_ahead_m),
            "nearest_vehicle_ahead_m": _finite(signals.nearest_vehicle_ahead_m),
            "vru_within_10m": bool(signals.nearest_vru_ahead_m < VRU_NEAR_M),
            "risk_category": risk.category,
            "risk_description": risk.description,
            "boxes": [b.to_json() for b in front_boxes(camera, state)],
        }
        steps.append((info["frames"]["bev_rgb"], info["frames"]["front"], record))
        if signals.collided and collision_step is None:
            collision_step = step
        if terminated or truncated:
            break
    horizon = round(COLLISION_HORIZON_S / EpisodeSpec(town=town).dt)
    labels = collision_ahead([r["step"] for _, _, r in steps], collision_step, horizon)
    for (_, _, record), state, soon in zip(steps, states, labels, strict=True):
        record["collision_within_2s"] = soon
        record["unsafe"] = bool(soon or record["vru_within_10m"])
        record["bev_description"] = describe_bev(state, collision_soon=soon)
        record["front_description"] = describe_front(state, collision_soon=soon)
    return steps


def collision_ahead(steps: list[int], collision_step: int | None, horizon_steps: int) -> list[bool]:
    """For each step: does the episode's collision happen at it or within `horizon_steps` after it?"""
    if collision_step is None:
        return [False] * len(steps)
    return [0 <= collision_step - step <= horizon_steps for step in steps]


def _finite(value: float) -> float | None:
    return round(float(value), 2) if math.isfinite(value) else None


def generate_dataset(
    out_dir: str | Path,
    frames: int,
    seed: int = 0,
    towns: tuple[str, ...] | list[str] | None = None,
    scenarios: tuple[str, ...] | list[str] | None = None,
    size: int = DEFAULT_SIZE,
    max_episode_steps: int = 300,
    train_share: float = 0.6,
    shard_frames: int = SHARD_FRAMES,
    step_stride: int = 1,
) -> dict[str, Any]:
    """Drive episodes until about `frames` frames are stored; return the manifest (also in dataset.json).

    The training town gets `train_share` of the frames, the unseen towns share the rest. Episodes cycle
    through scenarios, densities and drivers (cautious, reckless, random-ish) so that safe, near-miss and
    collision moments all occur. `step_stride` keeps every n-th step (fewer, less alike frames).
    """
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames: must be a positive integer, got {frames!r}")
    if not 0.0 < train_share < 1.0:
        raise ValueError(f"train_share: must lie in (0, 1), got {train_share!r}")
    if not isinstance(step_stride, int) or step_stride < 1:
        raise ValueError(f"step_stride: must be a positive integer, got {step_stride!r}")
    if max_episode_steps < 1:
        raise ValueError(f"max_episode_steps: must be positive, got {max_episode_steps!r}")
    towns = tuple(towns) if towns is not None else URBAN_TOWNS
    scenarios = tuple(scenarios) if scenarios is not None else URBAN_SCENARIOS
    if not towns:
        raise ValueError("towns: need at least one town")
    if not scenarios:
        raise ValueError("scenarios: need at least one scenario")
    towns = tuple(check_town(town, field="towns") for town in towns)
    for scenario in scenarios:
        check_choice("scenarios", scenario, SCENARIOS)
    root = Path(out_dir)
    if (root / "dataset.json").exists():
        raise FileExistsError(f"out_dir: {root} already holds a data set (dataset.json); choose a new folder")
    train_towns = [t for t in towns if split_of_town(t) == "train"]
    held_towns = [t for t in towns if split_of_town(t) == "heldout"]
    quota: dict[str, int] = {}

    def share(group: list[str], total: int) -> None:
        for i, town in enumerate(group):
            quota[town] = total // len(group) + (1 if i < total % len(group) else 0)

    if train_towns and held_towns:
        train_frames = max(1, round(frames * train_share))
        share(train_towns, train_frames)
        share(held_towns, frames - train_frames)
    else:
        share(list(towns), frames)

    rng = np.random.default_rng(seed)
    env = DriveEnv(
        {"render_frames": True, "rgb_size": size, "max_episode_steps": max_episode_steps, "training": False}
    )
    camera = FrontCameraRenderer(width=size, height=size)
    writers = {s: _ShardWriter(root, s, shard_frames) for s in ("train", "heldout")}
    episodes: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for t_index, town in enumerate(towns):
            split = split_of_town(town)
            stored = 0
            episode = 0
            while stored < quota[town]:
                scenario = scenarios[episode % len(scenarios)]
                policy = POLICIES[episode % len(POLICIES)]
                density = (
                    DENSITIES[int(rng.integers(0, len(DENSITIES)))] if scenario == "random" else "regular"
                )
                base = HELDOUT_SEED_OFFSET if split == "heldout" else 0
                ep_seed = base + seed * 10_000 + t_index * 1_000 + episode
                steps = _run_episode(
                    env, camera, town, scenario, density, ep_seed, policy, rng, max_episode_steps
                )
                name = f"{town}-{ep_seed}"
                kept = [s for s in steps if s[2]["step"] % step_stride == 0][: quota[town] - stored]
                for bev, front, record in kept:
                    writers[split].add(bev, front, {**record, "episode": name, "split": split})
                stored += len(kept)
                episodes.append(
                    {
                        "episode": name,
                        "town": town,
                        "scenario": scenario,
                        "policy": policy,
                        "density": density,
                        "seed": ep_seed,
                        "split": split,
                        "frames": len(kept),
                        "collided": any(r["collided"] for _, _, r in kept),
                    }
                )
                episode += 1
    finally:
        env.close()
    for writer in writers.values():
        writer.flush()
    manifest = {
        "format_version": FORMAT_VERSION,
        "frames": sum(w.frames for w in writers.values()),
        "splits": {s: {"frames": w.frames, "shards": w.shards} for s, w in writers.items()},
        "size": size,
        "seed": seed,
        "step_stride": step_stride,
        "towns": list(towns),
        "scenarios": list(scenarios),
        "collision_horizon_s": COLLISION_HORIZON_S,
        "vru_near_m": VRU_NEAR_M,
        "seconds": round(time.perf_counter() - started, 1),
        "episodes": episodes,
    }
    write_atomic(root / "dataset.json", json.dumps(manifest, indent=1).encode())
    return manifest

"""How selective each attention gate is: the paper's class-only gate beside the path-aware gate.

Frames come from scripted driving (the route follower) over the training default scenario (`random`) and
the VRU scenarios, with the bundled detector. Ground truth, from the world state: a pedestrian or cyclist
is in or near the path ahead, i.e. at most `--truth-range-m` ahead and `--truth-half-width-m` either side
of the ego's heading (the ego's lane and a margin; sidewalks lie farther out). Per gate: the share of frames
it opens on (overall and per scenario) and its recall of the ground-truth frames. Goal: the path-aware gate
keeps at least 95 % of the class gate's recall while opening on at most a third as many frames.

    python benchmarks/gate_selectivity.py [--frames-per-scenario 80] [--seed 100] [--flip-test off] [--json]

Choose gate settings on one seed and report another: the default seed (100) was not used to set the
path-aware gate's defaults (seed 0 was).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from drivevlm.config import EnvConfig
from drivevlm.env import DriveEnv
from drivevlm.inspection.fidelity import path_truth
from drivevlm.inspection.frames import scenario_env_config
from drivevlm.models.registry import make_detector
from drivevlm.rewards.config import GateConfig
from drivevlm.rewards.dynamic import AttentionGate, GroundCamera, PathFilter
from drivevlm.scripted_policy import RouteFollower
from drivevlm.sim.scenarios import SCENARIOS
from drivevlm.sim.world import WorldState


def vru_in_path(state: WorldState, range_m: float, half_width_m: float) -> bool:
    return path_truth(state, half_width_m).vru_m <= range_m


def drive(scenario: str, seed: int, frames: int, stride: int, args: argparse.Namespace) -> Iterator[Any]:
    """(front frame, speed km/h, ground truth) every `stride` steps of scripted episodes."""
    taken = 0
    for episode in range(8):
        env = DriveEnv(scenario_env_config(EnvConfig(), scenario, seed + episode, True))
        policy, signals = RouteFollower(seed=seed + episode), None
        try:
            obs, _ = env.reset(seed=seed + episode)
            for step in range(1, stride * frames + 1):
                obs, _, terminated, truncated, info = env.step(policy.act(obs, signals))
                signals = info["signals"]
                if step % stride == 0:
                    assert env.world_state is not None
                    truth = vru_in_path(env.world_state, args.truth_range_m, args.truth_half_width_m)
                    yield info["frames"]["front"], signals.speed_kmh, truth
                    taken += 1
                    if taken >= frames:
                        return
                if terminated or truncated:
                    break
        finally:
            env.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames-per-scenario", type=int, default=80)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--truth-range-m", type=float, default=30.0)
    parser.add_argument("--truth-half-width-m", type=float, default=2.5)
    parser.add_argument("--half-width-m", type=float, default=None, help="path gate (default: GateConfig's)")
    parser.add_argument(
        "--max-distance-m", type=float, default=None, help="path gate (default: GateConfig's)"
    )
    parser.add_argument("--ttc-s", type=float, default=None, help="path gate (default: GateConfig's)")
    parser.add_argument(
        "--flip-test",
        choices=("model", "on", "off"),
        default="model",
        help="the detector's test-time flip (model: as its config.json says)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    samples, labels = [], []
    for index, scenario in enumerate(SCENARIOS):
        got = list(drive(scenario, args.seed + 1000 * index, args.frames_per_scenario, args.stride, args))
        samples += got
        labels += [scenario] * len(got)
    scenarios = np.array(labels)
    frames = np.stack([frame for frame, _, _ in samples])
    speeds = [speed for _, speed, _ in samples]
    truth = np.array([t for _, _, t in samples])

    defaults = GateConfig()
    flip = {"model": None, "on": True, "off": False}[args.flip_test]
    detector = make_detector("tiny", "bundled", flip_test=flip)
    camera = GroundCamera(
        defaults.camera_hfov_deg,
        defaults.camera_height_m,
        defaults.camera_pitch_deg,
        defaults.camera_forward_m,
    )
    path = PathFilter(
        camera,
        args.max_distance_m or defaults.max_distance_m,
        defaults.ttc_s if args.ttc_s is None else args.ttc_s,
        args.half_width_m or defaults.half_width_m,
    )
    detections = detector.detect(frames)

    class Replay:
        """The detections computed once above, served to both gates."""

        name = detector.name

        def detect(self, images: Any) -> list[Any]:
            return detections

    gates = {
        "class": AttentionGate(Replay(), defaults.classes, defaults.threshold),  # type: ignore[arg-type]
        "path": AttentionGate(Replay(), defaults.classes, defaults.threshold, path),  # type: ignore[arg-type]
    }
    rows: dict[str, Any] = {}
    for name, gate in gates.items():
        opened, _ = gate(frames, speeds)
        rows[name] = {
            "open_rate": float(opened.mean()),
            "recall": float(opened[truth].mean()) if truth.any() else None,
            "open_rate_by_scenario": {s: float(opened[scenarios == s].mean()) for s in SCENARIOS},
        }
    result = {
        "frames": len(samples),
        "seed": args.seed,
        "truth_rate": float(truth.mean()),
        "detector_flip_test": detector.flip_test,
        "truth_range_m": args.truth_range_m,
        "truth_half_width_m": args.truth_half_width_m,
        "path_gate": {
            "half_width_m": path.half_width_m,
            "max_distance_m": path.max_distance_m,
            "ttc_s": path.ttc_s,
        },
        "gates": rows,
        "path_vs_class_open_ratio": rows["path"]["open_rate"] / max(rows["class"]["open_rate"], 1e-9),
        "path_vs_class_recall_ratio": (rows["path"]["recall"] or 0.0)
        / max(rows["class"]["recall"] or 0.0, 1e-9),
    }
    print(
        f"{len(samples)} frames (seed {args.seed}), ground truth: a VRU at most {args.truth_range_m:g} m "
        f"ahead and {args.truth_half_width_m:g} m aside on {result['truth_rate']:.1%} of them"
    )
    print(f"{'gate':<7}{'opens':>8}{'recall':>8}  " + "".join(f"{s[:12]:>13}" for s in SCENARIOS))
    for name, row in rows.items():
        per = "".join(f"{row['open_rate_by_scenario'][s]:>13.2f}" for s in SCENARIOS)
        print(f"{name:<7}{row['open_rate']:>8.3f}{row['recall']:>8.3f}  {per}")
    print(
        f"path / class: opens {result['path_vs_class_open_ratio']:.2f}x as often (goal <= 0.33), "
        f"keeps {result['path_vs_class_recall_ratio']:.1%} of its recall (goal >= 95%)"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()

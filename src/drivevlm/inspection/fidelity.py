"""Reward fidelity: does a reward slow the car for people, and only for them?

A scripted driver (a different target speed per episode, half of the episodes cautious) drives every
scenario for many seeds; every `stride`-th step becomes one reward request, scored by each preset on the
very same frames. Ground truth comes from the world state: the nearest pedestrian or cyclist in or near the
ego's path (ahead of it, at most `half_width_m` aside) sets the frame's distance band. Per preset, per
scenario and pooled:
- AUC of the risk score 1 - R_norm, frames with a person within 12 m (NEAR_BANDS) against frames with no
  risk ahead (nothing at all in the path within 20 m: the headline), and against frames with no person
  within 20 m (which keeps the car-following frames, where slowing is right, among the negatives); for the
  semantic presets also on the raw score R_static + R_dynamic, before θ clips it (ties at 0 or 1 count
  half, so a θ that saturates many frames lowers the first AUC but not this one);
- mean v_des per distance band (0-6, 6-12, 12-20 m, none) and on clear road (nothing in the path);
- the gate rate and the LVLM's most frequent answers per band;
- for the semantic presets, θ anchored on the ground truth (`suggest_theta`): the raw score
  R_static + R_dynamic of all frames sets θmin, that of the clear-road frames θmax.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivevlm.config import ConfigError, EnvConfig
from drivevlm.eval.metrics import roc_auc
from drivevlm.inspection.frames import check_scenarios, drive_episode, scenario_env_config
from drivevlm.rewards.base import RewardFunction, RewardRequest
from drivevlm.scripted_policy import RouteFollower
from drivevlm.sim.geometry import world_to_ego
from drivevlm.sim.world import WorldState

FIDELITY_SCENARIOS: tuple[str, ...] = (
    "pedestrian_crossing",
    "occluded_pedestrian",
    "slow_cyclist",
    "cyclist_merge",
    "oncoming_cyclist",
    "car_following",
    "random",
)
BAND_EDGES_M = (6.0, 12.0, 20.0)
BANDS = ("0-6", "6-12", "12-20", "none")
NEAR_BANDS = ("0-6", "6-12")
POOLED = "pooled"
# Above every seed that set θ (calibration: below 10,000), chose the path gate's defaults, or made a bundled
# model's training or held-out data (below 10,000,000).
DEFAULT_SEED = 20_000_000
_ANSWERS_SHOWN = 3


@dataclass(frozen=True, slots=True)
class Truth:
    """What is in the ego's path: the nearest vulnerable road user and whether the road is clear."""

    vru_m: float
    clear: bool

    @property
    def band(self) -> str:
        for edge, name in zip(BAND_EDGES_M, BANDS, strict=False):
            if self.vru_m <= edge:
                return name
        return BANDS[-1]


def path_truth(state: WorldState, half_width_m: float = 2.5) -> Truth:
    """The nearest pedestrian or cyclist ahead within `half_width_m` of the ego's heading line, and whether
    nothing at all (no such person, no vehicle) is in that corridor within the last band's reach."""
    if not state.actors:
        return Truth(math.inf, True)
    ego = state.ego.pose
    local = world_to_ego(np.array([(a.pose.x, a.pose.y) for a in state.actors]), ego.x, ego.y, ego.yaw)
    in_path = (local[:, 0] > 0.0) & (np.abs(local[:, 1]) <= half_width_m)
    vulnerable = np.array([a.kind.is_vulnerable for a in state.actors])
    ahead = local[:, 0]
    people = ahead[in_path & vulnerable]
    vru_m = float(people.min()) if people.size else math.inf
    clear = not bool(np.any(in_path & (ahead <= BAND_EDGES_M[-1])))
    return Truth(vru_m, clear)


def scripted_driver(seed: int, env_config: EnvConfig | None = None) -> RouteFollower:
    """A route follower whose target speed (12-30 km/h) and caution vary with the seed, so that frames near
    people come at many speeds, braking or not."""
    rng = np.random.default_rng(seed)
    return RouteFollower(
        target_speed_kmh=float(rng.uniform(12.0, 30.0)),
        cautious=seed % 2 == 0,
        seed=seed,
        env_config=env_config,
    )


def auc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(a positive scores above a negative), ties counting half; None when either side is empty."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if not pos.size or not neg.size:
        return None
    labels = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])
    return roc_auc(np.concatenate([pos, neg]), labels)


@dataclass(frozen=True, slots=True)
class ScoredFrame:
    scenario: str
    truth: Truth
    r_norm: float
    v_des: float
    gate: float
    answer: str
    # R_static + R_dynamic before Phase I normalisation; None for presets without one (oracles, baselines).
    score: float | None = None


def _summary(frames: Sequence[ScoredFrame]) -> dict[str, Any]:
    by_band: dict[str, list[ScoredFrame]] = defaultdict(list)
    for frame in frames:
        by_band[frame.truth.band].append(frame)
    near = [1.0 - f.r_norm for band in NEAR_BANDS for f in by_band[band]]
    far = [1.0 - f.r_norm for f in by_band["none"]]
    clear_frames = [f for f in frames if f.truth.clear]
    clear = [f.v_des for f in clear_frames]

    def mean(values: Sequence[float]) -> float | None:
        return float(np.mean(values)) if values else None

    answers = {
        band: Counter(f.answer for f in by_band[band] if f.gate > 0).most_common(_ANSWERS_SHOWN)
        for band in BANDS
    }
    return {
        "frames": len(frames),
        "auc_near_vs_clear": auc(near, [1.0 - f.r_norm for f in clear_frames]),
        # The same ranking on the raw score, before θ clips it: the models' own discrimination.
        "auc_raw_near_vs_clear": _raw_auc(by_band, clear_frames),
        "auc_near_vs_none": auc(near, far),
        "v_des_by_band": {band: mean([f.v_des for f in by_band[band]]) for band in BANDS},
        "frames_by_band": {band: len(by_band[band]) for band in BANDS},
        "v_des_clear": mean(clear),
        "clear_frames": len(clear),
        "gate_rate": mean([f.gate for f in frames]),
        "gate_rate_by_band": {band: mean([f.gate for f in by_band[band]]) for band in BANDS},
        "answers_by_band": {band: [[text, n] for text, n in common] for band, common in answers.items()},
    }


def _raw_auc(by_band: Mapping[str, Sequence[ScoredFrame]], clear: Sequence[ScoredFrame]) -> float | None:
    near = [-f.score for band in NEAR_BANDS for f in by_band[band] if f.score is not None]
    return auc(near, [-f.score for f in clear if f.score is not None])


def suggest_theta(
    frames: Sequence[ScoredFrame], low_pct: float = 5.0, clear_pct: float = 25.0
) -> dict[str, Any] | None:
    """θ anchored on ground truth: θmin at the `low_pct` percentile of the raw score over all frames (the
    lower anchor `reward calibrate` uses), θmax at the `clear_pct` percentile of the clear-road frames. The
    percentiles of all frames (`reward calibrate`) put the typical clear-road frame mid-range, so clear road
    asked about half the target speed; here most clear-road frames ask the full target speed. With the
    bundled models it also clips most frames near people to full speed (README, "Reward fidelity"), so it
    is printed as a suggestion and the presets keep p5/p95. None without raw scores or clear-road frames."""
    scores = [f.score for f in frames if f.score is not None]
    clear = [f.score for f in frames if f.truth.clear and f.score is not None]
    if not clear:
        return None
    theta_min, theta_max = float(np.percentile(scores, low_pct)), float(np.percentile(clear, clear_pct))
    return {
        "theta_min": theta_min,
        "theta_max": theta_max,
        "low_pct": low_pct,
        "clear_pct": clear_pct,
        "frames": len(scores),
        "clear_frames": len(clear),
        # A model whose clear-road frames score among its lowest has no θ to give.
        "usable": theta_max > theta_min,
    }


def summarise(frames: Sequence[ScoredFrame]) -> dict[str, Any]:
    """Per scenario and pooled; the pooled entry also carries the ground-truth θ suggestion."""
    scenarios = list(dict.fromkeys(f.scenario for f in frames))
    out = {name: _summary([f for f in frames if f.scenario == name]) for name in scenarios}
    out[POOLED] = _summary(frames) | {"theta_from_truth": suggest_theta(frames)}
    return out


def _score(
    reward_fn: RewardFunction, scenario: str, requests: Sequence[RewardRequest], truths: Sequence[Truth]
) -> list[ScoredFrame]:
    results = reward_fn(list(requests))
    return [
        ScoredFrame(
            scenario,
            truth,
            float(result.terms["r_norm"]),
            float(result.terms["v_des"]),
            float(result.terms.get("gate", 0.0)),
            result.texts.get("dynamic_goal", ""),
            _raw_score(result.terms),
        )
        for truth, result in zip(truths, results, strict=True)
    ]


def _raw_score(terms: Mapping[str, float]) -> float | None:
    if "r_static" not in terms:
        return None
    return float(terms["r_static"]) + float(terms.get("r_dynamic", 0.0))


def run_fidelity(
    reward_fns: Mapping[str, RewardFunction],
    env_config: EnvConfig,
    window_frames: int,
    scenarios: Sequence[str] = FIDELITY_SCENARIOS,
    seeds: int = 20,
    seed: int = DEFAULT_SEED,
    stride: int = 5,
    max_steps: int = 300,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Score every preset in `reward_fns` on the same scripted frames; `{"presets": {name: summary}, ...}`."""
    names = check_scenarios(scenarios)
    if seeds < 1 or stride < 1 or max_steps < 1:
        raise ConfigError(f"seeds, stride, max_steps: must be >= 1, got {seeds}, {stride}, {max_steps}")
    render = any(fn.needs_frames for fn in reward_fns.values())
    scored: dict[str, list[ScoredFrame]] = {name: [] for name in reward_fns}
    for index, scenario in enumerate(names):
        for episode in range(seeds):
            episode_seed = seed + 1000 * index + episode
            config = scenario_env_config(env_config, scenario, episode_seed, render)
            requests, truths = [], []
            driver = scripted_driver(episode_seed, config)
            for item in drive_episode(config, max_steps, window_frames, episode_seed, driver):
                if item.step % stride == 0:
                    requests.append(item.request)
                    truths.append(path_truth(item.state))
            for name, reward_fn in reward_fns.items():
                scored[name] += _score(reward_fn, scenario, requests, truths)
            if progress is not None:
                progress(scenario, episode)
    return {
        "scenarios": names,
        "seeds": seeds,
        "first_seed": seed,
        "stride": stride,
        "max_steps": max_steps,
        "presets": {name: summarise(frames) for name, frames in scored.items()},
    }

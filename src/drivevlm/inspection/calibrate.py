"""Calibration: run a preset's reward on simulator frames and suggest θmin/θmax for Phase I normalisation.

Semantic presets (DriveVLM-RL, VLM-RL) get `rewards.semantic.calibrate`: distributions of R_static, the gated
R_dynamic and their sum, the gate rate, LVLM fallbacks and a θ suggestion. Every other preset (hand-designed
baselines, CLIP baselines, labelled oracles) has no θ to calibrate; for those the distribution of each of its
reward terms is reported instead, so the command answers "what does this reward look like" for any preset.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from drivevlm.atomic import write_atomic
from drivevlm.config import ConfigError
from drivevlm.inspection.frames import DEFAULT_SAMPLE_SCENARIOS, sample_requests
from drivevlm.presets import Preset, as_preset
from drivevlm.rewards.build import ModelFactory, build_reward

_PERCENTILES = (0, 5, 25, 50, 75, 95, 100)
_PERCENTILE_KEYS = ("min", "p5", "p25", "p50", "p75", "p95", "max")


def distribution(values: np.ndarray) -> dict[str, float | int]:
    """count, mean, std and percentiles (min, p5 ... max) of a 1-D array; {"count": 0} when empty."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    pct = np.percentile(values, _PERCENTILES)
    return {"count": int(values.size), "mean": float(values.mean()), "std": float(values.std())} | {
        key: float(v) for key, v in zip(_PERCENTILE_KEYS, pct, strict=True)
    }


def _fallback_reasons(reward_fn: Any) -> dict[str, int]:
    dynamic = getattr(reward_fn, "dynamic", None)
    stats = getattr(dynamic, "stats", None) or {}
    return {key.removeprefix("fallback:"): int(n) for key, n in stats.items() if key.startswith("fallback:")}


def run_calibration(
    config: Preset | Mapping[str, Any],
    frames: int = 64,
    scenarios: Sequence[str] | None = None,
    seed: int = 0,
    stride: int = 5,
    low_pct: float = 5.0,
    high_pct: float = 95.0,
    factory: ModelFactory | None = None,
) -> dict[str, Any]:
    """Sample `frames` scripted-driving requests over `scenarios` (default: the preset's own training mix,
    `env.scenario_mix`, else the VRU scenarios and car following); summarise the preset's reward on them."""
    from drivevlm.rewards.semantic import SemanticReward, calibrate

    preset = as_preset(config)
    reward_cfg, env_cfg = preset.reward, preset.env
    if scenarios is None:
        scenarios = env_cfg.scenario_mix or DEFAULT_SAMPLE_SCENARIOS
    reward_fn = build_reward(reward_cfg, preset.models, factory)
    needs_frames = bool(reward_fn.needs_frames)
    started = time.perf_counter()
    labelled = sample_requests(
        env_cfg, scenarios, frames, reward_cfg.window_frames, needs_frames, seed=seed, stride=stride
    )
    requests = [request for _, request in labelled]
    sampled = time.perf_counter()
    result: dict[str, Any] = {
        "preset": reward_cfg.preset,
        "oracle": "oracle" in reward_cfg.preset,
        "needs_frames": needs_frames,
        "scenarios": list(scenarios),
        "low_pct": low_pct,
        "high_pct": high_pct,
    }
    if isinstance(reward_fn, SemanticReward):
        result |= calibrate(reward_fn, requests, low_pct, high_pct, labels=[s for s, _ in labelled])
        result["gate_rate_by_scenario"] = result.pop("gate_rate_by_label")
        result["lvlm_fallback_reasons"] = _fallback_reasons(reward_fn)
    else:
        terms = reward_fn(requests)
        names = list(dict.fromkeys(name for t in terms for name in t.terms))
        result |= {
            "frames": len(requests),
            "final": distribution(np.array([t.final for t in terms])),
            "terms": {
                name: distribution(np.array([t.terms[name] for t in terms if name in t.terms]))
                for name in names
            },
            "current_theta": [reward_cfg.theta_min, reward_cfg.theta_max],
            "suggested_theta_min": None,
            "suggested_theta_max": None,
            "theta_note": f"preset {reward_cfg.preset} does not normalise with θmin/θmax; nothing to suggest",
        }
    scored = time.perf_counter()
    result |= {
        "seconds_sampling": sampled - started,
        "seconds_scoring": scored - sampled,
        "scored_frames_per_s": len(requests) / max(scored - sampled, 1e-9),
    }
    return result


def write_calibrated_config(config: Preset | Mapping[str, Any], result: dict[str, Any], path: Path) -> Path:
    """A copy of the preset (overrides applied) with the suggested θmin/θmax; comments are not kept."""
    theta_min, theta_max = result.get("suggested_theta_min"), result.get("suggested_theta_max")
    if theta_min is None or theta_max is None:
        raise ConfigError(f"write: {result.get('theta_note', 'no θ suggestion to write')}")
    copy = dict(config.data if isinstance(config, Preset) else config)
    reward = dict(copy.get("reward") or {})
    reward["theta_min"], reward["theta_max"] = float(theta_min), float(theta_max)
    copy["reward"] = reward
    Preset.parse(copy)
    header = (
        f"# Calibrated by `drivevlm reward calibrate` on {result['frames']} frames "
        f"({', '.join(result['scenarios'])}): theta_min/theta_max = p{result.get('low_pct', 5):g}/"
        f"p{result.get('high_pct', 95):g} of R_static + R_dynamic.\n"
    )
    write_atomic(path, (header + yaml.safe_dump(copy, sort_keys=False)).encode())
    return path

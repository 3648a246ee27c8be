"""The composed semantic reward: DriveVLM-RL (static + dynamic pathways) and VLM-RL (static only).

Per batch: R_static on BEV frames, R_dynamic on front windows (gated), Phase I normalisation with θmin/θmax,
Phase II shaping from the vehicle signals, then the collision override. Every intermediate term is returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivevlm.driving_factors import ShapingParams, shaping_terms
from drivevlm.models.lvlm.prompts import load_prompt
from drivevlm.rewards.base import RewardRequest, RewardTerms
from drivevlm.rewards.build import ModelProvider
from drivevlm.rewards.config import RewardConfig
from drivevlm.rewards.dynamic import AttentionGate, DynamicPathway, GroundCamera, PathFilter
from drivevlm.rewards.registry import register_preset
from drivevlm.rewards.signals import signal_arrays, terms_rows
from drivevlm.rewards.static import StaticPathway
from drivevlm.rewards.synthesis import final_reward, normalise


@dataclass(frozen=True, slots=True)
class SynthesisParams:
    theta_min: float = -0.03
    theta_max: float = 0.0
    collision_penalty: float | None = -10.0
    shaping: ShapingParams = field(default_factory=ShapingParams)

    def __post_init__(self) -> None:
        if not self.theta_max > self.theta_min:
            raise ValueError(
                f"theta_max ({self.theta_max}) must be greater than theta_min ({self.theta_min})"
            )

    @classmethod
    def from_config(cls, cfg: RewardConfig) -> SynthesisParams:
        return cls(
            cfg.theta_min,
            cfg.theta_max,
            cfg.collision_penalty,
            ShapingParams(
                cfg.target_speed_kmh,
                cfg.max_center_offset_m,
                cfg.max_heading_error_deg,
                cfg.max_center_offset_std_m,
            ),
        )


def synthesise(
    semantic_norm: np.ndarray, signals: dict[str, np.ndarray], params: SynthesisParams
) -> dict[str, Any]:
    """Phase II and the final reward from an already normalised semantic score in [0, 1]."""
    terms = shaping_terms(
        semantic_norm,
        signals["speed_kmh"],
        signals["center_offset_m"],
        signals["heading_error_deg"],
        signals["center_offset_std_m"],
        params.shaping,
        target_speed_kmh=signals["target_speed_kmh"],
    )
    terms["final"] = final_reward(terms["r_shaping"], signals["collided"], params.collision_penalty)
    return terms


class SemanticReward:
    """`RewardFunction` for DriveVLM-RL (`dynamic` given) and VLM-RL (`dynamic=None`)."""

    needs_frames = True

    def __init__(
        self,
        static: StaticPathway,
        dynamic: DynamicPathway | None = None,
        params: SynthesisParams | None = None,
        name: str = "drivevlm_rl",
    ) -> None:
        self.static = static
        self.dynamic = dynamic
        self.params = params or SynthesisParams()
        self.name = name

    def scores(self, requests: Sequence[RewardRequest]) -> dict[str, Any]:
        """The raw semantic scores (no synthesis): r_static, r_dynamic, gate, goals, fallbacks, detections."""
        missing = [i for i, r in enumerate(requests) if r.bev_rgb is None]
        if missing:
            raise ValueError(
                f"bev_rgb: missing in request(s) {missing[:5]}; {self.name} needs the env to render frames"
            )
        n = len(requests)
        static = self.static([r.bev_rgb for r in requests])  # type: ignore[misc]
        out: dict[str, Any] = {
            "r_static": static.r_static,
            "cos_pos": static.cos_positive,
            "cos_neg": static.cos_negative,
            "r_dynamic": np.zeros(n),
            "gate": np.zeros(n, dtype=bool),
            "goals": [""] * n,
            "fallbacks": [""] * n,
            "detections": [[] for _ in range(n)],
        }
        if self.dynamic is not None:
            dynamic = self.dynamic(
                [r.front_window for r in requests], [r.signals.speed_kmh for r in requests]
            )
            out.update(
                r_dynamic=dynamic.r_dynamic,
                gate=dynamic.gate,
                goals=dynamic.goals,
                fallbacks=dynamic.fallbacks,
                detections=dynamic.detections,
            )
        return out

    def __call__(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]:
        if not requests:
            return []
        scores = self.scores(requests)
        signals = signal_arrays(requests)
        r_norm = normalise(
            scores["r_static"] + scores["r_dynamic"], self.params.theta_min, self.params.theta_max
        )
        terms: dict[str, Any] = {
            "r_static": scores["r_static"],
            "r_dynamic": scores["r_dynamic"],
            "gate": scores["gate"].astype(np.float64),
            "lvlm_fallback": np.array([bool(f) for f in scores["fallbacks"]], dtype=np.float64),
            "r_norm": r_norm,
        }
        terms.update(synthesise(r_norm, signals, self.params))
        rows = terms_rows(terms, len(requests))
        results = []
        for i, row in enumerate(rows):
            texts = {"dynamic_goal": scores["goals"][i]} if self.dynamic is not None else {}
            if scores["fallbacks"][i]:
                texts["lvlm_fallback"] = scores["fallbacks"][i]
            results.append(RewardTerms(row.pop("final"), row, texts))
        return results


def _static_pathway(cfg: RewardConfig, models: ModelProvider) -> StaticPathway:
    return StaticPathway(
        models.encoder(),
        cfg.goals.positive,
        cfg.goals.negative,
        cfg.alpha,
        cfg.beta,
        batch_size=cfg.batch_size,
    )


def make_gate(cfg: RewardConfig, models: ModelProvider) -> AttentionGate:
    gate = cfg.gate
    path = None
    if gate.mode == "path":
        camera = GroundCamera(
            gate.camera_hfov_deg, gate.camera_height_m, gate.camera_pitch_deg, gate.camera_forward_m
        )
        path = PathFilter(camera, gate.max_distance_m, gate.ttc_s, gate.half_width_m)
    return AttentionGate(models.detector(), gate.classes, gate.threshold, path)


def make_dynamic_pathway(cfg: RewardConfig, models: ModelProvider) -> DynamicPathway:
    return DynamicPathway(
        models.encoder(),
        make_gate(cfg, models),
        models.vlm(),
        positive_goal=cfg.goals.dynamic_positive,
        fallback_goal=cfg.goals.fallback,
        prompt=load_prompt(cfg.prompt, cfg.prompt_file),
        window_frames=cfg.window_frames,
        alpha=cfg.alpha,
        beta=cfg.beta,
        max_words=cfg.max_goal_words,
        concurrency=models.config.lvlm.concurrency,
        lvlm_batch_size=models.config.lvlm.batch_size,
    )


@register_preset("drivevlm_rl")
def drivevlm_rl(cfg: RewardConfig, models: ModelProvider) -> SemanticReward:
    """DriveVLM-RL (arXiv 2603.18315, Fig. 4): static + gated dynamic pathway, hierarchical synthesis."""
    return SemanticReward(
        _static_pathway(cfg, models),
        make_dynamic_pathway(cfg, models),
        SynthesisParams.from_config(cfg),
        "drivevlm_rl",
    )


@register_preset("vlm_rl")
def vlm_rl(cfg: RewardConfig, models: ModelProvider) -> SemanticReward:
    """VLM-RL (arXiv 2412.15544): the contrasting-language-goal static pathway only."""
    return SemanticReward(_static_pathway(cfg, models), None, SynthesisParams.from_config(cfg), "vlm_rl")


def calibrate(
    reward_fn: SemanticReward,
    requests: Sequence[RewardRequest],
    low_pct: float = 5.0,
    high_pct: float = 95.0,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Distributions of R_static, R_dynamic (gated frames) and their sum on sample requests, plus θmin/θmax.

    The suggestion maps the `low_pct`..`high_pct` percentile range of R_static + R_dynamic onto [0, 1], so
    the normalised score uses its whole range for this CLIP model instead of saturating at 0 or 1.
    """
    if not requests:
        raise ValueError("calibrate: no sample requests")
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ValueError(f"calibrate: need 0 <= low_pct < high_pct <= 100, got {low_pct}, {high_pct}")
    scores = reward_fn.scores(requests)
    combined = scores["r_static"] + scores["r_dynamic"]
    gated = scores["r_dynamic"][scores["gate"]]

    def summary(values: np.ndarray) -> dict[str, float | int]:
        if values.size == 0:
            return {"count": 0}
        pct = np.percentile(values, [0, 5, 25, 50, 75, 95, 100])
        keys = ("min", "p5", "p25", "p50", "p75", "p95", "max")
        return {"count": int(values.size), "mean": float(values.mean()), "std": float(values.std())} | {
            k: float(v) for k, v in zip(keys, pct, strict=True)
        }

    theta_min, theta_max = (float(v) for v in np.percentile(combined, [low_pct, high_pct]))
    if theta_max <= theta_min:
        theta_max = theta_min + 1e-3
    fallbacks = sum(1 for f in scores["fallbacks"] if f)
    by_label: dict[str, float] = {}
    if labels is not None:
        names = np.asarray(labels)
        by_label = {name: float(np.mean(scores["gate"][names == name])) for name in dict.fromkeys(labels)}
    return {
        "frames": len(requests),
        "r_static": summary(scores["r_static"]),
        "r_dynamic_gated": summary(gated),
        "combined": summary(combined),
        "gate_rate": float(np.mean(scores["gate"])),
        # Per label (the scenario each request came from), when labels were given.
        "gate_rate_by_label": by_label,
        "lvlm_fallbacks": fallbacks,
        "current_theta": [reward_fn.params.theta_min, reward_fn.params.theta_max],
        "suggested_theta_min": theta_min,
        "suggested_theta_max": theta_max,
    }

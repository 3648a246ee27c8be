"""The paper's baseline rewards as presets of the same machinery.

Hand-designed ones are pure formulas of the vehicle signals; the CLIP-based ones score the BEV frame.
Formulas follow the VLM-RL code (`carla_env/rewards.py`, `clip/clip_reward_model.py`,
`clip/clip_rewarded_sac.py`, zihaosheng/VLM-RL) and the papers it cites; where that code departs from its own
docstring we follow the stated formula and say so below.

- VLM-RL gives the hand-designed functions 0 on terminal steps (a wrapper quirk, so Chen's 200·r_collision
  never fires); here every formula keeps its own collision term, and `reward.collision_penalty` (null in
  these presets) can override collision steps like for the semantic rewards.
- ASAP: VLM-RL adds the *cumulative* distance/10 each step; we add this step's progress/10 ("1 per 10 m").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from drivevlm.models.base import ImageTextEncoder
from drivevlm.rewards.base import RewardRequest, RewardTerms
from drivevlm.rewards.build import ModelProvider
from drivevlm.rewards.config import RewardConfig
from drivevlm.rewards.registry import register_preset
from drivevlm.rewards.signals import signal_arrays, terms_rows
from drivevlm.rewards.static import StaticPathway, cosine, unit_rows
from drivevlm.rewards.synthesis import final_reward

Signals = dict[str, np.ndarray]
Formula = Callable[[Signals], dict[str, np.ndarray]]

KMH_TO_MS = 1.0 / 3.6


def tirl(s: Signals) -> dict[str, np.ndarray]:
    """TIRL (Trustworthy safety improvement for AD with RL, 2022): −1 on a collision step, else 0."""
    return {"final": -s["collided"]}


def chen(s: Signals, fast_kmh: float) -> dict[str, np.ndarray]:
    """Chen et al.: 200·r_coll + v_lon + 10·r_fast + r_out − 5·steer² + 0.2·r_lat − 0.1 (v in m/s; r_fast
    −1 above `fast_kmh`, VLM-RL's 8 m/s = 28.8 km/h by default)."""
    v_lon = s["longitudinal_speed_kmh"] * KMH_TO_MS
    terms = {
        "r_collision": -s["collided"],
        "v_lon": v_lon,
        "r_fast": -(v_lon > fast_kmh * KMH_TO_MS).astype(np.float64),
        "r_out": -(np.abs(s["center_offset_m"]) > 4.0).astype(np.float64),
        "r_steer": -5.0 * s["steer"] ** 2,
        "r_lat": -np.abs(s["steer"]) * v_lon**2,
    }
    terms["final"] = (
        200 * terms["r_collision"]
        + v_lon
        + 10 * terms["r_fast"]
        + terms["r_out"]
        + terms["r_steer"]
        + 0.2 * terms["r_lat"]
        - 0.1
    )
    return terms


def asap(s: Signals) -> dict[str, np.ndarray]:
    """ASAP-RL: 1 per 10 m of progress, +1 at the destination, −5 on a crash, +0.1 per vehicle overtaken."""
    terms = {
        "r_progress": s["progress_m"] / 10.0,
        "r_destination": s["route_finished"],
        "r_crash": -5.0 * s["collided"],
        "r_overtaking": 0.1 * s["vehicles_overtaken"],
    }
    terms["final"] = terms["r_progress"] + terms["r_destination"] + terms["r_crash"] + terms["r_overtaking"]
    return terms


def chatscene(s: Signals) -> dict[str, np.ndarray]:
    """ChatScene: −coll + v_lon + 10·r_fast(v_lon > 5.5 m/s) + r_out(|d| > 4 m) − 5·steer² + 0.2·r_lat."""
    v_lon = s["longitudinal_speed_kmh"] * KMH_TO_MS
    terms = {
        "r_collision": -s["collided"],
        "v_lon": v_lon,
        "r_fast": -(v_lon > 5.5).astype(np.float64),
        "r_out": -(np.abs(s["center_offset_m"]) > 4.0).astype(np.float64),
        "r_steer": -(s["steer"] ** 2),
        "r_lat": -np.abs(s["steer"]) * v_lon**2,
    }
    terms["final"] = (
        terms["r_collision"]
        + v_lon
        + 10 * terms["r_fast"]
        + terms["r_out"]
        + 5 * terms["r_steer"]
        + 0.2 * terms["r_lat"]
    )
    return terms


def revolve(s: Signals) -> dict[str, np.ndarray]:
    """Revolve (arXiv 2406.01309): collision −100 > inactivity −10 > speed + centring + smoothness."""
    speed = s["speed_kmh"] * KMH_TO_MS
    in_band = (speed >= 4.0) & (speed <= 6.0)
    speed_score = np.where(in_band, 1.0 - np.abs(speed - 5.0) / 1.75, -1.0)
    terms = {
        "speed_reward": 2.0 / (1.0 + np.exp(-speed_score / 0.5)),
        "position_reward": np.exp(-np.abs(s["center_offset_m"]) / 0.1),
        "smoothness_reward": 0.5 * np.exp(-s["steer_std"] / 0.1),
    }
    total = terms["speed_reward"] + terms["position_reward"] + terms["smoothness_reward"]
    total = np.where(speed < 1.5, -10.0, total)
    total = np.where(s["collided"] > 0, -100.0, total)
    terms["final"] = np.clip(total, -1.0, 1.0)
    return terms


def revolve_auto(s: Signals) -> dict[str, np.ndarray]:
    """Revolve-auto (Eureka-style feedback): centring, speed near 5 m/s, smoothness and free-space bonuses."""
    speed = s["speed_kmh"] * KMH_TO_MS
    terms = {
        "lane_centering_bonus": np.exp(-2.0 * np.abs(s["center_offset_m"])),
        "speed_regulation_bonus": np.exp(-2.0 * np.abs(speed - 5.0) / 2.0),
        "smooth_driving_bonus": np.exp(-s["steer_std"] / 0.1),
        "front_distance_bonus": np.clip(s["front_obstacle_m"] / 20.0, 0.0, 1.0),
    }
    total = sum(terms.values())
    total = np.where((s["collided"] > 0) | (speed < 1.5), -1.0, total)
    terms["final"] = np.clip(total, -1.0, 1.0)
    return terms


class FormulaReward:
    """A `RewardFunction` from a pure formula of the vehicle signals; needs no frames and no model."""

    needs_frames = False

    def __init__(self, name: str, formula: Formula, collision_penalty: float | None = None) -> None:
        self.name = name
        self.formula = formula
        self.collision_penalty = collision_penalty

    def __call__(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]:
        if not requests:
            return []
        signals = signal_arrays(requests)
        terms = self.formula(signals)
        terms["final"] = final_reward(terms["final"], signals["collided"], self.collision_penalty)
        return [RewardTerms(row.pop("final"), row) for row in terms_rows(terms, len(requests))]


def _formula_preset(name: str, formula: Formula) -> None:
    @register_preset(name)
    def builder(cfg: RewardConfig, models: ModelProvider) -> FormulaReward:
        return FormulaReward(name, formula, cfg.collision_penalty)

    builder.__doc__ = formula.__doc__


@register_preset("chen")
def _chen(cfg: RewardConfig, models: ModelProvider) -> FormulaReward:
    """Chen et al. with its speed limit from `reward.chen_fast_kmh`."""
    return FormulaReward("chen", partial(chen, fast_kmh=cfg.chen_fast_kmh), cfg.collision_penalty)


for _name, _formula in {
    "tirl": tirl,
    "asap": asap,
    "chatscene": chatscene,
    "revolve": revolve,
    "revolve_auto": revolve_auto,
}.items():
    _formula_preset(_name, _formula)


def vlm_rm_projection(task: np.ndarray, baseline: np.ndarray, alpha: float) -> np.ndarray:
    """P = α·d dᵀ/|d|² + (1 − α)·I with d = task − baseline (VLM-RM, arXiv 2310.12921)."""
    direction = (np.asarray(task, np.float64) - np.asarray(baseline, np.float64)).reshape(1, -1)
    projection = direction.T @ direction / max(float(np.sum(direction**2)), 1e-12)
    return alpha * projection + (1.0 - alpha) * np.eye(direction.shape[1])


def vlm_rm_score(images: np.ndarray, task: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """1 − ‖(x − t)·P‖² / 2 on unit embeddings."""
    diff = unit_rows(images) - unit_rows(task)[0]
    return 1.0 - np.sum((diff @ projection) ** 2, axis=-1) / 2.0


class ClipBaselineReward:
    """A CLIP-only baseline scored on the BEV frame: LORD, LORD-Speed, VLM-RM, VLM-SR, RoboCLIP."""

    needs_frames = True
    kinds = ("lord", "lord_speed", "vlm_rm", "vlm_sr", "roboclip")

    def __init__(self, kind: str, encoder: ImageTextEncoder, cfg: RewardConfig) -> None:
        if kind not in self.kinds:
            raise ValueError(f"kind: unknown CLIP baseline {kind!r}; expected one of {self.kinds}")
        self.name = kind
        self.cfg = cfg
        self.pathway = StaticPathway(encoder, cfg.goals.task, cfg.goals.baseline, batch_size=cfg.batch_size)
        self.negative = np.asarray(encoder.encode_texts([cfg.goals.negative])[0])
        self.projection = vlm_rm_projection(self.pathway.positive, self.pathway.negative, cfg.vlm_rm_alpha)

    def scores(self, embeddings: np.ndarray, signals: Signals) -> dict[str, np.ndarray]:
        if self.name in ("lord", "lord_speed"):
            lord = 1.0 - cosine(embeddings, self.negative)
            if self.name == "lord":
                return {"r_lord": lord, "final": lord}
            target = self.cfg.lord_target_speed_kmh
            speed_term = 1.0 - np.abs(signals["speed_kmh"] - target) / target
            return {"r_lord": lord, "r_speed": speed_term, "final": lord + speed_term}
        if self.name == "vlm_rm":
            score = vlm_rm_score(embeddings, self.pathway.positive, self.projection)
            return {"r_vlm_rm": score, "final": score}
        similarity = cosine(embeddings, self.pathway.positive)
        if self.name == "vlm_sr":
            return {
                "cos_task": similarity,
                "final": np.where(similarity > self.cfg.vlm_sr_threshold, 1.0, -1.0),
            }
        return {"cos_task": similarity, "final": similarity}

    def __call__(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]:
        if not requests:
            return []
        missing = [i for i, r in enumerate(requests) if r.bev_rgb is None]
        if missing:
            raise ValueError(
                f"bev_rgb: missing in request(s) {missing[:5]}; {self.name} needs rendered frames"
            )
        signals = signal_arrays(requests)
        terms = self.scores(self.pathway.encode([r.bev_rgb for r in requests]), signals)  # type: ignore[misc]
        terms["final"] = final_reward(terms["final"], signals["collided"], self.cfg.collision_penalty)
        return [RewardTerms(row.pop("final"), row) for row in terms_rows(terms, len(requests))]


def _clip_preset(kind: str) -> None:
    @register_preset(kind)
    def builder(cfg: RewardConfig, models: ModelProvider) -> ClipBaselineReward:
        return ClipBaselineReward(kind, models.encoder(), cfg)


for _kind in ClipBaselineReward.kinds:
    _clip_preset(_kind)

"""Labelled ORACLE presets: the semantic score from simulator ground truth instead of models.

They answer "what would a perfect VLM teacher give?", an upper bound for the model-based presets. Their names
contain "oracle", every step reports `oracle = 1`, and they are never substituted for a model silently.

Ground-truth stand-ins for the two pathways, each already in [0, 1] (so θmin/θmax are not used):
- static ("is a car crash near?"): 0 on a collision, else
  clip((vehicle ahead - vehicle_contact_m) / vehicle_safe_gap_m, 0, 1);
- dynamic ("how risky is the vulnerable road user?"): the gate opens when a pedestrian or cyclist is ahead
  within vru_gate_range_m; then clip((nearest VRU ahead - vru_contact_m) / vru_safe_gap_m, 0, 1), else 1.
Distances are centre to centre, so the contact terms make the desired speed zero where the boxes touch.
R_norm = static (oracle_static) or static · dynamic (drivevlm_rl_oracle); Phase II is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drivevlm.rewards.base import RewardRequest, RewardTerms
from drivevlm.rewards.build import ModelProvider
from drivevlm.rewards.config import OracleConfig, RewardConfig
from drivevlm.rewards.registry import register_preset
from drivevlm.rewards.semantic import SynthesisParams, synthesise
from drivevlm.rewards.signals import signal_arrays, terms_rows


def oracle_static_score(collided: np.ndarray, vehicle_ahead_m: np.ndarray, cfg: OracleConfig) -> np.ndarray:
    gap = np.asarray(vehicle_ahead_m, np.float64) - cfg.vehicle_contact_m
    score = np.clip(gap / cfg.vehicle_safe_gap_m, 0.0, 1.0)
    return np.where(np.asarray(collided) > 0, 0.0, score)


def oracle_dynamic_score(vru_ahead_m: np.ndarray, cfg: OracleConfig) -> tuple[np.ndarray, np.ndarray]:
    """(gate, score): the score is 1 where the gate is closed."""
    distance = np.asarray(vru_ahead_m, np.float64)
    gate = distance <= cfg.vru_gate_range_m
    score = np.clip((distance - cfg.vru_contact_m) / cfg.vru_safe_gap_m, 0.0, 1.0)
    return gate, np.where(gate, score, 1.0)


class OracleReward:
    """Ground-truth semantic score + the usual synthesis. Needs no frames and no model."""

    needs_frames = False

    def __init__(self, name: str, cfg: OracleConfig, params: SynthesisParams, dynamic: bool) -> None:
        if "oracle" not in name:
            raise ValueError(f"name: oracle rewards must say so in their name, got {name!r}")
        self.name = name
        self.cfg = cfg
        self.params = params
        self.dynamic = dynamic

    def __call__(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]:
        if not requests:
            return []
        s = signal_arrays(requests)
        static = oracle_static_score(s["collided"], s["nearest_vehicle_ahead_m"], self.cfg)
        gate, dynamic = oracle_dynamic_score(s["nearest_vru_ahead_m"], self.cfg)
        if not self.dynamic:
            gate, dynamic = np.zeros_like(gate), np.ones_like(dynamic)
        r_norm = static * dynamic
        terms = {
            "oracle": np.ones(len(requests)),
            "r_static": static,
            "r_dynamic": dynamic,
            "gate": gate,
            "r_norm": r_norm,
        }
        terms.update(synthesise(r_norm, s, self.params))
        return [RewardTerms(row.pop("final"), row) for row in terms_rows(terms, len(requests))]


@register_preset("oracle_static")
def oracle_static(cfg: RewardConfig, models: ModelProvider) -> OracleReward:
    """VLM-RL with a perfect static teacher (ground truth)."""
    return OracleReward("oracle_static", cfg.oracle, SynthesisParams.from_config(cfg), dynamic=False)


@register_preset("drivevlm_rl_oracle")
def drivevlm_rl_oracle(cfg: RewardConfig, models: ModelProvider) -> OracleReward:
    """DriveVLM-RL with perfect static and dynamic teachers (ground truth)."""
    return OracleReward("drivevlm_rl_oracle", cfg.oracle, SynthesisParams.from_config(cfg), dynamic=True)

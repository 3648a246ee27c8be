"""Baseline reward presets against hand-computed values, and the registry."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from fakes import PixelEncoder, frame

from drivevlm.rewards.base import RewardFunction, RewardRequest
from drivevlm.rewards.baselines import ClipBaselineReward, vlm_rm_projection, vlm_rm_score
from drivevlm.rewards.build import InjectedModels, build_reward
from drivevlm.rewards.config import RewardConfig
from drivevlm.rewards.registry import get_preset, preset_names, register_preset
from drivevlm.vehicle_signals import VehicleSignals

BASE = VehicleSignals(
    speed_kmh=18.0,
    longitudinal_speed_kmh=18.0,
    center_offset_m=0.5,
    heading_error_deg=0.0,
    center_offset_std_m=0.0,
    steer=0.2,
    throttle=0.5,
    previous_steer=0.1,
    progress_m=0.5,
    collided=False,
)


def run(preset: str, *signals: VehicleSignals, **cfg: object) -> list[float]:
    reward = build_reward(
        RewardConfig(preset=preset, collision_penalty=None, **cfg), factory=InjectedModels()
    )
    assert isinstance(reward, RewardFunction) and not reward.needs_frames
    return [t.final for t in reward([RewardRequest(s) for s in signals])]


def test_all_paper_baselines_are_registered() -> None:
    expected = {
        "tirl",
        "chen",
        "asap",
        "chatscene",
        "revolve",
        "revolve_auto",
        "vlm_sr",
        "roboclip",
        "vlm_rm",
    }
    expected |= {"lord", "lord_speed", "vlm_rl", "drivevlm_rl", "oracle_static", "drivevlm_rl_oracle"}
    assert expected <= set(preset_names())
    with pytest.raises(ValueError, match="unknown value 'nope'"):
        get_preset("nope")
    with pytest.raises(ValueError, match="registered twice"):
        register_preset("tirl")(lambda cfg, models: None)  # type: ignore[arg-type,return-value]


def test_tirl_is_sparse_collision() -> None:
    assert run("tirl", BASE, replace(BASE, collided=True)) == [0.0, -1.0]


def test_chen_hand_computed() -> None:
    v = 5.0  # 18 km/h
    expected = v - 5 * 0.2**2 + 0.2 * (-0.2 * v**2) - 0.1
    fast = replace(BASE, longitudinal_speed_kmh=36.0, steer=0.0, center_offset_m=4.5, collided=True)
    # 200·(−1) + 10 + 10·(−1) + (−1) − 0.1
    assert run("chen", BASE, fast) == pytest.approx([expected, -200 + 10 - 10 - 1 - 0.1])


def test_chen_speed_limit_is_configurable() -> None:
    motorway = replace(BASE, longitudinal_speed_kmh=90.0, steer=0.0, center_offset_m=0.0)
    v = 25.0  # 90 km/h
    assert run("chen", motorway) == pytest.approx([v - 10 - 0.1])  # over VLM-RL's 8 m/s
    assert run("chen", motorway, chen_fast_kmh=115.2) == pytest.approx([v - 0.1])


def test_asap_hand_computed() -> None:
    step = replace(BASE, progress_m=2.5, vehicles_overtaken=1, route_finished=True)
    assert run("asap", step, replace(BASE, collided=True)) == pytest.approx([0.25 + 1 + 0.1, 0.05 - 5])


def test_chatscene_hand_computed() -> None:
    v = 5.0
    expected = v - 5 * 0.04 + 0.2 * (-0.2 * v**2)
    fast = replace(BASE, longitudinal_speed_kmh=36.0, steer=0.0)
    assert run("chatscene", BASE, fast) == pytest.approx([expected, 10.0 - 10.0])


def test_revolve_hand_computed() -> None:
    # 18 km/h = 5 m/s: speed score 1 -> 2·σ(2); |d| = 0.5 -> e^-5; steer std 0.05 -> 0.5·e^-0.5; clipped to 1.
    step = replace(BASE, steer_std=0.05)
    total = 2 / (1 + math.exp(-2)) + math.exp(-5) + 0.5 * math.exp(-0.5)
    assert total > 1
    assert run("revolve", step) == [1.0]
    slow = replace(BASE, speed_kmh=3.6)
    assert run("revolve", slow, replace(BASE, collided=True)) == [-1.0, -1.0]
    off_band = replace(BASE, speed_kmh=36.0, center_offset_m=1.0, steer_std=1.0)
    expected = 2 / (1 + math.exp(2)) + math.exp(-10) + 0.5 * math.exp(-10)
    assert run("revolve", off_band) == pytest.approx([expected])


def test_revolve_auto_hand_computed() -> None:
    step = replace(BASE, center_offset_m=2.0, speed_kmh=36.0, steer_std=0.5, front_obstacle_m=5.0)
    expected = math.exp(-4) + math.exp(-2 * 5 / 2) + math.exp(-5) + 0.25
    assert run("revolve_auto", step) == pytest.approx([expected])
    assert run("revolve_auto", replace(BASE, collided=True), replace(BASE, speed_kmh=1.0)) == [-1.0, -1.0]


def test_collision_penalty_overrides_a_formula_when_set() -> None:
    reward = build_reward(RewardConfig(preset="chen", collision_penalty=-3.0), factory=InjectedModels())
    assert reward([RewardRequest(replace(BASE, collided=True))])[0].final == -3.0


def test_every_term_is_reported() -> None:
    reward = build_reward(RewardConfig(preset="chen", collision_penalty=None), factory=InjectedModels())
    terms = reward([RewardRequest(BASE)])[0]
    assert set(terms.terms) == {"r_collision", "v_lon", "r_fast", "r_out", "r_steer", "r_lat"}


TEXTS = {
    "The road is clear with no car accidents": (1, 0, 0),
    "Two cars have collided with each other on the road": (0, 1, 0),
    "A car is driving safely": (1, 0, 0),
    "A car": (0, 0, 1),
}


def clip_terms(kind: str, rgb: tuple[int, int, int], signals: VehicleSignals = BASE, **cfg: object) -> float:
    config = RewardConfig(preset=kind, collision_penalty=None, **cfg)
    reward = build_reward(config, factory=InjectedModels(encoder=PixelEncoder(TEXTS)))
    assert isinstance(reward, ClipBaselineReward) and reward.needs_frames
    return reward([RewardRequest(signals, bev_rgb=frame(rgb))])[0].final


def test_lord_and_lord_speed() -> None:
    # cos(I, T_neg) = 0.8 -> LORD = 0.2; speed term 1 - |18 - 20|/20 = 0.9
    assert clip_terms("lord", (3, 4, 0)) == pytest.approx(0.2)
    assert clip_terms("lord_speed", (3, 4, 0)) == pytest.approx(1.1)


def test_vlm_sr_thresholds_similarity() -> None:
    assert clip_terms("vlm_sr", (3, 4, 0)) == 1.0  # cos = 0.6 > 0.32
    assert clip_terms("vlm_sr", (1, 7, 0)) == -1.0
    assert clip_terms("roboclip", (3, 4, 0)) == pytest.approx(0.6)


def test_vlm_rm_projection_hand_computed() -> None:
    task, baseline = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    projection = vlm_rm_projection(task, baseline, 1.0)
    # d = (1, 0, -1)/√2 direction; x = (0, 1, 0): x - t = (-1, 1, 0); projected = (-0.5, 0, 0.5); |.|² = 0.5
    assert vlm_rm_score(np.array([[0.0, 1.0, 0.0]]), task, projection) == pytest.approx([0.75])
    identity = vlm_rm_projection(task, baseline, 0.0)
    assert vlm_rm_score(np.array([[0.0, 1.0, 0.0]]), task, identity) == pytest.approx([0.0])
    # α = 0.5 mixes both: 1 - |0.5·(-0.5,0,0.5) + 0.5·(-1,1,0)|²/2 = 1 - (0.5625+0.25+0.0625)/2
    assert clip_terms("vlm_rm", (0, 1, 0)) == pytest.approx(1 - 0.875 / 2)


def test_clip_baselines_need_frames() -> None:
    config = RewardConfig(preset="lord")
    reward = build_reward(config, factory=InjectedModels(encoder=PixelEncoder(TEXTS)))
    with pytest.raises(ValueError, match="bev_rgb: missing"):
        reward([RewardRequest(BASE)])


def test_missing_injected_model_names_it() -> None:
    with pytest.raises(ValueError, match="needs the encoder model"):
        build_reward(RewardConfig(preset="lord"), factory=InjectedModels())

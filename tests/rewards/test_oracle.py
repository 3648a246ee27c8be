"""Labelled oracle presets score from ground truth, with the usual synthesis."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from drivevlm.rewards.base import RewardRequest
from drivevlm.rewards.build import InjectedModels, build_reward
from drivevlm.rewards.config import RewardConfig
from drivevlm.rewards.oracle import OracleReward
from drivevlm.rewards.semantic import SynthesisParams
from drivevlm.vehicle_signals import VehicleSignals

BASE = VehicleSignals(
    speed_kmh=10.0,
    longitudinal_speed_kmh=10.0,
    center_offset_m=0.0,
    heading_error_deg=0.0,
    center_offset_std_m=0.0,
    steer=0.0,
    throttle=0.3,
    previous_steer=0.0,
    progress_m=0.7,
    collided=False,
)


def test_drivevlm_rl_oracle_hand_computed() -> None:
    reward = build_reward(RewardConfig(preset="drivevlm_rl_oracle"), factory=InjectedModels())
    assert not reward.needs_frames
    steps = [
        BASE,  # nothing ahead: r_norm 1, v_des 25, f_speed 1 - 15/25 = 0.4
        replace(BASE, nearest_vehicle_ahead_m=10.0),  # static (10 - 5) / 10 = 0.5: v_des 12.5, f_speed 0.9
        replace(BASE, nearest_vru_ahead_m=9.0),  # gate open, dynamic (9 - 3) / 15 = 0.4: v_des 10, f_speed 1
        replace(BASE, nearest_vehicle_ahead_m=4.6),  # touching: v_des 0, f_speed 1 - 10/25 = 0.6
        replace(BASE, nearest_vru_ahead_m=40.0),  # beyond the gate range: dynamic 1
        replace(BASE, collided=True),
    ]
    out = reward([RewardRequest(s) for s in steps])
    assert [t.final for t in out] == pytest.approx([0.4, 0.9, 1.0, 0.6, 0.4, -10.0])
    assert [t.terms["gate"] for t in out] == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert out[3].terms["v_des"] == 0.0
    assert all(t.terms["oracle"] == 1.0 for t in out)
    assert out[2].terms["r_norm"] == pytest.approx(0.4)


def test_an_unset_target_speed_follows_the_env_s() -> None:
    """`reward.target_speed_kmh: null` (the highway preset): v_target is each step's own target speed."""
    reward = build_reward(
        RewardConfig(preset="drivevlm_rl_oracle", target_speed_kmh=None), factory=InjectedModels()
    )
    urban, motorway = BASE, replace(BASE, speed_kmh=90.0, target_speed_kmh=100.0)
    out = reward([RewardRequest(urban), RewardRequest(motorway)])  # nothing ahead: r_norm 1
    assert [t.terms["v_des"] for t in out] == pytest.approx([25.0, 100.0])
    assert [t.final for t in out] == pytest.approx([0.4, 0.9])


def test_oracle_static_ignores_vulnerable_road_users() -> None:
    reward = build_reward(RewardConfig(preset="oracle_static"), factory=InjectedModels())
    out = reward([RewardRequest(replace(BASE, nearest_vru_ahead_m=1.0, nearest_vehicle_ahead_m=math.inf))])
    assert out[0].terms["r_norm"] == 1.0 and out[0].terms["gate"] == 0.0


def test_oracle_rewards_must_say_so_in_their_name() -> None:
    with pytest.raises(ValueError, match="oracle"):
        OracleReward("drivevlm_rl", RewardConfig().oracle, SynthesisParams(), dynamic=True)

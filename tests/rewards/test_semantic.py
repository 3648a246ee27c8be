"""The composed DriveVLM-RL / VLM-RL reward: every term per step, calibration, a run on real tiny models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fakes import PixelEncoder, SceneDetector, frame
from test_pathways import GOAL, TEXTS

from drivevlm.models.config import ModelsConfig
from drivevlm.models.detectors.coco import COCO_CLASSES
from drivevlm.models.lvlm.openai_server import OpenAIChatVLM
from drivevlm.rewards.base import RewardFunction, RewardRequest
from drivevlm.rewards.build import InjectedModels, build_reward
from drivevlm.rewards.config import RewardConfig
from drivevlm.rewards.semantic import SemanticReward, calibrate
from drivevlm.vehicle_signals import VehicleSignals
from support.chat_server import ChatServer, Reply

SIGNALS = VehicleSignals(
    speed_kmh=20.0,
    longitudinal_speed_kmh=20.0,
    center_offset_m=0.0,
    heading_error_deg=0.0,
    center_offset_std_m=0.0,
    steer=0.0,
    throttle=0.4,
    previous_steer=0.0,
    progress_m=0.5,
    collided=False,
)
TERMS = {
    "r_static",
    "r_dynamic",
    "gate",
    "lvlm_fallback",
    "r_norm",
    "v_des",
    "f_speed",
    "f_center",
    "f_angle",
}
TERMS |= {"f_stability", "r_shaping"}


def front(scene: int) -> tuple[np.ndarray, ...]:
    return tuple([frame((9, 9, 9))] * 3 + [frame((0, 3, 4), scene)])


def semantic(server: ChatServer, preset: str = "drivevlm_rl", **cfg: object) -> SemanticReward:
    models = ModelsConfig.model_validate({"cache": {"enabled": False}})
    vlm = OpenAIChatVLM(server.base_url, timeout_s=2, retries=0)
    config = RewardConfig(preset=preset, theta_min=-1.0, theta_max=1.0, **cfg)
    reward = build_reward(config, models, InjectedModels(PixelEncoder(TEXTS), SceneDetector(), vlm))
    assert isinstance(reward, SemanticReward)
    return reward


def test_drivevlm_rl_reports_every_term_hand_computed() -> None:
    requests = [
        # R_static = 0.8 - 0.6 = 0.2, gate closed: R_norm = (0.2 + 1)/2 = 0.6, v_des 15, f_speed 1 - 5/25.
        RewardRequest(SIGNALS, frame((4, 3, 0)), front(0)),
        # Gate open, R_dynamic = 0 - 0.8: R_norm = (0.2 - 0.8 + 1)/2 = 0.2, v_des 5, speed 5 -> f_speed 1.
        RewardRequest(replace(SIGNALS, speed_kmh=5.0), frame((4, 3, 0)), front(1)),
        RewardRequest(replace(SIGNALS, collided=True), frame((4, 3, 0)), front(0)),
    ]
    with ChatServer([Reply(GOAL)]) as server:
        reward = semantic(server)
        out = reward(requests)
    assert isinstance(reward, RewardFunction) and reward.needs_frames
    assert [t.final for t in out] == pytest.approx([0.8, 1.0, -10.0])
    assert set(out[0].terms) == TERMS
    assert out[1].terms["r_dynamic"] == pytest.approx(-0.8)
    assert out[1].terms["gate"] == 1.0 and out[0].terms["gate"] == 0.0
    assert out[1].terms["r_norm"] == pytest.approx(0.2) and out[1].terms["v_des"] == pytest.approx(5.0)
    assert out[1].texts == {"dynamic_goal": GOAL} and out[0].texts == {"dynamic_goal": ""}
    assert out[2].terms["r_shaping"] == pytest.approx(0.8)


def test_no_collision_penalty_variant_gives_zero_on_collision() -> None:
    with ChatServer([Reply(GOAL)]) as server:
        reward = semantic(server, "vlm_rl", collision_penalty=0.0)
        out = reward([RewardRequest(replace(SIGNALS, collided=True), frame((4, 3, 0)))])
    assert reward.dynamic is None
    assert out[0].final == 0.0 and out[0].terms["r_dynamic"] == 0.0 and out[0].texts == {}


def test_semantic_reward_needs_bev_frames() -> None:
    with ChatServer() as server:
        reward = semantic(server, "vlm_rl")
        with pytest.raises(ValueError, match=r"bev_rgb: missing in request\(s\) \[1\]"):
            reward([RewardRequest(SIGNALS, frame((1, 0, 0))), RewardRequest(SIGNALS)])
        assert reward([]) == []


def test_calibrate_reports_distributions_and_suggested_theta() -> None:
    rng = np.random.default_rng(0)
    requests = [
        RewardRequest(SIGNALS, frame(tuple(int(v) for v in rng.integers(1, 255, 3))), front(i % 2))  # type: ignore[arg-type]
        for i in range(20)
    ]
    with ChatServer([Reply(GOAL)]) as server:
        reward = semantic(server)
        report = calibrate(reward, requests, labels=["even", "odd"] * 10)
    assert report["frames"] == 20 and report["gate_rate"] == 0.5
    assert report["gate_rate_by_label"] == {"even": 0.0, "odd": 1.0}
    assert report["r_dynamic_gated"]["count"] == 10
    combined = report["combined"]
    assert report["suggested_theta_min"] == pytest.approx(combined["p5"])
    assert report["suggested_theta_max"] == pytest.approx(combined["p95"])
    assert report["suggested_theta_min"] < report["suggested_theta_max"]
    assert report["lvlm_fallbacks"] == 0
    with pytest.raises(ValueError, match="no sample requests"):
        calibrate(reward, [])


def test_drivevlm_rl_end_to_end_on_tiny_real_models(
    tiny_clip_dir: Path, tiny_rtdetr_dir: Path, tmp_path: Path
) -> None:
    """Real transformers CLIP and RT-DETR (random weights), the real chat client, and the on-disk cache."""
    rng = np.random.default_rng(1)
    requests = [
        RewardRequest(
            SIGNALS,
            rng.integers(0, 256, (48, 48, 3), dtype=np.uint8),
            tuple(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(4)),
        )
        for _ in range(3)
    ]
    with ChatServer([Reply(GOAL)]) as server:
        models = ModelsConfig.model_validate(
            {
                "clip": {"backend": "transformers", "model": str(tiny_clip_dir)},
                "detector": {"backend": "rtdetr", "model": str(tiny_rtdetr_dir), "threshold": 0.0},
                "lvlm": {"backend": "openai", "base_url": server.base_url, "retries": 0},
                "cache": {"path": str(tmp_path / "cache.sqlite")},
            }
        )
        # Random detector weights: every COCO class is critical and no threshold, so the gate opens.
        config = RewardConfig(preset="drivevlm_rl", gate={"classes": list(COCO_CLASSES), "threshold": 0.0})
        first = build_reward(config, models)(requests)
        asked = len(server.requests)
        second = build_reward(config, models)(requests)
    assert asked == sum(t.terms["gate"] for t in first) > 0
    assert len(server.requests) == asked, "the restarted reward must answer from the cache"
    for a, b in zip(first, second, strict=True):
        assert set(a.terms) == TERMS and np.isfinite(a.final)
        assert a.final == pytest.approx(b.final)
        assert -1.0 <= a.terms["r_static"] <= 1.0 and 0.0 <= a.terms["r_norm"] <= 1.0

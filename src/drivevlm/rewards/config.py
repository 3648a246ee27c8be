"""The typed `reward:` section of a preset (the `models:` section is `models.config`). Every invalid value is
an error naming its field.

Defaults are the DriveVLM-RL method as far as the paper states it, and `design.md` where it is silent
(α = β = 1, θ from VLM-RL: [−0.03, 0], K+1 = 4 frames, gate on person/bicycle/motorcycle at 0.25).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from drivevlm.config import ConfigError, Section, build
from drivevlm.models.config import ModelsConfig
from drivevlm.models.detectors.coco import DEFAULT_CRITICAL_CLASSES, check_class_names
from drivevlm.rewards.dynamic import (
    DEFAULT_DYNAMIC_POSITIVE_GOAL,
    DEFAULT_FALLBACK_GOAL,
    DEFAULT_PROMPT_VERSION,
)
from drivevlm.rewards.static import DEFAULT_NEGATIVE_GOAL, DEFAULT_POSITIVE_GOAL


class GoalsConfig(Section):
    """Language goals. `positive`/`negative` score BEV frames; `dynamic_positive` scores front frames."""

    positive: str = DEFAULT_POSITIVE_GOAL
    negative: str = DEFAULT_NEGATIVE_GOAL
    dynamic_positive: str = DEFAULT_DYNAMIC_POSITIVE_GOAL
    # Used when the LVLM fails or its answer is unusable (see rewards/dynamic.py).
    fallback: str = DEFAULT_FALLBACK_GOAL
    # VLM-RM / VLM-SR / RoboCLIP goal and VLM-RM baseline (VLM-RL config.py `reward_vlm_rm`).
    task: str = "A car is driving safely"
    baseline: str = "A car"

    @field_validator("*")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class GateConfig(Section):
    classes: tuple[str, ...] = DEFAULT_CRITICAL_CLASSES
    threshold: float = Field(0.25, ge=0.0, le=1.0)
    # class: the paper's gate (any critical object in view opens it); path: only critical objects in or
    # near the ego's path (their box's bottom edge projected to the ground through the camera model).
    mode: Literal["class", "path"] = "class"
    # Path-aware gate: the corridor either side of the ego's heading, and how far ahead it reaches (this
    # distance, or ttc_s seconds of driving at the ego's speed, whichever is farther). Chosen on seed 0 of
    # benchmarks/gate_selectivity.py (a VRU within 30 m ahead and 2.5 m aside as the ground truth).
    half_width_m: float = Field(2.5, gt=0)
    max_distance_m: float = Field(35.0, gt=0)
    ttc_s: float = Field(3.0, ge=0)
    # The front camera's model (defaults: the embedded simulator's camera).
    camera_hfov_deg: float = Field(90.0, gt=0, lt=180)
    camera_height_m: float = Field(1.5, gt=0)
    camera_pitch_deg: float = Field(5.0, ge=-30, le=60)
    camera_forward_m: float = 2.3

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one critical COCO class is needed, e.g. [person]")
        return check_class_names(value, "classes")


class OracleConfig(Section):
    """Ground-truth scorers (labelled oracle presets only): the score rises from 0 at contact distance (centre
    to centre, where the boxes touch) to 1 a safe gap further out."""

    vehicle_safe_gap_m: float = Field(10.0, gt=0)
    vru_safe_gap_m: float = Field(15.0, gt=0)
    # Centre distances at which the ego touches a car ahead (two half lengths) or a person (half a length
    # and a shoulder): the desired speed is zero there, not a fraction of the target.
    vehicle_contact_m: float = Field(5.0, ge=0)
    vru_contact_m: float = Field(3.0, ge=0)
    # A vulnerable road user ahead within this range opens the oracle gate.
    vru_gate_range_m: float = Field(30.0, gt=0)


class RewardConfig(Section):
    # A name from drivevlm.rewards.registry (drivevlm_rl, vlm_rl, chen, lord, drivevlm_rl_oracle, ...).
    preset: str = "drivevlm_rl"
    alpha: float = 1.0
    beta: float = 1.0
    theta_min: float = -0.03
    theta_max: float = 0.0
    goals: GoalsConfig = Field(default_factory=GoalsConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    # K+1: how many front frames (the current one last) the LVLM sees.
    window_frames: int = Field(4, ge=1, le=32)
    prompt: str = DEFAULT_PROMPT_VERSION
    # A user's own template file for `prompt` (a version name is still required, for the cache key).
    prompt_file: Path | None = None
    max_goal_words: int = Field(20, ge=1, le=200)
    # Reward on a collision step; 0: the no-reward-after-collision experiment; null: keep the formula's value.
    collision_penalty: float | None = -10.0
    # v_target of the desired speed (the paper's 25 km/h); null: the env's own target speed, frame by frame
    # (the town's unless env.target_speed_kmh sets it: urban 25, highway 100 km/h).
    target_speed_kmh: float | None = Field(25.0, gt=0)
    max_center_offset_m: float = Field(3.0, gt=0)
    max_heading_error_deg: float = Field(90.0, gt=0)
    max_center_offset_std_m: float = Field(0.4, gt=0)
    # CLIP image batch size of the static pathway and the CLIP baselines.
    batch_size: int = Field(64, ge=1)
    # VLM-RM projection strength, VLM-SR threshold, LORD-Speed target (VLM-RL clip_rewarded_sac.py).
    vlm_rm_alpha: float = Field(0.5, ge=0.0, le=1.0)
    vlm_sr_threshold: float = 0.32
    lord_target_speed_kmh: float = Field(20.0, gt=0)
    # Chen's r_fast threshold: VLM-RL's 8 m/s (urban, v_target 25 km/h); the highway preset scales it.
    chen_fast_kmh: float = Field(28.8, gt=0)
    oracle: OracleConfig = Field(default_factory=OracleConfig)

    @field_validator("preset")
    @classmethod
    def _preset(cls, value: str) -> str:
        from drivevlm.rewards.registry import preset_names

        names = preset_names()
        if value not in names:
            raise ValueError(f"unknown preset {value!r}; available: {', '.join(names)}")
        return value

    @model_validator(mode="after")
    def _theta(self) -> RewardConfig:
        if not self.theta_max > self.theta_min:
            raise ValueError(
                f"theta_max ({self.theta_max}) must be greater than theta_min ({self.theta_min})"
            )
        return self


def reward_sections(data: dict[str, Any]) -> tuple[RewardConfig, ModelsConfig]:
    """Validate the `reward:` and `models:` sections of a whole preset mapping (other sections ignored)."""
    reward = {} if data.get("reward") is None else data["reward"]
    models = {} if data.get("models") is None else data["models"]
    if not isinstance(reward, dict):
        raise ConfigError("reward: expected a mapping")
    if not isinstance(models, dict):
        raise ConfigError("models: expected a mapping")
    return build(RewardConfig, reward, "reward"), build(ModelsConfig, models, "models")

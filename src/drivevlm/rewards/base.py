"""What a reward function receives and returns.

The env computes `VehicleSignals` (numbers only) each step and, when frames are rendered, the RGB frames.
A reward function turns a batch of `RewardRequest`s into `RewardTerms`; it never touches a simulator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class VehicleSignals:
    """Per-step numbers about the ego, computed by the env from the simulator state."""

    speed_kmh: float
    # Speed along the route direction (can be negative when reversing), km/h.
    longitudinal_speed_kmh: float
    # Signed distance to the route's lane centre line, m (left positive).
    center_offset_m: float
    # Angle between the ego's velocity (heading when stopped) and the route heading, degrees.
    heading_error_deg: float
    # Standard deviation of the centre offset over the last 30 steps, m.
    center_offset_std_m: float
    steer: float
    throttle: float
    previous_steer: float
    # Metres advanced along the route during this step.
    progress_m: float
    collided: bool
    collision_speed_kmh: float = 0.0
    off_route: bool = False
    too_fast: bool = False
    lane_invasion: bool = False
    route_finished: bool = False
    target_speed_kmh: float = 25.0
    # Ground truth used only by labelled oracle presets and by inspection.
    nearest_vru_ahead_m: float = math.inf
    nearest_vehicle_ahead_m: float = math.inf
    # Hand-designed baselines only. Standard deviation of the steering actions since the episode started
    # (Revolve, Revolve-auto); vehicles the ego overtook during this step (ASAP); distance to the first
    # obstacle on a ray along the ego's heading, capped by the env at will, inf when none (Revolve-auto).
    steer_std: float = 0.0
    vehicles_overtaken: int = 0
    front_obstacle_m: float = math.inf


@dataclass(frozen=True, slots=True)
class RewardRequest:
    signals: VehicleSignals
    # Top-down RGB for the static pathway, (H, W, 3) uint8; None when frames were not rendered.
    bev_rgb: np.ndarray | None = None
    # The last K+1 front-camera frames, oldest first; the last one is the current frame.
    front_window: tuple[np.ndarray, ...] = ()


@dataclass(slots=True)
class RewardTerms:
    """Every term of one step's reward, for logging and inspection; `final` is what the learner sees."""

    final: float
    terms: dict[str, float] = field(default_factory=dict)
    # Free-text outputs (the LVLM's dynamic goal), kept for inspection only.
    texts: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class RewardFunction(Protocol):
    # True when the function needs `bev_rgb` / `front_window` (the env must render frames).
    needs_frames: bool

    def __call__(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]: ...

"""What the env measures of the ego each step: numbers only, for reward functions, policies and logs.

It lives beside the env, not in `rewards/`: the env and the scripted driver produce and read it without
importing any reward code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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

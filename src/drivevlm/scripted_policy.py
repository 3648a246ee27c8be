"""A scripted route follower: the demo driver, the data generator's driver and a sanity baseline.

It reads only the policy observation's state vector (speed and waypoints in the ego frame, in the units
of the env config it is given: raw by default), plus, when given, the ground-truth distances in
`VehicleSignals` so that a "cautious" driver brakes for what is ahead: for people and vehicles in a
corridor ahead (`caution="corridor"`: also for a person walking along the sidewalk), or only for what its
own width would sweep into (`"path"`). It is not a learned policy and is never reported as one, but its
noisy drives can fill a learner's warm-up (`train.sac.warmup_driver`).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from drivevlm.config import EnvConfig
from drivevlm.vehicle_signals import VehicleSignals


class RouteFollower:
    def __init__(
        self,
        target_speed_kmh: float = 20.0,
        lookahead_m: float = 6.0,
        wheelbase_m: float = 2.8,
        max_steer_rad: float = math.radians(35.0),
        cautious: bool = True,
        caution: Literal["corridor", "path"] = "corridor",
        noise: float = 0.0,
        seed: int = 0,
        env_config: EnvConfig | None = None,
    ) -> None:
        self.target_speed_kmh = target_speed_kmh
        self.lookahead_m = lookahead_m
        self.wheelbase_m = wheelbase_m
        self.max_steer_rad = max_steer_rad
        self.cautious = cautious
        self.caution = caution
        self.noise = noise
        self._rng = np.random.default_rng(seed)
        config = env_config or EnvConfig()
        self._speed_unit_kmh, self._waypoint_unit_m = config.state_units_kmh_m
        self._waypoints = config.route_waypoints

    def act(self, observation: dict[str, np.ndarray], signals: VehicleSignals | None = None) -> np.ndarray:
        state = observation["state"]
        speed_kmh = float(state[2]) * self._speed_unit_kmh
        waypoints = state[3 : 3 + 2 * self._waypoints].reshape(-1, 2) * self._waypoint_unit_m
        distances = np.hypot(waypoints[:, 0], waypoints[:, 1])
        target = (
            waypoints[int(np.argmax(distances >= self.lookahead_m))] if distances.max() > 0 else (1.0, 0.0)
        )
        # Pure pursuit: curvature of the arc through the target point.
        dist2 = max(float(target[0] ** 2 + target[1] ** 2), 1e-6)
        steer_angle = math.atan(2.0 * self.wheelbase_m * float(target[1]) / dist2)
        steer = float(np.clip(steer_angle / self.max_steer_rad, -1.0, 1.0))

        desired = self.target_speed_kmh
        if self.cautious and signals is not None:
            if self.caution == "path":
                gap = signals.front_obstacle_m
            else:
                gap = min(signals.nearest_vru_ahead_m, signals.nearest_vehicle_ahead_m)
            if gap < 25.0:
                desired = min(desired, max(0.0, (gap - 6.0) * 1.5))
        throttle = float(np.clip(0.15 * (desired - speed_kmh), -1.0, 1.0))
        action = np.array([steer, throttle], dtype=np.float32)
        if self.noise > 0:
            action += self._rng.normal(0.0, self.noise, size=2).astype(np.float32)
        return np.clip(action, -1.0, 1.0)

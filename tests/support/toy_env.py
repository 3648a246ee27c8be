"""A small real gymnasium env with the DriveEnv contract, for training-machinery tests.

A point car on a straight road: obs {"bev": uint8 0/255 masks (C, H, W), "state": float32 (3 + 2·15,)},
action [steer, throttle] in [-1, 1]^2, info["signals"] (VehicleSignals), info["frames"] when asked,
info["episode_metrics"] at the end. Fully deterministic given the seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drivevlm.vehicle_signals import VehicleSignals


class ToyDriveEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    def __init__(
        self,
        size: int = 32,
        channels: int = 12,
        max_steps: int = 60,
        render_frames: bool = False,
        obstacle_m: float = 30.0,
        die_at_step: int | None = None,
        die_marker: str | None = None,
    ) -> None:
        self.size, self.channels, self.max_steps = size, channels, max_steps
        self.render_frames, self.obstacle_m = render_frames, obstacle_m
        # Simulates a simulator crash: the process exits at this step, once (the marker file remembers).
        self.die_at_step, self.die_marker = die_at_step, die_marker
        self.observation_space = gym.spaces.Dict(
            {
                "bev": gym.spaces.Box(0, 255, (channels, size, size), np.uint8),
                "state": gym.spaces.Box(-np.inf, np.inf, (33,), np.float32),
            }
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.x = 0.0
        self.y = float(self.np_random.uniform(-0.5, 0.5))
        self.speed = 0.0
        self.steps = 0
        self.offsets: list[float] = [self.y]
        info: dict[str, Any] = {}
        if self.render_frames:
            info["frames"] = self._frames()
        return self._obs(0.0, 0.0), info

    def _obs(self, steer: float, throttle: float) -> dict[str, np.ndarray]:
        bev = np.zeros((self.channels, self.size, self.size), np.uint8)
        centre = self.size // 2
        bev[0, :, centre - 4 : centre + 4] = 255
        col = int(np.clip(centre + self.y * 3, 0, self.size - 1))
        bev[3 + self.steps % (self.channels - 3), self.size - 4, col] = 255
        waypoints = np.stack([np.arange(1, 16) * 2.0, np.full(15, -self.y)], axis=1)
        state = np.concatenate([[steer, throttle, self.speed * 3.6], waypoints.reshape(-1)]).astype(
            np.float32
        )
        return {"bev": bev, "state": state}

    def _frames(self) -> dict[str, np.ndarray]:
        # The frames encode the step so tests can check which frames a request carried.
        return {
            "bev_rgb": np.full((8, 8, 3), self.steps % 256, np.uint8),
            "front": np.full((8, 8, 3), self.steps % 256, np.uint8),
        }

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        steer, throttle = (float(a) for a in np.clip(action, -1, 1))
        marker = Path(self.die_marker) if self.die_marker is not None else None
        if self.steps == self.die_at_step and (marker is None or not marker.exists()):
            if marker is not None:
                marker.touch()
            os._exit(3)
        self.steps += 1
        self.speed = float(np.clip(self.speed + throttle * 0.5, 0.0, 12.0))
        before = self.x
        self.x += self.speed * 0.1
        self.y += steer * self.speed * 0.05
        self.offsets.append(self.y)
        collided = before < self.obstacle_m <= self.x and abs(self.y) < 1.0
        off_route = abs(self.y) > 3.0
        signals = VehicleSignals(
            speed_kmh=self.speed * 3.6,
            longitudinal_speed_kmh=self.speed * 3.6,
            center_offset_m=self.y,
            heading_error_deg=steer * 10.0,
            center_offset_std_m=float(np.std(self.offsets[-30:])),
            steer=steer,
            throttle=throttle,
            previous_steer=0.0,
            progress_m=self.x - before,
            collided=collided,
            collision_speed_kmh=self.speed * 3.6 if collided else 0.0,
            off_route=off_route,
        )
        terminated = collided or off_route
        truncated = not terminated and self.steps >= self.max_steps
        provisional = -10.0 if collided else 1.0 - abs(self.y) / 3.0
        info: dict[str, Any] = {"signals": signals, "metrics": {"speed_kmh": self.speed * 3.6}}
        if self.render_frames:
            info["frames"] = self._frames()
        if terminated or truncated:
            info["episode_metrics"] = {"steps": self.steps, "collided": collided, "distance_m": self.x}
        return self._obs(steer, throttle), provisional, terminated, truncated, info

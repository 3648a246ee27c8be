"""The gymnasium environment: the one place that joins a simulator backend and the renderers.

Observation: {"bev": uint8 semantic masks (C, H, W), "state": [steer, throttle, speed km/h,
next waypoints in the ego frame (x, y) ..., with `route_errors` the offset from the route and the heading
error]}. Action: [steer, throttle/brake] in [-1, 1]^2.
The reward returned by `step` is provisional (vehicle state only, the shaping reward at the target
speed); semantic rewards are computed later from `info["signals"]` and `info["frames"]`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from drivevlm import ENV_ID as ENV_ID
from drivevlm.config import EnvConfig, build
from drivevlm.driving_factors import ShapingParams, shaping_terms
from drivevlm.render import BevMaskRenderer, BevRgbRenderer, FrontCameraRenderer
from drivevlm.route_tracking import RouteProgress, RouteTracker
from drivevlm.sim.base import CameraBackend, EpisodeSpec, SimulatorBackend, make_backend
from drivevlm.sim.geometry import world_to_ego
from drivevlm.sim.world import Actor, ActorKind, Control, WorldState
from drivevlm.traffic_rules import RedLightMonitor, red_stop_line_ahead_m
from drivevlm.vehicle_signals import VehicleSignals

STABILITY_WINDOW = 30
PROVISIONAL_COLLISION_PENALTY = -10.0
_AHEAD_RANGE_M = 60.0
# Lateral half-width of the corridor in which a vulnerable road user / a vehicle counts as "ahead", m.
_VRU_CORRIDOR_M = 4.0
_VEHICLE_CORRIDOR_M = 2.0
# Waiting, not stalling (training's stopped rule): a red stop line or a vehicle this close ahead.
_WAITING_RANGE_M = 10.0


@dataclass(frozen=True, slots=True)
class _Surroundings:
    """Ground truth about what is ahead of the ego, for VehicleSignals (oracles, baselines, inspection)."""

    nearest_vru_ahead_m: float = math.inf
    nearest_vehicle_ahead_m: float = math.inf
    # Along the ego's heading ray: the first actor whose box the ego's width would sweep, and how fast the
    # ego closes in on it (km/h, negative when it pulls away; 0 when there is none).
    front_obstacle_m: float = math.inf
    front_closing_kmh: float = 0.0
    # Cars that were ahead of the ego (in the ego frame) and are now behind it, side by side or behind.
    ahead_car_ids: frozenset[str] = frozenset()


def _surroundings(state: WorldState, previously_ahead: frozenset[str]) -> tuple[_Surroundings, int]:
    """What is ahead of the ego, and how many cars it overtook since `previously_ahead` was measured."""
    if not state.actors:
        return _Surroundings(), 0
    ego = state.ego
    local = world_to_ego(
        np.array([(a.pose.x, a.pose.y) for a in state.actors]), ego.pose.x, ego.pose.y, ego.pose.yaw
    )
    ahead_x, lateral = local[:, 0], np.abs(local[:, 1])
    distance = np.hypot(ahead_x, local[:, 1])
    vulnerable = np.array([a.kind.is_vulnerable for a in state.actors])
    in_front = (ahead_x > 0) & (ahead_x < _AHEAD_RANGE_M)
    half_widths = np.array([0.5 * a.width for a in state.actors])

    def nearest(mask: np.ndarray, values: np.ndarray) -> float:
        return float(values[mask].min()) if mask.any() else math.inf

    # Vehicles and motorway obstacles alike are what the ego must not drive into; only cars are overtaken.
    cars = ~vulnerable
    ids = [a.id for a in state.actors]
    overtakable = np.array([a.kind is ActorKind.CAR for a in state.actors])
    ahead_cars = frozenset(ids[i] for i in np.flatnonzero(overtakable & in_front & (lateral < 6.0)))
    behind_now = {ids[i] for i in np.flatnonzero(ahead_x <= 0)}
    swept = np.flatnonzero(in_front & (lateral < 0.5 * ego.width + half_widths))
    front_m, closing = math.inf, 0.0
    if swept.size:
        first = int(swept[np.argmin(ahead_x[swept])])
        front_m = float(ahead_x[first])
        along = state.actors[first].speed * math.cos(state.actors[first].pose.yaw - ego.pose.yaw)
        closing = 3.6 * (ego.speed - along)
    found = _Surroundings(
        nearest_vru_ahead_m=nearest(vulnerable & in_front & (lateral < _VRU_CORRIDOR_M), distance),
        nearest_vehicle_ahead_m=nearest(cars & in_front & (lateral < _VEHICLE_CORRIDOR_M), distance),
        front_obstacle_m=front_m,
        front_closing_kmh=closing,
        ahead_car_ids=ahead_cars,
    )
    return found, len(previously_ahead & behind_now)


class DriveEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}  # noqa: RUF012

    def __init__(self, config: EnvConfig | dict[str, Any] | None = None, render_mode: str | None = None):
        self.config = config if isinstance(config, EnvConfig) else build(EnvConfig, config or {}, "env")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: unknown value {render_mode!r}; allowed: rgb_array")
        self.render_mode = render_mode
        cfg = self.config
        self._masks = BevMaskRenderer(
            size=cfg.bev_size,
            pixels_per_meter=cfg.bev_pixels_per_meter,
            history=len(cfg.bev_history) - 1,
            traffic_lights=cfg.bev_traffic_lights,
        )
        self._bev_rgb: BevRgbRenderer | None = None
        self._front: FrontCameraRenderer | None = None
        n_state = 3 + 2 * cfg.route_waypoints + (2 if cfg.route_errors else 0) + (2 if cfg.front_gap else 0)
        self.observation_space = gym.spaces.Dict(
            {
                "bev": gym.spaces.Box(
                    0, 255, (len(self._masks.channels), cfg.bev_size, cfg.bev_size), np.uint8
                ),
                "state": gym.spaces.Box(-np.inf, np.inf, (n_state,), np.float32),
            }
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._backend: SimulatorBackend | None = None
        self._state: WorldState | None = None
        self._tracker: RouteTracker | None = None
        self._past_actors: deque[tuple[Actor, ...]] = deque(maxlen=max(cfg.bev_history) + 1)
        # Running count, sum and sum of squares of the episode's steering: its std in O(1) per step.
        self._steer_moments = np.zeros(3)
        self._around = _Surroundings()
        self._offsets: deque[float] = deque(maxlen=STABILITY_WINDOW)
        self._dt = EpisodeSpec(town=cfg.town).dt
        # The config of the running episode: reset's overrides (a town, a scenario) applied to `config`.
        self._episode_config = cfg
        self._arc = 0.0
        self._seeded = False
        self._red_lights = RedLightMonitor()

    @property
    def mask_channels(self) -> list[str]:
        return list(self._masks.channels)

    def _backend_or_start(self) -> SimulatorBackend:
        if self._backend is None:
            options = dict(self.config.backend_options)
            if self.config.simulator == "sumo":
                options.setdefault("cache_dir", self.config.cache_dir)
            self._backend = make_backend(self.config.simulator, **options)
        return self._backend

    def _config_with(self, overrides: dict[str, Any]) -> EnvConfig:
        """`config` with reset's overrides; speeds left to the town follow an overridden town."""
        values = self.config.model_dump()
        if "town" in overrides:
            for name in ("target_speed_kmh", "max_speed_kmh"):
                if name not in self.config.model_fields_set:
                    values.pop(name)
        return build(EnvConfig, {**values, **overrides}, "env")

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if seed is None and not self._seeded:
            seed = self.config.seed
        self._seeded = True
        super().reset(seed=seed)
        options = dict(options or {})
        overrides = {k: options.pop(k) for k in ("town", "scenario", "density") if k in options}
        route_index = options.pop("route_index", None)
        if options:
            allowed = "town, scenario, density, route_index"
            raise ValueError(f"reset options: unknown keys {sorted(options)}; allowed: {allowed}")
        mix = self.config.scenario_mix
        if mix and "scenario" not in overrides:
            overrides["scenario"] = mix[int(self.np_random.integers(len(mix)))]
        cfg = self._config_with(overrides) if overrides else self.config
        self._episode_config = cfg
        spec = EpisodeSpec(town=cfg.town, scenario=cfg.scenario, density=cfg.density, route_index=route_index)
        sim_seed = int(self.np_random.integers(0, 2**31 - 1))
        state = self._backend_or_start().reset(spec, sim_seed)
        self._tracker = RouteTracker(state.route)
        self._past_actors.clear()
        self._offsets.clear()
        self._steer_moments = np.zeros(3)
        self._around = _surroundings(state, frozenset())[0]
        self._episode = {
            "steps": 0,
            "distance_m": 0.0,
            "speed_sum_kmh": 0.0,
            "stopped_s": 0.0,
            "red_lights": 0,
        }
        self._red_lights.reset()
        self._red_lights.update(state)
        self._prev_steer = 0.0
        self._state = state
        progress = self._tracker.update(state.ego.pose)
        self._arc = progress.arc_length
        self._offsets.append(progress.lateral)
        obs = self._observe(state, progress)
        info: dict[str, Any] = {"spec": spec, "sim_seed": sim_seed, "route_length_m": self._tracker.length}
        if cfg.render_frames:
            info["frames"] = self._frames(state)
        return obs, info

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._state is None or self._tracker is None:
            raise RuntimeError("step() called before reset()")
        act = np.asarray(action, dtype=np.float64).reshape(-1)
        if act.shape != (2,):
            raise ValueError(f"action: expected 2 values [steer, throttle], got shape {np.shape(action)}")
        if not np.all(np.isfinite(act)):
            raise ValueError(f"action: must be finite, got {act.tolist()}")
        act = np.clip(act, -1.0, 1.0)
        state = self._backend_or_start().step(Control(steer=float(act[0]), throttle=float(act[1])))
        cfg = self._episode_config
        before = self._arc
        progress = self._tracker.update(state.ego.pose)
        self._offsets.append(progress.lateral)
        speed_kmh = state.ego.speed * 3.6
        heading_error = progress.heading_error
        collision = state.events.collisions[0] if state.events.collisions else None
        around, overtaken = _surroundings(state, self._around.ahead_car_ids)
        self._around = around
        self._steer_moments += (1.0, state.ego.steer, state.ego.steer**2)
        signals = VehicleSignals(
            speed_kmh=speed_kmh,
            longitudinal_speed_kmh=speed_kmh * math.cos(heading_error),
            center_offset_m=progress.lateral,
            heading_error_deg=math.degrees(heading_error),
            center_offset_std_m=float(np.std(self._offsets)),
            steer=state.ego.steer,
            throttle=state.ego.throttle,
            previous_steer=self._prev_steer,
            progress_m=progress.arc_length - before,
            collided=collision is not None,
            collision_speed_kmh=collision.ego_speed_kmh if collision else 0.0,
            off_route=abs(progress.lateral) > cfg.off_route_m,
            too_fast=speed_kmh > cfg.max_speed_kmh,
            lane_invasion=state.events.lane_invasion,
            route_finished=progress.finished,
            target_speed_kmh=cfg.target_speed_kmh,
            nearest_vru_ahead_m=around.nearest_vru_ahead_m,
            nearest_vehicle_ahead_m=around.nearest_vehicle_ahead_m,
            front_obstacle_m=around.front_obstacle_m,
            vehicles_overtaken=overtaken,
            steer_std=self._steer_std(),
        )
        self._prev_steer = state.ego.steer
        self._past_actors.append(self._state.actors)
        self._state = state
        self._arc = progress.arc_length

        ep = self._episode
        ep["steps"] += 1
        ep["distance_m"] += state.ego.speed * self._dt
        ep["speed_sum_kmh"] += speed_kmh
        if speed_kmh >= 1.0:
            ep["stopped_s"] = 0.0
        elif cfg.stopped_counts_waiting or not cfg.training or not self._waiting(state, signals):
            ep["stopped_s"] += self._dt
        ran_red = self._red_lights.update(state)
        ep["red_lights"] += ran_red

        reason = self._termination(signals, ep["stopped_s"], ran_red)
        terminated = reason is not None
        truncated = not terminated and ep["steps"] >= cfg.max_episode_steps
        if truncated:
            reason = "step_limit"
        metrics = {
            "speed_kmh": speed_kmh,
            "distance_m": ep["distance_m"],
            "center_offset_m": progress.lateral,
            "heading_error_deg": signals.heading_error_deg,
            "collision": float(signals.collided),
            "collision_speed_kmh": signals.collision_speed_kmh,
            "route_completion": progress.completion,
            "lane_invasion": float(signals.lane_invasion),
            "red_light": float(ran_red),
        }
        info: dict[str, Any] = {
            "signals": signals,
            "metrics": metrics,
            "collision_kind": collision.kind.value if collision and collision.kind else None,
            "triggered": state.events.triggered,
        }
        if cfg.render_frames:
            info["frames"] = self._frames(state)
        if terminated or truncated:
            info["episode_metrics"] = {
                "steps": ep["steps"],
                "distance_m": ep["distance_m"],
                "average_speed_kmh": ep["speed_sum_kmh"] / ep["steps"],
                "route_completion": progress.completion,
                "collided": signals.collided,
                "collision_speed_kmh": signals.collision_speed_kmh,
                "success": reason == "route_finished",
                "red_lights": ep["red_lights"],
                "reason": reason,
            }
        reward = self._provisional_reward(signals)
        return self._observe(state, progress), reward, terminated, truncated, info

    def _steer_std(self) -> float:
        count, total, squares = self._steer_moments
        return math.sqrt(max(squares / count - (total / count) ** 2, 0.0))

    def _provisional_reward(self, signals: VehicleSignals) -> float:
        """The shaping reward at the full target speed (no semantic throttle), −10 on a collision step."""
        terms = shaping_terms(
            1.0,
            signals.speed_kmh,
            signals.center_offset_m,
            signals.heading_error_deg,
            signals.center_offset_std_m,
            ShapingParams(target_speed_kmh=self._episode_config.target_speed_kmh),
        )
        return PROVISIONAL_COLLISION_PENALTY if signals.collided else float(terms["r_shaping"])

    @staticmethod
    def _waiting(state: WorldState, signals: VehicleSignals) -> bool:
        """Standing for a reason: at a red stop line or behind a vehicle just ahead."""
        blocked = min(red_stop_line_ahead_m(state), signals.nearest_vehicle_ahead_m)
        return blocked <= _WAITING_RANGE_M

    def _termination(self, signals: VehicleSignals, stopped_s: float, ran_red: bool) -> str | None:
        if signals.collided:
            return "collision"
        if signals.route_finished:
            return "route_finished"
        if self.config.training and signals.off_route:
            return "off_route"
        if self.config.training and self.config.red_light_termination and ran_red:
            return "red_light"
        if self.config.training and signals.too_fast:
            return "too_fast"
        if stopped_s >= self.config.stopped_seconds:
            return "stopped"
        return None

    def _observe(self, state: WorldState, progress: RouteProgress) -> dict[str, np.ndarray]:
        cfg = self._episode_config
        past = self._past_actors
        # past[-h] is the actor set h steps ago; early in an episode the renderer repeats the oldest frame.
        history = [past[-h] for h in cfg.bev_history[:-1] if h <= len(past)]
        masks = self._masks.render(state, history)
        assert self._tracker is not None
        waypoints = self._tracker.waypoints_ahead(state.ego.pose, cfg.route_waypoints, cfg.waypoint_spacing_m)
        speed_unit, waypoint_unit = cfg.state_units_kmh_m
        speed = state.ego.speed * 3.6 / speed_unit
        waypoints = waypoints / waypoint_unit
        extra = [progress.lateral, progress.heading_error] if cfg.route_errors else []
        if cfg.front_gap:
            gap, closing = min(self._around.front_obstacle_m, _AHEAD_RANGE_M), self._around.front_closing_kmh
            gap_unit = _AHEAD_RANGE_M if cfg.state_units == "normalized" else 1.0
            extra += [gap / gap_unit, closing / speed_unit]
        vector = np.concatenate([[state.ego.steer, state.ego.throttle, speed], waypoints.reshape(-1), extra])
        return {"bev": masks, "state": vector.astype(np.float32)}

    def _frames(self, state: WorldState) -> dict[str, np.ndarray]:
        if self.config.simulator_cameras and isinstance(self._backend, CameraBackend):
            return self._backend.camera_frames()
        if self._bev_rgb is None:
            self._bev_rgb = BevRgbRenderer(size=self.config.rgb_size)
            self._front = FrontCameraRenderer(width=self.config.rgb_size, height=self.config.rgb_size)
        assert self._front is not None
        return {"bev_rgb": self._bev_rgb.render(state), "front": self._front.render(state)}

    @property
    def world_state(self) -> WorldState | None:
        return self._state

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._state is None:
            return None
        frames = self._frames(self._state)
        return np.concatenate([frames["front"], frames["bev_rgb"]], axis=1)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        self._state = None


def make_env(config: EnvConfig | dict[str, Any] | None = None, render_mode: str | None = None) -> DriveEnv:
    return DriveEnv(config, render_mode=render_mode)

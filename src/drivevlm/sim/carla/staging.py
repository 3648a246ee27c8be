"""The scripted scenarios on a CARLA server, placed from the staging spec both backends share
(`sim.scenarios.STAGING`: where along the ego route, how far out, when each actor sets off, how fast)."""

from __future__ import annotations

import logging
import math
from typing import Any

import carla
import numpy as np

from drivevlm.sim.carla.actors import (
    BICYCLE_BLUEPRINTS,
    TRAFFIC_BLUEPRINTS,
    find_blueprints,
    ground_z,
    spawn_vehicle,
)
from drivevlm.sim.carla.episode import CarlaEpisode, ScriptedEvent
from drivevlm.sim.carla.map import to_location, to_rotation, to_xy, to_yaw
from drivevlm.sim.carla.route_planner import SpawnPoint
from drivevlm.sim.scenarios import STAGING

log = logging.getLogger(__name__)

# CARLA's urban driving lanes are about 3.5 m wide.
HALF_LANE_M = 1.75


def route_point(
    carla_map: Any, episode: CarlaEpisode, arc: float, lateral: float
) -> tuple[SpawnPoint, np.ndarray]:
    """A pose `arc` metres along the route, `lateral` metres to its left, and the route's left normal."""
    i = int(np.clip(np.searchsorted(episode.route_arc, arc), 0, len(episode.route.waypoints) - 1))
    x, y = episode.route.waypoints[i]
    heading = float(episode.route.headings[i])
    left = np.array([-math.sin(heading), math.cos(heading)])
    z = ground_z(carla_map, x, y)
    return SpawnPoint(float(x + left[0] * lateral), float(y + left[1] * lateral), heading, z + 0.3), left


class ScenarioStager:
    """Stages `episode.spec.scenario` around the ego's route; the riders are Traffic Manager vehicles."""

    def __init__(self, world: Any, traffic_manager: Any, tm_port: int, episode: CarlaEpisode) -> None:
        self.world, self.tm, self.tm_port, self.episode = world, traffic_manager, tm_port, episode
        self.map = world.get_map()
        self.cars = find_blueprints(world, TRAFFIC_BLUEPRINTS)
        self.bikes = find_blueprints(world, BICYCLE_BLUEPRINTS)

    def stage(self, rng: np.random.Generator) -> None:
        name = self.episode.spec.scenario
        if name == "pedestrian_crossing":
            spec = STAGING[name]
            self._walker(name, spec.at_m, -(HALF_LANE_M + spec.walker_out_m), spec.lead_m, spec.speed_mps)
        elif name == "occluded_pedestrian":
            spec = STAGING[name]
            self._parked(spec.at_m - spec.parked_back_m, -(HALF_LANE_M + spec.parked_out_m))
            arc = spec.at_m + spec.walker_ahead_m
            self._walker(name, arc, -(HALF_LANE_M + spec.walker_out_m), spec.lead_m, spec.speed_mps)
        elif name == "slow_cyclist":
            spec = STAGING[name]
            self._rider(self._point(spec.at_m, spec.lane_offset_m), spec.speed_mps)
        elif name == "cyclist_merge":
            # A merge needs a side road at the right place; riding ahead in the lane is the fallback.
            spec = STAGING[name]
            spot = self._point(spec.at_m, -(HALF_LANE_M + 6.0))
            if not self._rider(spot, spec.speed_mps):
                self._rider(self._point(spec.at_m, STAGING["slow_cyclist"].lane_offset_m), spec.speed_mps)
        elif name == "oncoming_cyclist":
            spec = STAGING[name]
            self._parked(spec.at_m, 0.0)
            self._oncoming_rider(spec.at_m + spec.oncoming_ahead_m, spec.speed_mps)
        elif name == "car_following" and self.cars:
            spec = STAGING[name]
            car = self.cars[int(rng.integers(len(self.cars)))]
            lead = spawn_vehicle(
                self.world, self.episode, car, self._point(spec.lead_car_m, 0.0), scripted=True
            )
            if lead is not None:
                lead.set_autopilot(True, self.tm_port)
                self.tm.auto_lane_change(lead, False)
                self.tm.set_desired_speed(lead, 3.6 * spec.speed_mps)

    def _point(self, arc: float, lateral: float) -> SpawnPoint:
        return route_point(self.map, self.episode, arc, lateral)[0]

    def _parked(self, arc: float, lateral: float) -> None:
        if not self.cars:
            return
        car = spawn_vehicle(
            self.world, self.episode, self.cars[0], self._point(arc, lateral), parked=True, scripted=True
        )
        if car is not None:
            car.apply_control(carla.VehicleControl(hand_brake=True))

    def _rider(self, point: SpawnPoint, speed_mps: float) -> bool:
        """A scripted cyclist at `point` that keeps its lane at `speed_mps`; False when it found no room."""
        if not self.bikes:
            return False
        bike = spawn_vehicle(self.world, self.episode, self.bikes[0], point, scripted=True)
        if bike is None:
            return False
        bike.set_autopilot(True, self.tm_port)
        self.tm.auto_lane_change(bike, False)
        self.tm.set_desired_speed(bike, 3.6 * speed_mps)
        return True

    def _oncoming_rider(self, arc: float, speed_mps: float) -> None:
        """A rider `arc` metres along the route in the nearest lane to the left that runs the other way
        (in the same road in CARLA's towns, a separate road in networks exported from SUMO)."""
        for lateral in (1.0, 2.0, 3.0):
            point, _ = route_point(self.map, self.episode, arc, 2.0 * HALF_LANE_M * lateral)
            lane = self.map.get_waypoint(to_location(point.x, point.y), False, carla.LaneType.Driving)
            if lane is None:
                continue
            yaw = to_yaw(lane.transform.rotation)
            if math.cos(yaw - point.yaw) < -0.5:
                x, y = to_xy(lane.transform.location)
                self._rider(SpawnPoint(x, y, yaw, point.z), speed_mps)
                return
        log.warning("scenario oncoming_cyclist: no lane running the other way beside the route")

    def _walker(self, name: str, arc: float, lateral: float, lead_m: float, speed_mps: float) -> None:
        """A walker beside the road that crosses it once the ego is `lead_m` before `arc`."""
        point, left = route_point(self.map, self.episode, arc, lateral)
        walker_bps = list(self.world.get_blueprint_library().filter("walker.pedestrian.*"))
        if not walker_bps:
            return
        # Facing across the road, towards the ego's lane.
        direction = left if lateral < 0 else -left
        yaw = math.atan2(direction[1], direction[0])
        transform = carla.Transform(to_location(point.x, point.y, point.z + 0.7), to_rotation(yaw))
        walker = self.world.try_spawn_actor(walker_bps[0], transform)
        if walker is None:
            log.warning("scenario %s: could not place its pedestrian", name)
            return
        self.episode.track(walker, scripted=True)
        self.episode.events.append(
            ScriptedEvent(name, walker, arc - lead_m, (float(direction[0]), float(direction[1])), speed_mps)
        )

"""Actors on a CARLA server: which of our kinds a blueprint is, their boxes in our frame, and spawning the
ego, Traffic Manager traffic and AI walkers."""

from __future__ import annotations

import logging
import math
from typing import Any

import carla
import numpy as np

from drivevlm.sim.base import SimulatorError
from drivevlm.sim.carla.episode import CarlaEpisode
from drivevlm.sim.carla.map import to_location, to_rotation, to_xy, to_yaw
from drivevlm.sim.carla.route_planner import SpawnPoint, spawn_points
from drivevlm.sim.ego_dynamics import check_control
from drivevlm.sim.scenarios import Density
from drivevlm.sim.world import ActorKind, Control, Pose, Route

log = logging.getLogger(__name__)

EGO_BLUEPRINT = "vehicle.tesla.model3"
# The paper's Traffic Manager fleet.
TRAFFIC_BLUEPRINTS = ("vehicle.tesla.model3", "vehicle.audi.tt", "vehicle.chevrolet.impala")
BICYCLE_BLUEPRINTS = ("vehicle.bh.crossbike", "vehicle.diamondback.century", "vehicle.gazelle.omafiets")
MOTORCYCLE_BLUEPRINTS = (
    "vehicle.harley-davidson.low_rider",
    "vehicle.kawasaki.ninja",
    "vehicle.yamaha.yzf",
    "vehicle.vespa.zx125",
)
STEER_SMOOTHING = 0.75
# Background cyclists ride at about a third of the speed limit.
CYCLIST_SPEED_DIFFERENCE_PCT = 65.0


def actor_kind(type_id: str, attributes: dict[str, str] | None = None) -> ActorKind | None:
    """Our kind of a CARLA actor from its blueprint id (and `base_type` where the server gives it)."""
    attributes = attributes or {}
    if type_id.startswith("walker.pedestrian"):
        return ActorKind.PEDESTRIAN
    if not type_id.startswith("vehicle."):
        return None
    base = attributes.get("base_type", "").lower()
    if base == "bicycle" or type_id in BICYCLE_BLUEPRINTS:
        return ActorKind.BICYCLE
    if base == "motorcycle" or type_id in MOTORCYCLE_BLUEPRINTS:
        return ActorKind.MOTORCYCLE
    return ActorKind.CAR


def vehicle_control(control: Control, previous_steer: float) -> tuple[carla.VehicleControl, float]:
    """The policy's action as a CARLA control: throttle >= 0 drives, < 0 brakes; steering smoothed 0.75."""
    control = check_control(control)
    steer = STEER_SMOOTHING * previous_steer + (1.0 - STEER_SMOOTHING) * control.steer
    throttle = max(control.throttle, 0.0)
    brake = max(-control.throttle, 0.0)
    return carla.VehicleControl(throttle=throttle, steer=steer, brake=brake), steer


def speed_of(actor: Any) -> float:
    """Horizontal speed, m/s."""
    velocity = actor.get_velocity()
    return float(math.hypot(velocity.x, velocity.y))


def box_pose(actor: Any) -> tuple[Pose, float, float, float]:
    """Ground centre of an actor's bounding box in our frame, and its length, width, height."""
    transform = actor.get_transform()
    box = actor.bounding_box
    x, y = to_xy(transform.location)
    yaw = to_yaw(transform.rotation)
    # The box centre sits box.location away from the actor origin, in the actor's (left-handed) frame.
    dx, dy = float(box.location.x), -float(box.location.y)
    x += dx * math.cos(yaw) - dy * math.sin(yaw)
    y += dx * math.sin(yaw) + dy * math.cos(yaw)
    return Pose(x, y, yaw), 2.0 * float(box.extent.x), 2.0 * float(box.extent.y), 2.0 * float(box.extent.z)


def ground_z(carla_map: Any, x: float, y: float) -> float:
    """Road height under (x, y): routes are planar, towns are not (Town03-05 have slopes and bridges)."""
    waypoint = carla_map.get_waypoint(to_location(x, y), True, carla.LaneType.Driving)
    return float(waypoint.transform.location.z) if waypoint is not None else 0.0


def find_blueprints(world: Any, ids: tuple[str, ...]) -> list[Any]:
    """The blueprints of `ids` this server has (a missing one is logged and skipped)."""
    library = world.get_blueprint_library()
    found = []
    for blueprint_id in ids:
        try:
            found.append(library.find(blueprint_id))
        except (IndexError, RuntimeError):
            log.warning("blueprint %s is not on this server; skipped", blueprint_id)
    return found


def spawn_vehicle(world: Any, episode: CarlaEpisode, blueprint: Any, point: SpawnPoint, **flags: bool) -> Any:
    """A vehicle at `point` (None where the place is taken), tracked by the episode."""
    transform = carla.Transform(to_location(point.x, point.y, point.z + 0.3), to_rotation(point.yaw))
    actor = world.try_spawn_actor(blueprint, transform)
    return None if actor is None else episode.track(actor, **flags)


def spawn_ego(world: Any, route: Route) -> Any:
    blueprint = world.get_blueprint_library().find(EGO_BLUEPRINT)
    blueprint.set_attribute("role_name", "hero")
    # Spawn points can be occupied by someone else's actor: slide a few metres along the route.
    for index in (0, 5, 10, 15, 20):
        i = min(index, len(route.waypoints) - 1)
        x, y = route.waypoints[i]
        z = ground_z(world.get_map(), x, y) + 0.5
        transform = carla.Transform(to_location(x, y, z), to_rotation(float(route.headings[i])))
        ego = world.try_spawn_actor(blueprint, transform)
        if ego is not None:
            return ego
    raise SimulatorError("could not spawn the ego vehicle at the start of its route (the place is occupied)")


def spawn_traffic(
    world: Any,
    traffic_manager: Any,
    tm_port: int,
    episode: CarlaEpisode,
    density: Density,
    rng: np.random.Generator,
    *,
    with_vru: bool,
) -> None:
    """Traffic Manager cars (and cyclists) at free spawn points away from the ego; AI-driven walkers."""
    start = episode.route.waypoints[0]
    points = [p for p in spawn_points(world.get_map()) if math.hypot(p.x - start[0], p.y - start[1]) > 15.0]
    order = rng.permutation(len(points))
    cars = find_blueprints(world, TRAFFIC_BLUEPRINTS)
    bikes = find_blueprints(world, BICYCLE_BLUEPRINTS) if with_vru else []
    wanted = [cars] * density.vehicles + ([bikes] * density.bicycles if bikes else [])
    cursor = 0
    for choices in wanted:
        while cursor < len(order):
            point = points[int(order[cursor])]
            cursor += 1
            actor = spawn_vehicle(world, episode, choices[int(rng.integers(len(choices)))], point)
            if actor is not None:
                actor.set_autopilot(True, tm_port)
                if choices is bikes:
                    traffic_manager.vehicle_percentage_speed_difference(actor, CYCLIST_SPEED_DIFFERENCE_PCT)
                break
    if with_vru and density.pedestrians:
        spawn_walkers(world, episode, density.pedestrians, rng)


def spawn_walkers(world: Any, episode: CarlaEpisode, count: int, rng: np.random.Generator) -> None:
    """`count` walkers at random navigable places, each led by an AI controller to another one."""
    library = world.get_blueprint_library()
    walker_bps = list(library.filter("walker.pedestrian.*"))
    if not walker_bps:
        return
    controller_bp = library.find("controller.ai.walker")
    walkers: list[tuple[Any, float]] = []
    for _ in range(count):
        location = world.get_random_location_from_navigation()
        if location is None:
            continue
        blueprint = walker_bps[int(rng.integers(len(walker_bps)))]
        if blueprint.has_attribute("is_invincible"):
            blueprint.set_attribute("is_invincible", "false")
        walker = world.try_spawn_actor(blueprint, carla.Transform(location))
        if walker is None:
            continue
        episode.track(walker)
        walkers.append((walker, 1.0 + 0.6 * float(rng.random())))
    for walker, speed in walkers:
        controller = world.spawn_actor(controller_bp, carla.Transform(), walker)
        episode.controllers.append(controller)
        controller.start()
        target = world.get_random_location_from_navigation()
        if target is not None:
            controller.go_to_location(target)
        controller.set_max_speed(speed)

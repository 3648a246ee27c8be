"""The CARLA backend: a CARLA server simulates the world in synchronous mode, we read it into a WorldState.

One `step` is one server tick of 1/15 s (the paper's fixed delta, no frame skip). Every blocking call has a
time-out: the client's RPC time-out, `world.tick(timeout)` and bounded waits for camera frames, so a lost
server becomes a `SimulatorError` instead of a hung training run; the next `reset` reconnects. Everything
this backend spawns is destroyed on `close()` or when a reset fails half-way, and the server's previous
world settings are put back; it never starts or kills server processes.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import carla
import numpy as np

from drivevlm.sim.base import EpisodeSpec, SimulatorError
from drivevlm.sim.carla.map import map_geometry, short_name, to_location, to_rotation, to_xy, to_yaw
from drivevlm.sim.carla.route_planner import RouteNotFoundError, RoutePlanner, SpawnPoint, spawn_points
from drivevlm.sim.carla.towns import EVAL_ROUTES, INTERSECTION_ROUTES, carla_town_for
from drivevlm.sim.ego_dynamics import check_control
from drivevlm.sim.geometry import polyline_lengths, project_point
from drivevlm.sim.scenarios import SCENARIOS, Density, check_choice
from drivevlm.sim.world import (
    Actor,
    ActorKind,
    Collision,
    Control,
    EgoState,
    MapGeometry,
    Pose,
    Route,
    StepEvents,
    TrafficLight,
    WorldState,
)

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
FOLLOWING_DISTANCE_M = 2.5
HYBRID_PHYSICS_RADIUS_M = 50.0


@dataclass(frozen=True)
class CameraSpec:
    """An RGB camera rigidly attached to the ego (CARLA's vehicle frame: x ahead, y right, z up)."""

    name: str
    width: int
    height: int
    fov: float
    x: float
    y: float
    z: float
    pitch: float


# VLM-RL's "birdview1" camera: 517 x 517, FOV 110, 6.4 m up, 5.2 m ahead, 1.6 m left, looking down.
BEV_CAMERA = CameraSpec("bev_rgb", 517, 517, 110.0, 5.2, -1.6, 6.4, -90.0)
# Front camera: the paper does not give it; a dash-cam pose on the windscreen, 90 degree FOV.
FRONT_CAMERA = CameraSpec("front", 480, 270, 90.0, 1.5, 0.0, 2.4, 0.0)


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


def _speed(velocity: carla.Vector3D) -> float:
    return float(math.hypot(velocity.x, velocity.y))


def _box_pose(actor: Any) -> tuple[Pose, float, float, float]:
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


def _ground_z(carla_map: Any, x: float, y: float) -> float:
    """Road height under (x, y): routes are planar, towns are not (Town03-05 have slopes and bridges)."""
    waypoint = carla_map.get_waypoint(to_location(x, y), True, carla.LaneType.Driving)
    return float(waypoint.transform.location.z) if waypoint is not None else 0.0


def _image_to_rgb(image: Any) -> np.ndarray:
    """A carla.Image (BGRA bytes) as an H x W x 3 uint8 RGB array."""
    bgra = np.frombuffer(image.raw_data, dtype=np.uint8).reshape(image.height, image.width, 4)
    return np.ascontiguousarray(bgra[:, :, 2::-1])


@dataclass
class ScriptedEvent:
    """A walker that steps into the road once the ego is close enough along its route."""

    name: str
    actor: Any
    trigger_arc: float
    direction: tuple[float, float]
    speed: float
    fired: bool = False


@dataclass
class _Episode:
    spec: EpisodeSpec
    town: str
    geometry: MapGeometry
    route: Route
    route_arc: np.ndarray
    ego: Any
    sensors: list[Any] = field(default_factory=list)
    controllers: list[Any] = field(default_factory=list)
    others: list[Any] = field(default_factory=list)
    scripted_ids: set[int] = field(default_factory=set)
    parked_ids: set[int] = field(default_factory=set)
    events: list[ScriptedEvent] = field(default_factory=list)
    stop_lines: dict[int, tuple[float, float]] = field(default_factory=dict)
    step: int = 0
    steer: float = 0.0
    throttle: float = 0.0


class CarlaBackend:
    """The simulator protocol on a CARLA server (client 0.9.16 by default; the server must match).

    `town` pins one CARLA town for every episode; left None, each episode's `EpisodeSpec.town` is used
    (a CARLA town name, or one of our town names mapped by `towns.carla_town_for`).
    `client_factory(host, port)` builds the client; tests pass a recording fake, users never need it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2000,
        timeout_s: float = 10.0,
        town: str | None = None,
        tm_port: int = 8000,
        load_timeout_s: float = 120.0,
        pedestrian_cross_factor: float = 0.3,
        actor_radius_m: float = 100.0,
        min_route_m: float = 150.0,
        front_camera: CameraSpec = FRONT_CAMERA,
        bev_camera: CameraSpec = BEV_CAMERA,
        client_factory: Callable[[str, int], Any] | None = None,
    ) -> None:
        if timeout_s <= 0 or load_timeout_s <= 0:
            raise ValueError(
                f"timeout_s: must be positive, got {timeout_s} (load_timeout_s {load_timeout_s})"
            )
        if not 0.0 <= pedestrian_cross_factor <= 1.0:
            raise ValueError(f"pedestrian_cross_factor: must be in [0, 1], got {pedestrian_cross_factor}")
        self.town = carla_town_for(town) if town is not None else None
        self.host, self.port, self.tm_port = str(host), int(port), int(tm_port)
        self.timeout_s, self.load_timeout_s = float(timeout_s), float(load_timeout_s)
        self.pedestrian_cross_factor = float(pedestrian_cross_factor)
        self.actor_radius_m = float(actor_radius_m)
        self.min_route_m = float(min_route_m)
        self.cameras = (front_camera, bev_camera)
        self._client_factory = client_factory or carla.Client
        self._client: Any = None
        self._world: Any = None
        self._tm: Any = None
        self._original_settings: Any = None
        self._planners: dict[str, RoutePlanner] = {}
        self._episode: _Episode | None = None
        self._lock = threading.Lock()
        self._collisions: list[Any] = []
        self._invasions = 0
        self._frame_queues: dict[str, queue.Queue] = {}
        self._frames: dict[str, np.ndarray] = {}
        self._episode_count = 0

    # ---------------------------------------------------------------- connection
    def _server_error(self, what: str, error: BaseException) -> SimulatorError:
        """Forget the connection (the next reset reconnects) and describe what failed."""
        self._client = self._world = self._tm = None
        self._original_settings = None
        return SimulatorError(
            f"CARLA server at {self.host}:{self.port} failed during {what}: {error}. "
            "Start one with `./CarlaUE4.sh -RenderOffScreen -quality-level=Low` (see docs/carla.md); "
            "the next reset() reconnects."
        )

    def _connect(self) -> None:
        if self._client is not None:
            return
        try:
            client = self._client_factory(self.host, self.port)
            client.set_timeout(self.timeout_s)
            server = str(client.get_server_version())
            local = str(client.get_client_version())
        except RuntimeError as error:
            raise self._server_error("connect", error) from error
        if server.split("-")[0] != local.split("-")[0]:
            warnings.warn(
                f"CARLA client {local} and server {server} differ: install carla=={server} (one client only)",
                RuntimeWarning,
                stacklevel=3,
            )
        self._client = client

    # ---------------------------------------------------------------- protocol
    def reset(self, spec: EpisodeSpec, seed: int) -> WorldState:
        check_choice("scenario", spec.scenario, SCENARIOS)
        try:
            density = Density(spec.density)
        except ValueError:
            check_choice("density", spec.density, [d.value for d in Density])
            raise
        if spec.dt <= 0:
            raise ValueError(f"dt: must be positive, got {spec.dt}")
        town = self.town or carla_town_for(spec.town)
        self._destroy_episode()
        try:
            self._connect()
            self._episode = self._start_episode(spec, density, town, int(seed))
            return self._tick_and_read()
        except SimulatorError:
            self._fail()
            raise
        except RuntimeError as error:
            self._fail()
            raise self._server_error("reset", error) from error
        except BaseException:
            self._fail()
            raise

    def step(self, control: Control) -> WorldState:
        episode = self._episode
        if episode is None:
            raise SimulatorError("step() before reset(): call reset() first (or again after an error)")
        command, steer = vehicle_control(control, episode.steer)
        try:
            episode.ego.apply_control(command)
            episode.steer, episode.throttle = steer, check_control(control).throttle
            return self._tick_and_read()
        except SimulatorError:
            self._fail()
            raise
        except RuntimeError as error:
            self._fail()
            raise self._server_error("step", error) from error

    def camera_frames(self) -> dict[str, np.ndarray]:
        """The latest photographic frames (uint8 RGB): 'front' and 'bev_rgb' (VLM-RL's top-down camera)."""
        return {name: frame.copy() for name, frame in self._frames.items()}

    def close(self) -> None:
        """Destroy everything this backend spawned and give the server back its previous settings."""
        self._destroy_episode()
        self._restore_settings()
        self._client = self._world = self._tm = None

    # ---------------------------------------------------------------- episode set-up
    def _start_episode(self, spec: EpisodeSpec, density: Density, town: str, seed: int) -> _Episode:
        client = self._client
        world = client.get_world()
        if self._original_settings is None:
            self._original_settings = world.get_settings()
        if short_name(world.get_map()) != town:
            client.set_timeout(self.load_timeout_s)
            try:
                world = client.load_world(town)
            finally:
                client.set_timeout(self.timeout_s)
        self._world = world
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = float(spec.dt)
        world.apply_settings(settings)
        tm = client.get_trafficmanager(self.tm_port)
        tm.set_synchronous_mode(True)
        tm.set_global_distance_to_leading_vehicle(FOLLOWING_DISTANCE_M)
        tm.set_hybrid_physics_mode(True)
        tm.set_hybrid_physics_radius(HYBRID_PHYSICS_RADIUS_M)
        tm.set_random_device_seed(seed)
        self._tm = tm
        world.set_pedestrians_seed(seed)
        world.set_pedestrians_cross_factor(self.pedestrian_cross_factor)
        world.set_weather(carla.WeatherParameters(cloudiness=100.0, sun_altitude_angle=45.0))
        carla_map = world.get_map()
        geometry = map_geometry(carla_map)
        planner = self._planners.get(town)
        if planner is None:
            planner = self._planners[town] = RoutePlanner(carla_map)
        rng = np.random.default_rng(seed)
        route = self._choose_route(spec, town, planner, rng)
        self._episode_count += 1
        episode = _Episode(spec, town, geometry, route, polyline_lengths(route.waypoints), ego=None)
        self._episode = episode
        episode.ego = self._spawn_ego(world, route)
        self._attach_sensors(world, episode)
        self._stage_scenario(world, episode, carla_map, rng)
        vru = SCENARIOS[spec.scenario].involves_vru
        self._spawn_traffic(world, episode, density, rng, with_vru=vru)
        episode.stop_lines = self._stop_lines(world)
        return episode

    def _choose_route(
        self, spec: EpisodeSpec, town: str, planner: RoutePlanner, rng: np.random.Generator
    ) -> Route:
        """The fixed evaluation route `spec.route_index`, else (training) every other episode one of the
        intersection routes where the town has them, else random spawn-point pairs (`min_route_m` long)."""
        if spec.route_index is not None:
            routes = EVAL_ROUTES.get(town)
            if not routes:
                raise ValueError(
                    f"route_index: {town} has no fixed evaluation routes (only {sorted(EVAL_ROUTES)})"
                )
            if not 0 <= spec.route_index < len(routes):
                raise ValueError(
                    f"route_index: {spec.route_index} out of range 0..{len(routes) - 1} for {town}"
                )
            return planner.plan_spawn_points(*routes[spec.route_index])
        fixed = INTERSECTION_ROUTES.get(town)
        if fixed and self._episode_count % 2 == 0:
            pair = fixed[int(rng.integers(len(fixed)))]
            try:
                return planner.plan_spawn_points(*pair)
            except (RouteNotFoundError, ValueError):
                log.warning(
                    "intersection route %s does not exist on this %s; drawing a random one", pair, town
                )
        points = spawn_points(planner.map)
        if len(points) < 2:
            raise SimulatorError(f"{town} has fewer than two spawn points: cannot draw a route")
        best: Route | None = None
        for _ in range(30):
            a, b = rng.choice(len(points), size=2, replace=False)
            try:
                route = planner.plan((points[a].x, points[a].y), (points[b].x, points[b].y))
            except RouteNotFoundError:
                continue
            if route.length >= self.min_route_m:
                return route
            if best is None or route.length > best.length:
                best = route
        if best is None:
            raise SimulatorError(f"no drivable route found between 30 random spawn-point pairs of {town}")
        return best

    def _track(self, episode: _Episode, actor: Any, *, scripted: bool = False, parked: bool = False) -> Any:
        episode.others.append(actor)
        if scripted:
            episode.scripted_ids.add(int(actor.id))
        if parked:
            episode.parked_ids.add(int(actor.id))
        return actor

    def _spawn_ego(self, world: Any, route: Route) -> Any:
        blueprint = world.get_blueprint_library().find(EGO_BLUEPRINT)
        blueprint.set_attribute("role_name", "hero")
        # Spawn points can be occupied by someone else's actor: slide a few metres along the route.
        for index in (0, 5, 10, 15, 20):
            i = min(index, len(route.waypoints) - 1)
            x, y = route.waypoints[i]
            z = _ground_z(world.get_map(), x, y) + 0.5
            transform = carla.Transform(to_location(x, y, z), to_rotation(float(route.headings[i])))
            ego = world.try_spawn_actor(blueprint, transform)
            if ego is not None:
                return ego
        raise SimulatorError(
            "could not spawn the ego vehicle at the start of its route (the place is occupied)"
        )

    def _attach_sensors(self, world: Any, episode: _Episode) -> None:
        library = world.get_blueprint_library()
        with self._lock:
            self._collisions = []
            self._invasions = 0
        self._frames = {}
        self._frame_queues = {}
        collision = world.spawn_actor(library.find("sensor.other.collision"), carla.Transform(), episode.ego)
        episode.sensors.append(collision)
        collision.listen(self._on_collision)
        invasion = world.spawn_actor(
            library.find("sensor.other.lane_invasion"), carla.Transform(), episode.ego
        )
        episode.sensors.append(invasion)
        invasion.listen(self._on_invasion)
        for spec in self.cameras:
            blueprint = library.find("sensor.camera.rgb")
            blueprint.set_attribute("image_size_x", str(spec.width))
            blueprint.set_attribute("image_size_y", str(spec.height))
            blueprint.set_attribute("fov", str(spec.fov))
            transform = carla.Transform(
                carla.Location(x=spec.x, y=spec.y, z=spec.z), carla.Rotation(pitch=spec.pitch)
            )
            camera = world.spawn_actor(blueprint, transform, episode.ego)
            episode.sensors.append(camera)
            frames: queue.Queue = queue.Queue()
            self._frame_queues[spec.name] = frames
            camera.listen(frames.put)

    def _on_collision(self, event: Any) -> None:
        with self._lock:
            self._collisions.append(event)

    def _on_invasion(self, event: Any) -> None:
        with self._lock:
            self._invasions += 1

    # ---------------------------------------------------------------- traffic and scenarios
    def _blueprints(self, world: Any, ids: tuple[str, ...]) -> list[Any]:
        library = world.get_blueprint_library()
        found = []
        for blueprint_id in ids:
            try:
                found.append(library.find(blueprint_id))
            except (IndexError, RuntimeError):
                log.warning("blueprint %s is not on this server; skipped", blueprint_id)
        return found

    def _spawn_vehicle(
        self, world: Any, episode: _Episode, blueprint: Any, point: SpawnPoint, **flags: bool
    ) -> Any:
        transform = carla.Transform(to_location(point.x, point.y, point.z + 0.3), to_rotation(point.yaw))
        actor = world.try_spawn_actor(blueprint, transform)
        return None if actor is None else self._track(episode, actor, **flags)

    def _spawn_traffic(
        self, world: Any, episode: _Episode, density: Density, rng: np.random.Generator, *, with_vru: bool
    ) -> None:
        """Traffic Manager cars (and cyclists) at free spawn points away from the ego; AI-driven walkers."""
        start = episode.route.waypoints[0]
        points = [
            p for p in spawn_points(world.get_map()) if math.hypot(p.x - start[0], p.y - start[1]) > 15.0
        ]
        order = rng.permutation(len(points))
        cars = self._blueprints(world, TRAFFIC_BLUEPRINTS)
        bikes = self._blueprints(world, BICYCLE_BLUEPRINTS) if with_vru else []
        wanted = [cars] * density.vehicles + ([bikes] * density.bicycles if bikes else [])
        cursor = 0
        for choices in wanted:
            while cursor < len(order):
                point = points[int(order[cursor])]
                cursor += 1
                actor = self._spawn_vehicle(world, episode, choices[int(rng.integers(len(choices)))], point)
                if actor is not None:
                    actor.set_autopilot(True, self.tm_port)
                    if choices is bikes:
                        # Cyclists ride at about a third of the speed limit.
                        self._tm.vehicle_percentage_speed_difference(actor, 65.0)
                    break
        if with_vru and density.pedestrians:
            self._spawn_walkers(world, episode, density.pedestrians, rng)

    def _spawn_walkers(self, world: Any, episode: _Episode, count: int, rng: np.random.Generator) -> None:
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
            self._track(episode, walker)
            walkers.append((walker, 1.0 + 0.6 * float(rng.random())))
        for walker, speed in walkers:
            controller = world.spawn_actor(controller_bp, carla.Transform(), walker)
            episode.controllers.append(controller)
            controller.start()
            target = world.get_random_location_from_navigation()
            if target is not None:
                controller.go_to_location(target)
            controller.set_max_speed(speed)

    def _route_point(self, episode: _Episode, arc: float, lateral: float) -> tuple[SpawnPoint, np.ndarray]:
        """A pose `arc` metres along the route, `lateral` metres to its left, and the route's left normal."""
        i = int(np.clip(np.searchsorted(episode.route_arc, arc), 0, len(episode.route.waypoints) - 1))
        x, y = episode.route.waypoints[i]
        heading = float(episode.route.headings[i])
        left = np.array([-math.sin(heading), math.cos(heading)])
        z = _ground_z(self._world.get_map(), x, y)
        return SpawnPoint(float(x + left[0] * lateral), float(y + left[1] * lateral), heading, z + 0.3), left

    def _stage_walker(
        self,
        world: Any,
        episode: _Episode,
        name: str,
        arc: float,
        lateral: float,
        trigger: float,
        speed: float,
    ) -> None:
        library = world.get_blueprint_library()
        point, left = self._route_point(episode, arc, lateral)
        walker_bps = list(library.filter("walker.pedestrian.*"))
        if not walker_bps:
            return
        # Facing across the road, towards the ego's lane.
        direction = left if lateral < 0 else -left
        yaw = math.atan2(direction[1], direction[0])
        transform = carla.Transform(to_location(point.x, point.y, point.z + 0.7), to_rotation(yaw))
        walker = world.try_spawn_actor(walker_bps[0], transform)
        if walker is None:
            log.warning("scenario %s: could not place its pedestrian", name)
            return
        self._track(episode, walker, scripted=True)
        episode.events.append(
            ScriptedEvent(name, walker, arc - trigger, (float(direction[0]), float(direction[1])), speed)
        )

    def _stage_scenario(
        self, world: Any, episode: _Episode, carla_map: Any, rng: np.random.Generator
    ) -> None:
        """Place the named scenario's actors relative to the ego route (the CARLA versions of SCENARIOS)."""
        name = episode.spec.scenario
        cars = self._blueprints(world, TRAFFIC_BLUEPRINTS)
        bikes = self._blueprints(world, BICYCLE_BLUEPRINTS)
        half_lane = 1.75
        if name == "pedestrian_crossing":
            self._stage_walker(world, episode, name, 35.0, -(half_lane + 2.5), 20.0, 1.4)
        elif name == "occluded_pedestrian":
            point, _ = self._route_point(episode, 30.0, -(half_lane + 1.2))
            if cars:
                parked = self._spawn_vehicle(world, episode, cars[0], point, parked=True, scripted=True)
                if parked is not None:
                    parked.apply_control(carla.VehicleControl(hand_brake=True))
            self._stage_walker(world, episode, name, 34.0, -(half_lane + 1.5), 14.0, 1.8)
        elif name in ("slow_cyclist", "cyclist_merge") and bikes:
            # A merge needs a side road at the right distance; riding ahead in the lane is the fallback.
            arc = 25.0 if name == "slow_cyclist" else 45.0
            lateral = -0.8 if name == "slow_cyclist" else -(half_lane + 6.0)
            point, _ = self._route_point(episode, arc, lateral)
            bike = self._spawn_vehicle(world, episode, bikes[0], point, scripted=True)
            if bike is None and name == "cyclist_merge":
                point, _ = self._route_point(episode, 25.0, -0.8)
                bike = self._spawn_vehicle(world, episode, bikes[0], point, scripted=True)
            if bike is not None:
                bike.set_autopilot(True, self.tm_port)
                self._tm.auto_lane_change(bike, False)
                self._tm.vehicle_percentage_speed_difference(bike, 70.0)
        elif name == "oncoming_cyclist":
            point, _ = self._route_point(episode, 40.0, 0.0)
            if cars:
                parked = self._spawn_vehicle(world, episode, cars[0], point, parked=True, scripted=True)
                if parked is not None:
                    parked.apply_control(carla.VehicleControl(hand_brake=True))
            ahead, _ = self._route_point(episode, 70.0, 0.0)
            lane = carla_map.get_waypoint(to_location(ahead.x, ahead.y), True, carla.LaneType.Driving)
            opposite = lane.get_left_lane() if lane is not None else None
            if opposite is not None and bikes and opposite.lane_id * lane.lane_id < 0:
                x, y = to_xy(opposite.transform.location)
                spot = SpawnPoint(x, y, to_yaw(opposite.transform.rotation), 0.3)
                bike = self._spawn_vehicle(world, episode, bikes[0], spot, scripted=True)
                if bike is not None:
                    bike.set_autopilot(True, self.tm_port)
                    self._tm.vehicle_percentage_speed_difference(bike, 60.0)
        elif name == "car_following" and cars:
            point, _ = self._route_point(episode, 20.0, 0.0)
            lead = self._spawn_vehicle(
                world, episode, cars[int(rng.integers(len(cars)))], point, scripted=True
            )
            if lead is not None:
                lead.set_autopilot(True, self.tm_port)
                self._tm.auto_lane_change(lead, False)

    def _stop_lines(self, world: Any) -> dict[int, tuple[float, float]]:
        lines: dict[int, tuple[float, float]] = {}
        for actor in world.get_actors():
            if str(actor.type_id).startswith("traffic.traffic_light"):
                stops = actor.get_stop_waypoints()
                if stops:
                    points = np.array([to_xy(w.transform.location) for w in stops])
                    lines[int(actor.id)] = (float(points[:, 0].mean()), float(points[:, 1].mean()))
        return lines

    # ---------------------------------------------------------------- stepping and reading
    def _tick_and_read(self) -> WorldState:
        episode = self._episode
        assert episode is not None and self._world is not None
        frame = self._world.tick(self.timeout_s)
        self._collect_frames(int(frame))
        return self._read(episode)

    def _collect_frames(self, frame: int) -> None:
        """Wait (bounded) for each camera's image of this tick."""
        for name, frames in self._frame_queues.items():
            while True:
                try:
                    image = frames.get(timeout=self.timeout_s)
                except queue.Empty as error:
                    raise SimulatorError(
                        f"CARLA camera {name!r} delivered no image within {self.timeout_s} s of tick {frame}"
                    ) from error
                if int(image.frame) >= frame:
                    self._frames[name] = _image_to_rgb(image)
                    break

    def _read(self, episode: _Episode) -> WorldState:
        world = self._world
        ego = episode.ego
        ego_pose, length, width, height = _box_pose(ego)
        ego_velocity = ego.get_velocity()
        ego_speed = _speed(ego_velocity)
        actors: list[Actor] = []
        lights: list[TrafficLight] = []
        by_id: dict[int, Any] = {}
        for actor in world.get_actors():
            type_id = str(actor.type_id)
            if type_id.startswith("traffic.traffic_light") and int(actor.id) in episode.stop_lines:
                state = str(actor.get_state()).rsplit(".", 1)[-1].lower()
                lights.append(TrafficLight(str(actor.id), episode.stop_lines[int(actor.id)], state[:1]))
                continue
            if int(actor.id) == int(ego.id):
                continue
            kind = actor_kind(type_id, dict(actor.attributes))
            if kind is None:
                continue
            pose, a_len, a_wid, a_hgt = _box_pose(actor)
            if math.hypot(pose.x - ego_pose.x, pose.y - ego_pose.y) > self.actor_radius_m:
                continue
            by_id[int(actor.id)] = actor
            actors.append(
                Actor(
                    id=str(actor.id),
                    kind=kind,
                    pose=pose,
                    speed=_speed(actor.get_velocity()),
                    length=a_len,
                    width=a_wid,
                    height=a_hgt,
                    scripted=int(actor.id) in episode.scripted_ids,
                    parked=int(actor.id) in episode.parked_ids,
                )
            )
        with self._lock:
            raw_collisions, self._collisions = self._collisions, []
            invaded, self._invasions = self._invasions > 0, 0
        collisions = []
        for event in raw_collisions:
            other = event.other_actor
            type_id = str(getattr(other, "type_id", ""))
            # The paper ends episodes on a collision with anything except the road itself.
            if type_id.startswith("static.road"):
                continue
            kind = actor_kind(type_id, dict(getattr(other, "attributes", {}) or {}))
            other_velocity = other.get_velocity() if other is not None else carla.Vector3D()
            relative = math.hypot(ego_velocity.x - other_velocity.x, ego_velocity.y - other_velocity.y)
            collisions.append(
                Collision(str(getattr(other, "id", "static")), kind, ego_speed * 3.6, relative * 3.6)
            )
        triggered = self._fire_events(episode, ego_pose)
        state = WorldState(
            time=episode.step * episode.spec.dt,
            step=episode.step,
            ego=EgoState(ego_pose, ego_speed, episode.steer, episode.throttle, length, width, height),
            actors=tuple(actors),
            map=episode.geometry,
            route=episode.route,
            events=StepEvents(tuple(collisions), invaded, triggered),
            traffic_lights=tuple(lights),
        )
        episode.step += 1
        return state

    def _fire_events(self, episode: _Episode, ego_pose: Pose) -> tuple[str, ...]:
        if not episode.events:
            return ()
        progress = project_point(
            episode.route.waypoints, ego_pose.x, ego_pose.y, episode.route_arc
        ).arc_length
        fired = []
        for event in episode.events:
            if event.fired or progress < event.trigger_arc:
                continue
            dx, dy = event.direction
            event.actor.apply_control(
                carla.WalkerControl(direction=carla.Vector3D(dx, -dy, 0.0), speed=event.speed)
            )
            event.fired = True
            fired.append(event.name)
        return tuple(fired)

    # ---------------------------------------------------------------- clean-up
    def _fail(self) -> None:
        """After an error: remove our actors and put the server back in its own mode (nobody waits on us)."""
        self._destroy_episode()
        self._restore_settings()

    def _destroy_episode(self) -> None:
        """Sensors first (stop their streams), then walker controllers, then one batch for everything else."""
        episode, self._episode = self._episode, None
        if episode is None:
            return
        for sensor in episode.sensors:
            self._quietly(sensor.stop)
            self._quietly(sensor.destroy)
        for controller in episode.controllers:
            self._quietly(controller.stop)
        rest = [*episode.controllers, *episode.others] + ([episode.ego] if episode.ego is not None else [])
        if rest and self._client is not None:
            commands = [carla.command.DestroyActor(int(actor.id)) for actor in rest]
            self._quietly(lambda: self._client.apply_batch_sync(commands, False))
        self._frame_queues = {}

    def _restore_settings(self) -> None:
        if self._original_settings is None or self._world is None:
            return
        settings, self._original_settings = self._original_settings, None
        if self._tm is not None:
            self._quietly(lambda: self._tm.set_synchronous_mode(False))
        self._quietly(lambda: self._world.apply_settings(settings))

    @staticmethod
    def _quietly(call: Callable[[], Any]) -> None:
        """Clean-up must go on when the server is already gone: log and continue."""
        try:
            call()
        except RuntimeError as error:
            log.warning("CARLA clean-up step failed (server gone?): %s", error)

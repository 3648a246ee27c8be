"""The CARLA backend: a CARLA server simulates the world in synchronous mode, we read it into a WorldState.

One `step` is one server tick of 1/15 s (the paper's fixed delta, no frame skip). Every blocking call has a
time-out: the client's RPC time-out, `world.tick(timeout)` and bounded waits for camera frames, so a lost
server becomes a `SimulatorError` instead of a hung training run; the next `reset` reconnects. Everything
this backend spawns is destroyed on `close()` or when a reset fails half-way, and the server's previous
world settings are put back; it never starts or kills server processes.

This module keeps the connection, the episode's life and the protocol; by job beside it: `actors`
(blueprints, boxes, spawning traffic), `sensors` (the ego's sensors and cameras), `staging` (the scripted
scenarios), `reading` (the world as a `WorldState`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import carla
import numpy as np

from drivevlm.sim.base import EpisodeSpec, SimulatorError
from drivevlm.sim.carla.actors import spawn_ego, spawn_traffic, vehicle_control
from drivevlm.sim.carla.episode import CarlaEpisode
from drivevlm.sim.carla.map import map_geometry, short_name
from drivevlm.sim.carla.reading import read_state, stop_lines
from drivevlm.sim.carla.route_planner import RouteNotFoundError, RoutePlanner, spawn_points
from drivevlm.sim.carla.sensors import BEV_CAMERA, FRONT_CAMERA, CameraSpec, SensorRig
from drivevlm.sim.carla.staging import ScenarioStager
from drivevlm.sim.carla.towns import EVAL_ROUTES, INTERSECTION_ROUTES, carla_town_for
from drivevlm.sim.ego_dynamics import check_control
from drivevlm.sim.geometry import polyline_lengths
from drivevlm.sim.scenarios import SCENARIOS, Density, check_choice
from drivevlm.sim.world import Control, Route, WorldState

log = logging.getLogger(__name__)

FOLLOWING_DISTANCE_M = 2.5
HYBRID_PHYSICS_RADIUS_M = 50.0


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
        self._episode: CarlaEpisode | None = None
        self._sensors = SensorRig(self.cameras)
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
        return {name: frame.copy() for name, frame in self._sensors.frames.items()}

    def close(self) -> None:
        """Destroy everything this backend spawned and give the server back its previous settings."""
        self._destroy_episode()
        self._restore_settings()
        self._client = self._world = self._tm = None

    # ---------------------------------------------------------------- episode set-up
    def _start_episode(self, spec: EpisodeSpec, density: Density, town: str, seed: int) -> CarlaEpisode:
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
        episode = CarlaEpisode(spec, town, geometry, route, polyline_lengths(route.waypoints), ego=None)
        self._episode = episode
        episode.ego = spawn_ego(world, route)
        episode.sensors.extend(self._sensors.attach(world, episode.ego))
        ScenarioStager(world, tm, self.tm_port, episode).stage(rng)
        vru = SCENARIOS[spec.scenario].involves_vru
        spawn_traffic(world, tm, self.tm_port, episode, density, rng, with_vru=vru)
        episode.stop_lines = stop_lines(world)
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

    # ---------------------------------------------------------------- stepping and reading
    def _tick_and_read(self) -> WorldState:
        episode = self._episode
        assert episode is not None and self._world is not None
        frame = self._world.tick(self.timeout_s)
        self._sensors.collect_frames(int(frame), self.timeout_s)
        collisions, invaded = self._sensors.take_events()
        return read_state(self._world, episode, collisions, invaded, self.actor_radius_m)

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
        self._sensors.detach()

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

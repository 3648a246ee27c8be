"""CarlaBackend against a recorded-trace fake of the client calls it makes.

THIS IS NOT A SERVER TEST. No CARLA server exists on our machines, so `FakeClient`/`FakeWorld`/`FakeActor`
below stand in for the few client calls the backend uses and record them. The map is real (a `carla.Map`
loaded from OpenDRIVE) and so are CARLA's value types (Transform, VehicleControl, WorldSettings, commands);
what only a real server can show (physics, sensors, Traffic Manager behaviour, timings) is not tested here.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

import carla
import numpy as np
import pytest

from drivevlm.sim.base import EpisodeSpec, SimulatorError, make_backend
from drivevlm.sim.carla.actors import actor_kind, vehicle_control
from drivevlm.sim.carla.backend import CarlaBackend
from drivevlm.sim.carla.map import map_geometry, to_location, to_xy
from drivevlm.sim.carla.sensors import CameraSpec
from drivevlm.sim.world import ActorKind, Control

BLUEPRINTS = (
    "vehicle.tesla.model3",
    "vehicle.audi.tt",
    "vehicle.chevrolet.impala",
    "vehicle.bh.crossbike",
    "vehicle.diamondback.century",
    "vehicle.gazelle.omafiets",
    "walker.pedestrian.0001",
    "walker.pedestrian.0002",
    "controller.ai.walker",
    "sensor.other.collision",
    "sensor.other.lane_invasion",
    "sensor.camera.rgb",
)
SMALL_CAMERAS = {
    "front_camera": CameraSpec("front", 8, 6, 90.0, 1.5, 0.0, 2.4, 0.0),
    "bev_camera": CameraSpec("bev_rgb", 5, 5, 110.0, 5.2, -1.6, 6.4, -90.0),
}


class FakeBlueprint:
    def __init__(self, blueprint_id: str) -> None:
        self.id = blueprint_id
        self.attributes: dict[str, str] = {}

    def set_attribute(self, key: str, value: str) -> None:
        self.attributes[key] = value

    def has_attribute(self, key: str) -> bool:
        return key == "is_invincible" or key in self.attributes


class FakeLibrary:
    def find(self, blueprint_id: str) -> FakeBlueprint:
        if blueprint_id not in BLUEPRINTS:
            raise IndexError(blueprint_id)
        return FakeBlueprint(blueprint_id)

    def filter(self, pattern: str) -> list[FakeBlueprint]:
        return [FakeBlueprint(b) for b in BLUEPRINTS if fnmatch.fnmatch(b, pattern)]


class FakeImage:
    def __init__(self, frame: int, width: int, height: int) -> None:
        self.frame, self.width, self.height = frame, width, height
        bgra = np.zeros((height, width, 4), dtype=np.uint8)
        bgra[..., 0], bgra[..., 1], bgra[..., 2] = 10, 20, 30  # B, G, R
        self.raw_data = bgra.tobytes()


class FakeActor:
    def __init__(
        self, world: FakeWorld, blueprint: FakeBlueprint, transform: carla.Transform, parent: Any
    ) -> None:
        self.world = world
        self.id = world.next_id()
        self.type_id = blueprint.id
        self.blueprint = blueprint
        self.attributes = {"base_type": "bicycle"} if "crossbike" in blueprint.id else {}
        self.parent = parent
        self.transform = transform
        self.velocity = carla.Vector3D()
        extent = (
            carla.Vector3D(0.3, 0.3, 0.9)
            if blueprint.id.startswith("walker")
            else carla.Vector3D(2.3, 1.0, 0.75)
        )
        self.bounding_box = carla.BoundingBox(carla.Location(0.0, 0.0, extent.z), extent)
        self.controls: list[Any] = []
        self.listener: Any = None
        self.calls: list[str] = []

    def get_transform(self) -> carla.Transform:
        return self.transform

    def get_velocity(self) -> carla.Vector3D:
        return self.velocity

    def apply_control(self, control: Any) -> None:
        self.controls.append(control)

    def set_autopilot(self, enabled: bool, port: int) -> None:
        self.calls.append(f"autopilot {enabled} {port}")

    def listen(self, callback: Any) -> None:
        self.listener = callback

    def stop(self) -> None:
        self.calls.append("stop")
        self.listener = None

    def start(self) -> None:
        self.calls.append("start")

    def go_to_location(self, location: carla.Location) -> None:
        self.calls.append("go_to")

    def set_max_speed(self, speed: float) -> None:
        self.calls.append("max_speed")

    def destroy(self) -> bool:
        self.world.destroyed.append(self.id)
        self.world.actors.pop(self.id, None)
        return True


class FakeTrafficManager:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.log.append(
                f"tm.{name}{args if not args or not isinstance(args[0], FakeActor) else args[1:]}"
            )

        return record


class FakeWorld:
    def __init__(self, carla_map: carla.Map, fail_spawn_after: int | None = None) -> None:
        self.map = carla_map
        self.settings = carla.WorldSettings()
        self.settings.synchronous_mode = False
        self.settings.fixed_delta_seconds = 0.0
        self.applied: list[tuple[bool, float]] = []
        self.actors: dict[int, FakeActor] = {}
        self.spawned: list[int] = []
        self.destroyed: list[int] = []
        self.frame = 100
        self.fail_spawn_after = fail_spawn_after
        self.tick_error: RuntimeError | None = None
        self.log: list[str] = []
        self._id = 1000
        self._sidewalks = [s.centerline for s in map_geometry(carla_map).sidewalks]
        self._rng = np.random.default_rng(0)

    def next_id(self) -> int:
        self._id += 1
        return self._id

    def get_map(self) -> carla.Map:
        return self.map

    def get_settings(self) -> carla.WorldSettings:
        copy = carla.WorldSettings()
        copy.synchronous_mode = self.settings.synchronous_mode
        copy.fixed_delta_seconds = self.settings.fixed_delta_seconds
        return copy

    def apply_settings(self, settings: carla.WorldSettings) -> int:
        self.settings = settings
        self.applied.append((settings.synchronous_mode, settings.fixed_delta_seconds))
        return self.frame

    def get_blueprint_library(self) -> FakeLibrary:
        return FakeLibrary()

    def try_spawn_actor(
        self, blueprint: FakeBlueprint, transform: carla.Transform, attach_to: Any = None
    ) -> Any:
        if self.fail_spawn_after is not None and len(self.spawned) >= self.fail_spawn_after:
            raise RuntimeError("time-out of 10000ms while waiting for the simulator")
        actor = FakeActor(self, blueprint, transform, attach_to)
        self.actors[actor.id] = actor
        self.spawned.append(actor.id)
        return actor

    def spawn_actor(self, blueprint: FakeBlueprint, transform: carla.Transform, attach_to: Any = None) -> Any:
        return self.try_spawn_actor(blueprint, transform, attach_to)

    def get_actors(self) -> list[FakeActor]:
        return list(self.actors.values())

    def tick(self, seconds: float = 0.0) -> int:
        self.log.append(f"tick {seconds}")
        if self.tick_error is not None:
            raise self.tick_error
        self.frame += 1
        for actor in self.actors.values():
            if actor.type_id == "sensor.camera.rgb" and actor.listener is not None:
                width = int(actor.blueprint.attributes["image_size_x"])
                height = int(actor.blueprint.attributes["image_size_y"])
                actor.listener(FakeImage(self.frame, width, height))
        return self.frame

    def get_random_location_from_navigation(self) -> carla.Location:
        line = self._sidewalks[int(self._rng.integers(len(self._sidewalks)))]
        x, y = line[int(self._rng.integers(len(line)))]
        return to_location(x, y, 1.0)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("set_"):
            return lambda *args: self.log.append(name)
        raise AttributeError(name)


class FakeClient:
    def __init__(self, world: FakeWorld | None, server_version: str = "0.9.16") -> None:
        self.world = world
        self.server_version = server_version
        self.timeouts: list[float] = []
        self.tm_log: list[str] = []
        self.batches: list[list[int]] = []

    def set_timeout(self, seconds: float) -> None:
        self.timeouts.append(seconds)

    def get_server_version(self) -> str:
        if self.world is None:
            raise RuntimeError("time-out of 10000ms while waiting for the simulator, make sure it is ready")
        return self.server_version

    def get_client_version(self) -> str:
        return "0.9.16"

    def get_world(self) -> FakeWorld:
        assert self.world is not None
        return self.world

    def load_world(self, name: str) -> FakeWorld:
        raise AssertionError(f"the fake already has the right map; load_world({name!r}) not expected")

    def get_trafficmanager(self, port: int) -> FakeTrafficManager:
        return FakeTrafficManager(self.tm_log)

    def apply_batch_sync(self, commands: list[Any], do_tick: bool = False) -> list[Any]:
        ids = [int(c.actor_id) for c in commands]
        self.batches.append(ids)
        assert self.world is not None
        for actor_id in ids:
            actor = self.world.actors.get(actor_id)
            if actor is not None:
                actor.destroy()
        return []


@pytest.fixture
def town02(grid_xodr: str) -> carla.Map:
    """The grid town under CARLA's name Town02, so the backend does not ask the fake to load a map."""
    return carla.Map("Town02", grid_xodr)


def _backend(client: FakeClient, **options: Any) -> CarlaBackend:
    clients = []

    def factory(host: str, port: int) -> FakeClient:
        clients.append((host, port))
        return client

    backend = CarlaBackend(client_factory=factory, timeout_s=2.0, **SMALL_CAMERAS, **options)
    backend.factory_calls = clients  # type: ignore[attr-defined]
    return backend


def test_registered_under_carla_name() -> None:
    backend = make_backend("carla", port=2999, timeout_s=0.2)
    assert isinstance(backend, CarlaBackend)
    with pytest.raises(SimulatorError, match=r"127\.0\.0\.1:2999"):
        backend.reset(EpisodeSpec(town="Town02"), seed=0)
    backend.close()


def test_control_mapping_splits_throttle_and_smooths_steer() -> None:
    drive, steer = vehicle_control(Control(steer=1.0, throttle=0.6), previous_steer=0.0)
    assert (drive.throttle, drive.brake) == pytest.approx((0.6, 0.0)) and steer == pytest.approx(0.25)
    brake, steer = vehicle_control(Control(steer=1.0, throttle=-0.4), previous_steer=steer)
    assert (brake.throttle, brake.brake) == pytest.approx((0.0, 0.4)) and steer == pytest.approx(0.4375)
    clipped, _ = vehicle_control(Control(steer=-3.0, throttle=2.0), previous_steer=0.0)
    assert clipped.throttle == pytest.approx(1.0) and clipped.steer == pytest.approx(-0.25)
    with pytest.raises(ValueError, match=r"control\.steer"):
        vehicle_control(Control(steer=float("nan"), throttle=0.0), 0.0)


def test_kinds_from_type_ids() -> None:
    assert actor_kind("walker.pedestrian.0012") is ActorKind.PEDESTRIAN
    assert actor_kind("vehicle.gazelle.omafiets") is ActorKind.BICYCLE
    assert actor_kind("vehicle.yamaha.yzf") is ActorKind.MOTORCYCLE
    assert actor_kind("vehicle.some.newbike", {"base_type": "Bicycle"}) is ActorKind.BICYCLE
    assert actor_kind("vehicle.audi.tt") is ActorKind.CAR
    assert actor_kind("static.prop.streetbarrier") is None
    assert actor_kind("sensor.camera.rgb") is None


def test_episode_spawns_steps_and_cleans_up(town02: carla.Map) -> None:
    world = FakeWorld(town02)
    client = FakeClient(world)
    backend = _backend(client, actor_radius_m=1000.0)
    state = backend.reset(EpisodeSpec(town="grid", scenario="pedestrian_crossing", density="regular"), seed=3)
    # Synchronous at the paper's 15 Hz, Traffic Manager set up as in the paper.
    assert world.applied[-1] == (True, pytest.approx(1.0 / 15.0))
    assert "tm.set_synchronous_mode(True,)" in client.tm_log
    assert "tm.set_global_distance_to_leading_vehicle(2.5,)" in client.tm_log
    assert "tm.set_hybrid_physics_mode(True,)" in client.tm_log
    assert "set_pedestrians_cross_factor" in world.log and "set_weather" in world.log
    assert all(t.startswith("tick 2.0") for t in world.log if t.startswith("tick"))
    kinds = [world.actors[int(a.id)].type_id for a in state.actors]
    assert (
        sum(k in ("vehicle.tesla.model3", "vehicle.audi.tt", "vehicle.chevrolet.impala") for k in kinds) == 20
    )
    assert any(a.kind is ActorKind.PEDESTRIAN for a in state.actors)
    assert any(a.kind is ActorKind.BICYCLE for a in state.actors)
    scripted = [a for a in state.actors if a.scripted]
    assert len(scripted) == 1 and scripted[0].kind is ActorKind.PEDESTRIAN
    controllers = [a for a in world.actors.values() if a.type_id == "controller.ai.walker"]
    assert controllers and all(c.calls[:1] == ["start"] for c in controllers)
    assert state.map.name == "carla:Town02" and state.route.length > 0
    ego_actor = next(
        a
        for a in world.actors.values()
        if a.type_id == "vehicle.tesla.model3" and a.blueprint.attributes.get("role_name") == "hero"
    )
    assert state.ego.pose.x == pytest.approx(to_xy(ego_actor.transform.location)[0], abs=1e-3)
    assert state.ego.length == pytest.approx(4.6)
    frames = backend.camera_frames()
    assert frames["front"].shape == (6, 8, 3) and frames["bev_rgb"].shape == (5, 5, 3)
    assert frames["front"][0, 0].tolist() == [30, 20, 10]

    # One step: controls reach the ego as throttle/brake and smoothed steering.
    after = backend.step(Control(steer=0.8, throttle=-0.5))
    applied = ego_actor.controls[-1]
    assert (applied.throttle, applied.brake, applied.steer) == pytest.approx((0.0, 0.5, 0.2))
    assert after.step == state.step + 1 and after.ego.steer == pytest.approx(0.2)

    # A collision with a pedestrian, reported by the collision sensor, becomes a Collision event.
    walker = next(a for a in world.actors.values() if a.type_id.startswith("walker"))
    sensor = next(a for a in world.actors.values() if a.type_id == "sensor.other.collision")
    ego_actor.velocity = carla.Vector3D(5.0, 0.0, 0.0)
    sensor.listener(type("CollisionEvent", (), {"other_actor": walker})())
    next(a for a in world.actors.values() if a.type_id == "sensor.other.lane_invasion").listener(object())
    hit = backend.step(Control(0.0, 0.0))
    assert len(hit.events.collisions) == 1
    collision = hit.events.collisions[0]
    assert collision.kind is ActorKind.PEDESTRIAN and collision.actor_id == str(walker.id)
    assert collision.ego_speed_kmh == pytest.approx(18.0) and collision.relative_speed_kmh == pytest.approx(
        18.0
    )
    assert hit.events.lane_invasion and not backend.step(Control(0.0, 0.0)).events.lane_invasion

    # The scripted pedestrian steps out once the ego gets close along its route.
    target = state.route.waypoints[min(25, len(state.route.waypoints) - 1)]
    ego_actor.transform = carla.Transform(to_location(*target, 0.5), ego_actor.transform.rotation)
    stepped = backend.step(Control(0.0, 0.0))
    assert "pedestrian_crossing" in stepped.events.triggered
    scripted_walker = world.actors[int(scripted[0].id)]
    assert isinstance(scripted_walker.controls[-1], carla.WalkerControl)
    assert scripted_walker.controls[-1].speed == pytest.approx(1.4)

    spawned = set(world.spawned)
    backend.close()
    assert set(world.destroyed) == spawned and not world.actors
    sensors = [i for i in world.destroyed if i not in {x for b in client.batches for x in b}]
    assert sensors, "sensors are destroyed one by one before the batch"
    assert world.applied[-1] == (False, None)
    assert client.tm_log[-1] == "tm.set_synchronous_mode(False,)"


def test_failure_mid_reset_destroys_what_was_spawned(town02: carla.Map) -> None:
    world = FakeWorld(town02, fail_spawn_after=12)
    backend = _backend(FakeClient(world))
    with pytest.raises(SimulatorError, match="during reset"):
        backend.reset(EpisodeSpec(town="Town02", density="dense"), seed=1)
    assert len(world.spawned) == 12
    assert set(world.destroyed) == set(world.spawned) and not world.actors
    assert world.applied[-1] == (False, None)


def test_lost_server_mid_episode_raises_and_next_reset_reconnects(town02: carla.Map) -> None:
    world = FakeWorld(town02)
    backend = _backend(FakeClient(world))
    backend.reset(EpisodeSpec(town="Town02", density="empty"), seed=0)
    world.tick_error = RuntimeError("time-out of 2000ms while waiting for the simulator")
    with pytest.raises(SimulatorError, match="during step"):
        backend.step(Control(0.0, 0.5))
    assert not world.actors
    with pytest.raises(SimulatorError, match="before reset"):
        backend.step(Control(0.0, 0.5))
    world.tick_error = None
    state = backend.reset(EpisodeSpec(town="Town02", density="empty"), seed=0)
    assert len(backend.factory_calls) == 2  # type: ignore[attr-defined]
    assert state.step == 0
    backend.close()
    assert not world.actors


def test_missing_server_is_a_clear_error() -> None:
    backend = _backend(FakeClient(None))
    with pytest.raises(SimulatorError, match=r"127\.0\.0\.1:2000.*CarlaUE4\.sh"):
        backend.reset(EpisodeSpec(town="Town02"), seed=0)


def test_bad_names_name_the_field() -> None:
    with pytest.raises(ValueError, match="town"):
        CarlaBackend(town="Town99")
    backend = _backend(FakeClient(None))
    with pytest.raises(ValueError, match="scenario"):
        backend.reset(EpisodeSpec(town="Town02", scenario="nope"), seed=0)
    with pytest.raises(ValueError, match="density"):
        backend.reset(EpisodeSpec(town="Town02", density="heavy"), seed=0)


def test_version_mismatch_warns(town02: carla.Map) -> None:
    backend = _backend(FakeClient(FakeWorld(town02), server_version="0.9.15"))
    with pytest.warns(RuntimeWarning, match="carla==0.9.15"):
        backend.reset(EpisodeSpec(town="Town02", density="empty"), seed=0)
    backend.close()
    assert math.isfinite(backend.timeout_s)


@pytest.mark.parametrize(
    ("scenario", "walkers", "riders", "parked"),
    [
        ("pedestrian_crossing", 1, 0, 0),
        ("occluded_pedestrian", 1, 0, 1),
        ("slow_cyclist", 0, 1, 0),
        ("cyclist_merge", 0, 1, 0),
        ("oncoming_cyclist", 0, 1, 1),
    ],
)
def test_scenarios_are_staged_from_the_shared_spec(
    town02: carla.Map, scenario: str, walkers: int, riders: int, parked: int
) -> None:
    from drivevlm.sim.scenarios import STAGING

    world = FakeWorld(town02)
    client = FakeClient(world)
    backend = _backend(client)
    state = backend.reset(EpisodeSpec(town="Town02", scenario=scenario, density="empty"), seed=1)
    scripted = [a for a in state.actors if a.scripted]
    kinds = [a.kind for a in scripted]
    assert kinds.count(ActorKind.PEDESTRIAN) == walkers
    assert kinds.count(ActorKind.BICYCLE) == riders
    assert sum(a.parked for a in scripted) == parked
    spec = STAGING[scenario]
    if riders:
        assert f"tm.set_desired_speed({3.6 * spec.speed_mps},)" in client.tm_log
    if walkers:
        event = backend._episode.events[0]  # type: ignore[union-attr]
        assert event.trigger_arc == pytest.approx(spec.at_m + spec.walker_ahead_m - spec.lead_m)
        assert event.speed == pytest.approx(spec.speed_mps)
    backend.close()

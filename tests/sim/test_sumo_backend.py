"""The SUMO backend against real libsumo: determinism, scripted events, collisions, errors."""

import math

import numpy as np
import pytest

from drivevlm.sim.base import EpisodeSpec, SimulatorError, make_backend
from drivevlm.sim.geometry import world_to_ego
from drivevlm.sim.sumo import SumoBackend, evaluation_routes, export_opendrive
from drivevlm.sim.world import ActorKind, Control, WorldState

libsumo = pytest.importorskip("libsumo")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("drivevlm-cache")


@pytest.fixture(scope="module")
def backend(cache_dir):
    sim = make_backend("sumo", cache_dir=cache_dir)
    yield sim
    sim.close()


def follow(ws: WorldState, speed: float = 20 / 3.6, lookahead: float = 6.0) -> Control:
    """Pure pursuit on the route at a target speed: the test's stand-in for a driving policy."""
    e = ws.ego.pose
    local = world_to_ego(ws.route.waypoints, e.x, e.y, e.yaw)
    ahead = local[local[:, 0] > 2.0]
    if len(ahead) == 0:
        return Control(0.0, -1.0)
    target = ahead[np.argmin(np.abs(np.hypot(ahead[:, 0], ahead[:, 1]) - lookahead))]
    curvature = 2.0 * target[1] / float(target @ target)
    steer = float(np.clip(math.atan(2.7 * curvature) / math.radians(35.0), -1, 1))
    throttle = float(np.clip(0.6 * (speed - ws.ego.speed), -1, 1))
    return Control(steer, throttle)


def test_deterministic_with_the_same_seed(backend):
    def rollout():
        ws = backend.reset(EpisodeSpec(town="grid", scenario="random", density="dense"), seed=11)
        trace = []
        for _ in range(90):
            ws = backend.step(follow(ws))
            trace.append(sorted((a.id, round(a.pose.x, 6), round(a.pose.y, 6)) for a in ws.actors))
        return ws, trace

    first, trace_a = rollout()
    second, trace_b = rollout()
    assert trace_a == trace_b
    assert first.ego.pose == second.ego.pose
    assert any(len(t) > 0 for t in trace_a)
    kinds = {a.kind for t in [first.actors] for a in t}
    assert ActorKind.PEDESTRIAN in kinds or ActorKind.CAR in kinds
    other = backend.reset(EpisodeSpec(town="grid", scenario="random", density="dense"), seed=12)
    assert not np.array_equal(other.route.waypoints, first.route.waypoints) or other.actors != first.actors


def test_map_geometry_is_built_once_and_complete(backend):
    a = backend.reset(EpisodeSpec(town="grid", density="empty", route_index=0), seed=0)
    b = backend.reset(EpisodeSpec(town="grid", density="empty", route_index=1), seed=0)
    assert a.map is b.map and a.map.name == "sumo:grid"
    assert len(a.map.lanes) > 20 and a.map.sidewalks and a.map.crossings and a.map.junctions
    assert a.traffic_lights and {t.state for t in a.traffic_lights} <= {"r", "y", "g"}
    steps = np.linalg.norm(np.diff(a.route.waypoints, axis=0), axis=1)
    assert steps.max() < 1.3 and len(a.route.lane_ids) == len(a.route.waypoints)
    assert any(lane.startswith(":") for lane in a.route.lane_ids)  # passes through junction lanes


def test_evaluation_routes_are_fixed(cache_dir):
    for town in ("grid", "tee", "irregular"):
        routes = evaluation_routes(town, "random", cache_dir)
        assert len(routes) >= 8 and len(set(routes)) == len(routes)
        assert routes == evaluation_routes(town, "random", cache_dir)


SCENARIO_TOWNS = [
    ("pedestrian_crossing", "grid", ActorKind.PEDESTRIAN),
    ("occluded_pedestrian", "grid", ActorKind.PEDESTRIAN),
    ("slow_cyclist", "grid", ActorKind.BICYCLE),
    ("cyclist_merge", "tee", ActorKind.BICYCLE),
    ("oncoming_cyclist", "irregular", ActorKind.BICYCLE),
    ("car_following", "tee", ActorKind.CAR),
]


@pytest.mark.parametrize(("scenario", "town", "kind"), SCENARIO_TOWNS)
def test_each_scenario_triggers_its_event_ahead_of_the_ego(backend, scenario, town, kind):
    ws = backend.reset(EpisodeSpec(town=town, scenario=scenario, density="empty", route_index=2), seed=4)
    for _ in range(450):
        ws = backend.step(follow(ws))
        if scenario in ws.events.triggered:
            break
    else:
        pytest.fail(f"{scenario} never triggered")
    actors = [a for a in ws.actors if a.scripted and a.kind is kind and not a.parked]
    assert actors, f"no scripted {kind.value}"
    e = ws.ego.pose
    local = world_to_ego(np.array([[a.pose.x, a.pose.y] for a in actors]), e.x, e.y, e.yaw)
    assert (local[:, 0] > 0).any() and np.hypot(local[:, 0], local[:, 1]).min() < 60
    if scenario == "car_following":
        assert not [a for a in ws.actors if a.kind.is_vulnerable]


def _drive_until_collision(backend, ws, speed, steps=450):
    for _ in range(steps):
        ws = backend.step(follow(ws, speed=speed))
        if ws.events.collisions:
            return ws
    pytest.fail("no collision reported")


@pytest.mark.parametrize(
    ("scenario", "kind"), [("slow_cyclist", ActorKind.BICYCLE), ("oncoming_cyclist", ActorKind.CAR)]
)
def test_collision_with_scripted_actor(backend, scenario, kind):
    ws = backend.reset(EpisodeSpec(town="grid", scenario=scenario, density="empty", route_index=0), seed=1)
    ws = _drive_until_collision(backend, ws, speed=10.0)
    hit = ws.events.collisions[0]
    assert hit.kind is kind and hit.actor_id.startswith("scripted_")
    assert hit.ego_speed_kmh > 15 and hit.relative_speed_kmh > 5


def test_pedestrian_stepping_out_is_hit_at_speed(backend):
    ws = backend.reset(
        EpisodeSpec(town="grid", scenario="occluded_pedestrian", density="empty", route_index=0), seed=2
    )
    ws = _drive_until_collision(backend, ws, speed=30 / 3.6)
    hit = ws.events.collisions[0]
    assert hit.kind is ActorKind.PEDESTRIAN and hit.actor_id == "scripted_ped"
    assert hit.ego_speed_kmh > 20 and hit.relative_speed_kmh > 20


@pytest.mark.parametrize(("vtype", "kind"), [("npc_car", ActorKind.CAR), ("npc_moto", ActorKind.MOTORCYCLE)])
def test_collision_with_sumo_vehicle(backend, vtype, kind):
    """A real SUMO vehicle stopped on the ego's lane, reported by the context subscription, is hit."""
    ws = backend.reset(EpisodeSpec(town="grid", density="empty", route_index=0), seed=3)
    plan = backend.route_plan
    libsumo.vehicle.add(
        "blocker",
        "ego_route",
        typeID=vtype,
        departPos="45",
        departLane=str(plan.depart_lane),
        departSpeed="0",
    )
    libsumo.vehicle.setSpeedMode("blocker", 0)
    libsumo.vehicle.setSpeed("blocker", 0.0)
    ws = _drive_until_collision(backend, ws, speed=8.0, steps=200)
    hit = ws.events.collisions[0]
    assert hit.actor_id == "blocker" and hit.kind is kind and hit.ego_speed_kmh > 15


def test_lane_invasion_when_leaving_the_lane(backend):
    ws = backend.reset(EpisodeSpec(town="grid", density="empty", route_index=0), seed=0)
    for _ in range(30):
        ws = backend.step(follow(ws, speed=6.0))
        assert not ws.events.lane_invasion
    invaded = False
    for _ in range(60):
        ws = backend.step(Control(-0.6, 0.3))
        invaded |= ws.events.lane_invasion
    assert invaded


def test_bad_inputs_name_the_field(backend):
    with pytest.raises(ValueError, match=r"town.*allowed: grid, highway, irregular, tee"):
        backend.reset(EpisodeSpec(town="paris"), seed=0)
    with pytest.raises(ValueError, match="scenario"):
        backend.reset(EpisodeSpec(town="grid", scenario="nope"), seed=0)
    with pytest.raises(ValueError, match="density"):
        backend.reset(EpisodeSpec(town="grid", density="jammed"), seed=0)
    with pytest.raises(ValueError, match="route_index"):
        backend.reset(EpisodeSpec(town="grid", route_index=99), seed=0)
    backend.reset(EpisodeSpec(town="grid", density="empty", route_index=0), seed=0)
    with pytest.raises(ValueError, match=r"control\.steer"):
        backend.step(Control(float("nan"), 0.0))


def test_broken_simulation_raises_and_reset_recovers(backend):
    backend.reset(EpisodeSpec(town="grid", density="regular", route_index=0), seed=0)
    libsumo.vehicle.remove("ego")
    with pytest.raises(SimulatorError, match="SUMO failed at step"):
        backend.step(Control(0.0, 0.5))
    with pytest.raises(SimulatorError, match="reset"):
        backend.step(Control(0.0, 0.5))
    ws = backend.reset(EpisodeSpec(town="grid", density="regular", route_index=0), seed=0)
    ws = backend.step(Control(0.0, 0.5))
    assert ws.step == 1


def test_only_one_live_backend_per_process(backend, cache_dir):
    with pytest.raises(SimulatorError, match="one simulation per process"):
        SumoBackend(cache_dir=cache_dir)


def test_close_is_idempotent_and_frees_the_slot(backend, cache_dir):
    backend.close()
    backend.close()
    with pytest.raises(SimulatorError, match="closed"):
        backend.reset(EpisodeSpec(town="grid"), seed=0)
    other = SumoBackend(cache_dir=cache_dir)
    try:
        assert (
            other.reset(EpisodeSpec(town="tee", density="empty", route_index=0), seed=0).map.name
            == "sumo:tee"
        )
    finally:
        other.close()


def test_export_opendrive(tmp_path, cache_dir):
    out = export_opendrive("tee", tmp_path / "tee.xodr", cache_dir=cache_dir)
    text = out.read_text()
    assert "<OpenDRIVE" in text and "<road " in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

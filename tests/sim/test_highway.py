"""The `highway` town: a motorway with ramps where traffic drives at up to 120 km/h and nobody walks."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivevlm.config import EnvConfig, build
from drivevlm.env import DriveEnv
from drivevlm.eval.suites import SUMO_UNSEEN_TOWNS
from drivevlm.scripted_policy import RouteFollower
from drivevlm.sim.scenarios import TOWNS, URBAN_TOWNS
from drivevlm.sim.sumo.backend import evaluation_routes
from drivevlm.sim.sumo.mapdata import load_town


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("highway")


def test_the_motorway_has_fast_lanes_ramps_and_no_sidewalks(cache: Path) -> None:
    town = load_town("highway", cache)
    assert town.max_lane_speed == pytest.approx(33.33)
    assert not town.sidewalk_edges and not town.crossings and not town.signals
    assert any(len(lanes) == 3 for lanes in town.driving_lanes.values())
    assert any(len(lanes) == 1 for lanes in town.driving_lanes.values())  # the ramps
    assert len(evaluation_routes("highway", "random", cache)) == 10
    # The urban method's towns, suites and data stay as they were.
    assert URBAN_TOWNS == ("grid", "tee", "irregular") and TOWNS["highway"].kind == "highway"
    assert "highway" not in SUMO_UNSEEN_TOWNS


def test_speeds_default_to_the_town_and_a_set_value_wins() -> None:
    urban, motorway = build(EnvConfig, {}, "env"), build(EnvConfig, {"town": "highway"}, "env")
    assert (urban.target_speed_kmh, urban.max_speed_kmh) == (25.0, 35.0)
    assert (motorway.target_speed_kmh, motorway.max_speed_kmh) == (100.0, 130.0)
    assert build(EnvConfig, {"town": "highway", "target_speed_kmh": 80}, "env").target_speed_kmh == 80.0


def test_a_scripted_driver_cruises_among_fast_traffic_and_no_people(cache: Path) -> None:
    env = DriveEnv({"town": "highway", "cache_dir": str(cache)})
    try:
        obs, _ = env.reset(seed=0, options={"route_index": 0})
        driver, signals, top, kinds, traffic = (
            RouteFollower(target_speed_kmh=90.0, seed=0),
            None,
            0.0,
            set(),
            0.0,
        )
        for _ in range(300):
            obs, reward, terminated, truncated, info = env.step(driver.act(obs, signals))
            signals = info["signals"]
            assert not terminated and not truncated
            top = max(top, signals.speed_kmh)
            kinds |= {actor.kind.value for actor in env.world_state.actors}
            traffic = max([traffic, *(3.6 * actor.speed for actor in env.world_state.actors)])
        assert top > 80.0 and abs(signals.center_offset_m) < 1.0 and reward > 0.5
        assert "car" in kinds and not kinds & {"pedestrian", "bicycle"}
        assert traffic > 80.0
    finally:
        env.close()


@pytest.mark.parametrize(
    ("scenario", "kinds", "moving"),
    [
        ("broken_down_vehicle", ["car"], False),
        ("broken_down_vehicle_triangle", ["warning_triangle", "car"], False),
        ("lost_cargo", ["obstacle"], False),
        ("slow_truck", ["car"], True),
        ("cut_in", ["car"], True),
        ("ramp_merge", ["car"], True),
        ("hard_braking", ["car", "car"], True),
        ("person_on_shoulder", ["pedestrian"], False),
    ],
)
def test_long_tail_hazards_are_staged_ahead_and_met(
    cache: Path, scenario: str, kinds: list[str], moving: bool
) -> None:
    assert len(evaluation_routes("highway", scenario, cache)) == 10
    env = DriveEnv({"town": "highway", "scenario": scenario, "density": "empty", "cache_dir": str(cache)})
    try:
        obs, _ = env.reset(seed=0, options={"route_index": 0})
        hazards = [actor for actor in env.world_state.actors if actor.scripted]
        assert [h.kind.value for h in hazards] == kinds
        assert all(h.parked is not moving for h in hazards)
        driver, signals, closest = RouteFollower(target_speed_kmh=90.0, seed=0), None, float("inf")
        for _ in range(1000):
            obs, _, terminated, truncated, info = env.step(driver.act(obs, signals))
            signals = info["signals"]
            ego = env.world_state.ego.pose
            for hazard in (actor for actor in env.world_state.actors if actor.scripted):
                closest = min(closest, ((hazard.pose.x - ego.x) ** 2 + (hazard.pose.y - ego.y) ** 2) ** 0.5)
            if terminated or truncated:
                break
        # The ego meets it at motorway speed: within 15 m of it (or into it).
        assert closest < 15.0
    finally:
        env.close()


def test_a_braking_car_stops_behind_the_one_it_follows(cache: Path) -> None:
    from drivevlm.sim.sumo import scripted
    from drivevlm.sim.sumo.mapdata import build_route

    town = load_town("highway", cache)
    plan = build_route(town, evaluation_routes("highway", "hard_braking", cache)[0])
    near, far = scripted.stage("hard_braking", town, plan)
    for car in (near, far):
        car.started = True
    for _ in range(600):
        for car in (near, far):
            if car.moving:
                car.advance(1 / 15)
    assert near.current_speed == far.current_speed == 0.0
    (nx, ny, _), (fx, fy, _) = near.pose(), far.pose()
    # Centres 8 m apart: 3.5 m between the bumpers of two 4.5 m cars.
    assert ((nx - fx) ** 2 + (ny - fy) ** 2) ** 0.5 == pytest.approx(8.0, abs=0.5)


def test_highway_suites() -> None:
    from drivevlm.eval.suites import get_suite, suite_list

    assert suite_list("highway_hazards") == (
        "scenario_broken_down_vehicle",
        "scenario_broken_down_vehicle_triangle",
        "scenario_lost_cargo",
        "scenario_slow_truck",
        "scenario_cut_in",
        "scenario_ramp_merge",
        "scenario_hard_braking",
        "scenario_person_on_shoulder",
    )
    suite = get_suite("highway", episodes=10)
    assert {e.town for e in suite.episodes} == {"highway"} and {e.scenario for e in suite.episodes} == {
        "random"
    }
    assert {e.town for e in get_suite("scenario_cut_in").episodes} == {"highway"}


def test_a_scenario_mix_draws_one_per_episode_and_a_named_one_wins(cache: Path) -> None:
    mix = ("lost_cargo", "slow_truck")
    env = DriveEnv({"town": "highway", "scenario_mix": mix, "density": "empty", "cache_dir": str(cache)})
    try:
        drawn = [env.reset(seed=seed)[1]["spec"].scenario for seed in range(6)]
        assert set(drawn) == set(mix)
        assert env.reset(seed=0, options={"scenario": "cut_in"})[1]["spec"].scenario == "cut_in"
    finally:
        env.close()
    with pytest.raises(ValueError, match=r"scenario_mix\[1\]: unknown value 'debris'"):
        build(EnvConfig, {"town": "highway", "scenario_mix": ["lost_cargo", "debris"]}, "env")


def test_lost_cargo_is_collidable(cache: Path) -> None:
    env = DriveEnv({"town": "highway", "scenario": "lost_cargo", "density": "empty", "cache_dir": str(cache)})
    try:
        obs, _ = env.reset(seed=0, options={"route_index": 0})
        driver = RouteFollower(target_speed_kmh=60.0, cautious=False)
        for _ in range(1000):
            obs, _, terminated, truncated, info = env.step(driver.act(obs))
            if terminated or truncated:
                break
        assert info["episode_metrics"]["reason"] == "collision" and info["collision_kind"] == "obstacle"
    finally:
        env.close()

"""Evaluation suites: fixed, reproducible episode lists per named suite."""

from __future__ import annotations

import pytest

from drivevlm.eval.suites import (
    SCRIPTED_SCENARIOS,
    SUITE_NAMES,
    VRU_SUITES,
    SuiteError,
    get_suite,
    suite_list,
)
from drivevlm.sim.scenarios import SCENARIOS


def test_every_named_suite_builds_the_asked_number_of_episodes() -> None:
    assert {"unseen_routes", "density_empty", "density_regular", "density_dense", "unseen_towns"} <= set(
        SUITE_NAMES
    )
    assert {f"scenario_{s}" for s in SCRIPTED_SCENARIOS} <= set(SUITE_NAMES)
    for name in SUITE_NAMES:
        suite = get_suite(name, episodes=7)
        assert len(suite.episodes) == 7
        assert [e.seed for e in suite.episodes] == list(range(7))


def test_unseen_routes_cycle_over_the_ten_fixed_routes_of_the_training_town() -> None:
    suite = get_suite("unseen_routes", episodes=12)
    assert {e.town for e in suite.episodes} == {"grid"}
    assert [e.route_index for e in suite.episodes] == [*range(10), 0, 1]
    assert {e.density for e in suite.episodes} == {"regular"}
    assert suite.episodes[3].reset_options() == {
        "town": "grid", "scenario": "random", "density": "regular", "route_index": 3
    }  # fmt: skip


def test_density_and_scenario_suites() -> None:
    assert {e.density for e in get_suite("density_dense", episodes=3).episodes} == {"dense"}
    assert {e.density for e in get_suite("density_empty", episodes=3).episodes} == {"empty"}
    merge = get_suite("scenario_cyclist_merge", episodes=2)
    assert {e.town for e in merge.episodes} == {SCENARIOS["cyclist_merge"].default_town}
    assert {e.scenario for e in merge.episodes} == {"cyclist_merge"}


def test_unseen_towns_per_simulator() -> None:
    sumo = get_suite("unseen_towns", episodes=4)
    assert [e.town for e in sumo.episodes] == ["tee", "irregular", "tee", "irregular"]
    carla = get_suite("unseen_towns", simulator="carla", episodes=4)
    assert [e.town for e in carla.episodes] == ["Town01", "Town03", "Town04", "Town05"]
    # Only Town02 has fixed CARLA evaluation routes; elsewhere the seed picks the route.
    assert {e.route_index for e in carla.episodes} == {None}
    assert [e.route_index for e in get_suite("unseen_routes", "carla", 3).episodes] == [0, 1, 2]
    assert {e.town for e in get_suite("unseen_routes", "carla", 3).episodes} == {"Town02"}


def test_bad_names_are_errors_naming_the_allowed_values() -> None:
    with pytest.raises(SuiteError, match="suite: unknown value 'nope'; allowed: unseen_routes"):
        get_suite("nope")
    with pytest.raises(SuiteError, match="episodes: must be >= 1"):
        get_suite("unseen_routes", episodes=0)
    with pytest.raises(SuiteError, match="simulator"):
        get_suite("unseen_routes", simulator="gazebo")


def test_suite_lists_expand_groups_keep_order_and_name_bad_entries() -> None:
    assert suite_list("unseen_routes,unseen_towns,vru") == ("unseen_routes", "unseen_towns", *VRU_SUITES)
    assert suite_list(" scenario_slow_cyclist , vru") == VRU_SUITES[2:3] + tuple(
        s for s in VRU_SUITES if s != "scenario_slow_cyclist"
    )
    assert set(VRU_SUITES) <= set(SUITE_NAMES)
    with pytest.raises(SuiteError, match=r"suite: unknown value 'mars'; allowed: .*vru"):
        suite_list("unseen_routes,mars")

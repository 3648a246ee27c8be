"""Ground truth about what is ahead of the ego (feeds oracle presets, baselines and inspection)."""

import math

import numpy as np

from drivevlm.env import _surroundings
from drivevlm.sim.world import Actor, ActorKind, EgoState, Lane, MapGeometry, Pose, Route, WorldState

_MAP = MapGeometry(name="test:surroundings", lanes=(Lane("l", np.array([[0.0, 0.0], [100.0, 0.0]]), 3.2),))
_ROUTE = Route(waypoints=np.array([[0.0, 0.0], [100.0, 0.0]]), headings=np.zeros(2))


def _state(*actors: Actor, yaw: float = 0.0) -> WorldState:
    ego = EgoState(pose=Pose(0.0, 0.0, yaw), speed=5.0, steer=0.0, throttle=0.0)
    return WorldState(time=0.0, step=0, ego=ego, actors=actors, map=_MAP, route=_ROUTE)


def _car(name: str, x: float, y: float) -> Actor:
    return Actor(name, ActorKind.CAR, Pose(x, y, 0.0), 5.0, 4.5, 1.9, 1.5)


def _person(name: str, x: float, y: float) -> Actor:
    return Actor(name, ActorKind.PEDESTRIAN, Pose(x, y, 0.0), 1.0, 0.5, 0.5, 1.8)


def test_nothing_around_is_infinitely_far() -> None:
    around, overtaken = _surroundings(_state(), frozenset())
    assert math.isinf(around.nearest_vru_ahead_m) and math.isinf(around.front_obstacle_m) and overtaken == 0


def test_nearest_vru_vehicle_and_front_obstacle() -> None:
    state = _state(
        _person("p", 8.0, 3.0), _car("c", 20.0, 0.5), _car("side", 5.0, 5.0), _person("back", -3.0, 0.0)
    )
    around, _ = _surroundings(state, frozenset())
    assert around.nearest_vru_ahead_m == math.hypot(8.0, 3.0)
    assert around.nearest_vehicle_ahead_m == math.hypot(20.0, 0.5)
    # The pedestrian 3 m to the side is not in the ego's swept width; the car ahead is.
    assert around.front_obstacle_m == 20.0
    assert around.ahead_car_ids == frozenset({"c", "side"})


def test_ahead_is_measured_in_the_ego_frame() -> None:
    # Ego faces north: a person 10 m north is ahead, one 10 m east is to the right.
    state = _state(_person("north", 0.0, 10.0), _person("east", 10.0, 0.0), yaw=math.pi / 2)
    around, _ = _surroundings(state, frozenset())
    assert abs(around.nearest_vru_ahead_m - 10.0) < 1e-9


def test_overtaken_cars_are_counted_once_they_fall_behind() -> None:
    before, _ = _surroundings(_state(_car("a", 6.0, 3.5), _car("b", 30.0, 0.0)), frozenset())
    _, overtaken = _surroundings(_state(_car("a", -1.0, 3.5), _car("b", 25.0, 0.0)), before.ahead_car_ids)
    assert overtaken == 1


def test_front_closing_speed_is_the_ego_speed_minus_the_obstacles_along_the_heading() -> None:
    # Ego at 5 m/s; the car ahead drives the same way at 5 m/s: no closing; a stopped one closes at 18 km/h.
    assert _surroundings(_state(_car("same", 20.0, 0.0)), frozenset())[0].front_closing_kmh == 0.0
    stopped = Actor("stopped", ActorKind.CAR, Pose(15.0, 0.0, 0.0), 0.0, 4.5, 1.9, 1.5)
    oncoming = Actor("oncoming", ActorKind.CAR, Pose(30.0, 0.0, math.pi), 5.0, 4.5, 1.9, 1.5)
    around, _ = _surroundings(_state(oncoming, stopped), frozenset())
    assert around.front_obstacle_m == 15.0 and abs(around.front_closing_kmh - 18.0) < 1e-9
    assert abs(_surroundings(_state(oncoming), frozenset())[0].front_closing_kmh - 36.0) < 1e-9
    assert _surroundings(_state(), frozenset())[0].front_closing_kmh == 0.0

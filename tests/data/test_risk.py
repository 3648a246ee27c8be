import math

import numpy as np
import pytest

from drivevlm.data.risk import (
    CLEAR_DESCRIPTION,
    PATH_HALF_WIDTH_M,
    RISK_CATEGORIES,
    category_of_description,
    describe_risk,
    in_or_entering_path,
)
from drivevlm.sim.world import Actor, ActorKind, EgoState, Lane, MapGeometry, Pose, Route, WorldState

_MAP = MapGeometry(name="test:risk", lanes=(Lane("l0", np.array([[0.0, 0.0], [100.0, 0.0]]), 3.2),))
_ROUTE = Route(waypoints=np.array([[0.0, 0.0], [100.0, 0.0]]), headings=np.zeros(2))


def _state(*actors: Actor) -> WorldState:
    ego = EgoState(pose=Pose(0.0, 0.0, 0.0), speed=5.0, steer=0.0, throttle=0.0)
    return WorldState(time=0.0, step=0, ego=ego, actors=actors, map=_MAP, route=_ROUTE)


def _actor(
    kind: ActorKind, x: float, y: float, yaw: float = 0.0, speed: float = 1.0, name: str = "a"
) -> Actor:
    size = {ActorKind.CAR: (4.5, 1.9, 1.5), ActorKind.PEDESTRIAN: (0.5, 0.5, 1.8)}.get(kind, (1.8, 0.6, 1.7))
    return Actor(name, kind, Pose(x, y, yaw), speed, *size)


def test_empty_road_is_clear() -> None:
    risk = describe_risk(_state())
    assert risk.category == "none" and risk.description == CLEAR_DESCRIPTION


def test_crossing_pedestrian_close_ahead() -> None:
    risk = describe_risk(_state(_actor(ActorKind.PEDESTRIAN, 8.0, 2.0, yaw=math.pi / 2, speed=1.4)))
    assert risk.category == "pedestrian_near"
    assert risk.description == "A pedestrian is crossing the road close ahead."
    assert category_of_description(risk.description) == "pedestrian_near"


def test_motorway_hazards_are_obstacles_ranked_after_people_and_before_cars() -> None:
    debris = _actor(ActorKind.OBSTACLE, 10.0, 0.0, speed=0.0, name="debris")
    triangle = _actor(ActorKind.WARNING_TRIANGLE, 30.0, 0.0, speed=0.0, name="triangle")
    car = _actor(ActorKind.CAR, 8.0, 0.0, speed=0.0, name="car")
    person = _actor(ActorKind.PEDESTRIAN, 12.0, 1.0, speed=0.0, name="person")
    risk = describe_risk(_state(debris, car))
    assert (risk.category, risk.actor_id) == ("obstacle_near", "debris")
    assert risk.description == "Debris is lying on the road close ahead."
    assert category_of_description(risk.description) == "obstacle_near"
    assert describe_risk(_state(debris, person)).actor_id == "person"
    far = describe_risk(_state(triangle))
    assert far.description == "A warning triangle stands on the road in the distance."
    assert category_of_description(far.description) == far.category == "obstacle_far"


def test_path_labels_count_only_actors_in_or_entering_the_path() -> None:
    # On the right sidewalk (4 m aside) walking along the road: visible, but no risk to the path.
    along = _actor(ActorKind.PEDESTRIAN, 8.0, -4.0, yaw=0.0, speed=1.4, name="along")
    # 4 m aside, walking towards the path at 1.4 m/s: 1.5 m to go, reached in about 1.1 s (< 2 s).
    entering = _actor(ActorKind.PEDESTRIAN, 10.0, -4.0, yaw=math.pi / 2, speed=1.4, name="entering")
    # 8 m aside walking towards it: 5.5 m to go, about 3.9 s: not yet.
    later = _actor(ActorKind.PEDESTRIAN, 10.0, 8.0, yaw=-math.pi / 2, speed=1.4, name="later")
    # In the lane, standing.
    inside = _actor(ActorKind.BICYCLE, 20.0, 1.0, speed=0.0, name="inside")
    state = _state(along, entering, later, inside)
    assert in_or_entering_path(state).tolist() == [False, True, False, True]
    assert describe_risk(_state(along), path_half_width_m=PATH_HALF_WIDTH_M).description == CLEAR_DESCRIPTION
    assert describe_risk(_state(along)).category == "pedestrian_near"
    risk = describe_risk(state, path_half_width_m=PATH_HALF_WIDTH_M)
    assert risk.actor_id == "entering" and risk.category == "pedestrian_near"
    nearest_in_path = describe_risk(_state(along, later, inside), path_half_width_m=PATH_HALF_WIDTH_M)
    assert nearest_in_path.actor_id == "inside"


def test_far_cyclist_and_behind_or_outside_view_are_ignored() -> None:
    behind = _actor(ActorKind.PEDESTRIAN, -5.0, 0.0, name="behind")
    outside = _actor(ActorKind.PEDESTRIAN, 3.0, 10.0, name="outside")
    cyclist = _actor(ActorKind.BICYCLE, 25.0, -1.0, speed=4.0, name="bike")
    risk = describe_risk(_state(behind, outside, cyclist))
    assert risk.category == "cyclist_far" and risk.actor_id == "bike"
    assert risk.distance_m == pytest.approx(math.hypot(25.0, 1.0))


def test_near_band_wins_and_vulnerable_users_outrank_cars() -> None:
    car_near = _actor(ActorKind.CAR, 10.0, 0.0, name="car")
    ped_near = _actor(ActorKind.PEDESTRIAN, 12.0, 3.0, speed=0.0, name="ped")
    ped_far = _actor(ActorKind.PEDESTRIAN, 30.0, 0.0, name="far")
    assert describe_risk(_state(car_near, ped_near, ped_far)).actor_id == "ped"
    assert describe_risk(_state(car_near, ped_far)).actor_id == "car"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("A cyclist is riding towards the car close ahead.", "cyclist_near"),
        (
            "A pedestrian is stepping into the roadway; I must slow down and prepare to stop.",
            "pedestrian_near",
        ),
        ("There is a truck far down the road.", "vehicle_far"),
        ("The road ahead is clear with no obstacles.", "none"),
        ("I cannot help with that.", "none"),
        ("A motorcyclist is in the distance.", "cyclist_far"),
        ("Lost cargo blocks the right lane just ahead.", "obstacle_near"),
        ("A warning triangle stands on the road in the distance.", "obstacle_far"),
    ],
)
def test_category_of_free_text(text: str, category: str) -> None:
    assert category in RISK_CATEGORIES
    assert category_of_description(text) == category

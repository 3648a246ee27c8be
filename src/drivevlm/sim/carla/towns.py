"""CARLA towns, how our town names map onto them, and the paper's fixed Town02 routes.

Routes are pairs of indices into `carla.Map.get_spawn_points()` of the stock towns (as in VLM-RL's
`carla_route_env.py`, which the DriveVLM-RL paper evaluates with).
"""

from __future__ import annotations

from drivevlm.sim.scenarios import CARLA_TOWNS

__all__ = [
    "CARLA_TOWNS",
    "EVAL_ROUTES",
    "INTERSECTION_ROUTES",
    "TRAINING_TOWN",
    "UNSEEN_TOWNS",
    "carla_town_for",
]
TRAINING_TOWN = "Town02"
# Held out from training, used for the zero-shot cross-town tests.
UNSEEN_TOWNS: tuple[str, ...] = ("Town01", "Town03", "Town04", "Town05")

# Our embedded towns to the CARLA town that plays the same part: the training grid is Town02 (training);
# the T-junction town is Town01 (mostly T-junctions); the irregular town is Town03 (odd angles, roundabout).
OUR_TOWN_TO_CARLA: dict[str, str] = {"grid": "Town02", "tee": "Town01", "irregular": "Town03"}

# The paper's 10 Town02 test routes (spawn-point index pairs, start -> goal).
EVAL_ROUTES: dict[str, tuple[tuple[int, int], ...]] = {
    "Town02": (
        (48, 21),
        (0, 72),
        (28, 83),
        (61, 39),
        (27, 14),
        (6, 67),
        (61, 49),
        (37, 64),
        (33, 80),
        (12, 30),
    ),
}

# VLM-RL's 12 Town02 training routes through intersections (every other training episode uses one).
INTERSECTION_ROUTES: dict[str, tuple[tuple[int, int], ...]] = {
    "Town02": (
        (57, 81),
        (70, 11),
        (70, 12),
        (78, 68),
        (74, 41),
        (42, 73),
        (71, 62),
        (74, 40),
        (71, 77),
        (6, 12),
        (65, 52),
        (63, 80),
    ),
}


def carla_town_for(town: str) -> str:
    """A CARLA town name for `town`: one of CARLA_TOWNS as is, or one of our town names mapped."""
    if town in CARLA_TOWNS:
        return town
    if town in OUR_TOWN_TO_CARLA:
        return OUR_TOWN_TO_CARLA[town]
    allowed = ", ".join([*CARLA_TOWNS, *sorted(OUR_TOWN_TO_CARLA)])
    raise ValueError(f"town: unknown value {town!r} for the CARLA backend; allowed: {allowed}")

"""Named scenarios, towns and traffic densities shared by every simulator backend.

A scenario says *what* should happen (a pedestrian crossing ahead, a cyclist merging...);
each backend decides *how* to stage it in its own world.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Density(str, Enum):
    """Background traffic as in the paper: vehicles spawned around the ego."""

    EMPTY = "empty"
    REGULAR = "regular"
    DENSE = "dense"

    @property
    def vehicles(self) -> int:
        return {"empty": 0, "regular": 20, "dense": 40}[self.value]

    @property
    def pedestrians(self) -> int:
        return {"empty": 0, "regular": 30, "dense": 60}[self.value]

    @property
    def bicycles(self) -> int:
        return {"empty": 0, "regular": 6, "dense": 12}[self.value]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    # Vulnerable road users take part (the dynamic pathway's gate should open).
    involves_vru: bool
    # The town the scenario is staged in unless the user names another; None: any town.
    default_town: str | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("random", "Random route through intersections with background traffic.", involves_vru=True),
        Scenario(
            "pedestrian_crossing",
            "A pedestrian walks across a crosswalk ahead of the ego.",
            involves_vru=True,
        ),
        Scenario(
            "occluded_pedestrian",
            "A pedestrian steps out mid-block from behind a parked vehicle.",
            involves_vru=True,
        ),
        Scenario("slow_cyclist", "A slow cyclist rides ahead in the ego lane.", involves_vru=True),
        Scenario(
            "cyclist_merge",
            "A cyclist merges from a side road at a T-junction in front of the ego.",
            involves_vru=True,
            default_town="tee",
        ),
        Scenario(
            "oncoming_cyclist",
            "The ego lane is blocked by a parked vehicle while a cyclist comes the other way.",
            involves_vru=True,
        ),
        Scenario(
            "car_following",
            "Follow a lead car through signalised intersections; no vulnerable road users.",
            involves_vru=False,
        ),
    )
}


@dataclass(frozen=True)
class Town:
    name: str
    description: str
    # Held out from training: used only by evaluation suites (cross-town generalisation).
    unseen: bool


TOWNS: dict[str, Town] = {
    t.name: t
    for t in (
        Town("grid", "3 x 3 signalised grid, two lanes each way, sidewalks and crosswalks.", unseen=False),
        Town("tee", "A main street with T-junctions and side roads.", unseen=True),
        Town("irregular", "An irregular spider-web network with odd angles.", unseen=True),
    )
}

TRAINING_TOWN = "grid"

# CARLA's stock towns (the paper trains on Town02). The CARLA backend also accepts our town names.
CARLA_TOWNS: tuple[str, ...] = ("Town01", "Town02", "Town03", "Town04", "Town05")
SIMULATOR_TOWNS: dict[str, tuple[str, ...]] = {"sumo": tuple(TOWNS), "carla": (*TOWNS, *CARLA_TOWNS)}


def check_choice(field: str, value: str, allowed: dict[str, object] | list[str]) -> str:
    """Raise a ValueError naming the field and the allowed values when `value` is not one of them."""
    names = sorted(allowed)
    if value not in names:
        raise ValueError(f"{field}: unknown value {value!r}; allowed: {', '.join(names)}")
    return value

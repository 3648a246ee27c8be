"""Named scenarios, towns and traffic densities shared by every simulator backend.

A scenario says *what* should happen (a pedestrian crossing ahead, a cyclist merging...);
each backend decides *how* to stage it in its own world.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path


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

    @property
    def highway(self) -> bool:
        """A motorway hazard (the paper's open problem), staged on a highway town, not an urban scene."""
        return self.default_town is not None and TOWNS[self.default_town].kind == "highway"


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
        Scenario(
            "broken_down_vehicle",
            "A broken-down car stands in the ego's lane of the motorway ahead.",
            involves_vru=False,
            default_town="highway",
        ),
        Scenario(
            "broken_down_vehicle_triangle",
            "A broken-down car stands in the ego's lane of the motorway, a warning triangle 50 m before it.",
            involves_vru=False,
            default_town="highway",
        ),
        Scenario(
            "lost_cargo",
            "A crate of lost cargo lies in the ego's lane of the motorway ahead.",
            involves_vru=False,
            default_town="highway",
        ),
        Scenario(
            "slow_truck",
            "A truck drives at 40 km/h in the ego's lane of the motorway ahead.",
            involves_vru=False,
            default_town="highway",
        ),
        Scenario(
            "cut_in",
            "A car in the next lane cuts into the ego's lane just ahead of it.",
            involves_vru=False,
            default_town="highway",
        ),
        Scenario(
            "ramp_merge",
            "A car joins the motorway from an on-ramp just as the ego passes.",
            involves_vru=False,
            default_town="highway",
        ),
        Scenario(
            "hard_braking",
            "The car two ahead in the ego's lane brakes hard; the car in front of the ego brakes after it.",
            involves_vru=False,
            default_town="highway",
        ),
        Scenario(
            "person_on_shoulder",
            "A person stands on the hard shoulder of the motorway, a metre from the lanes.",
            involves_vru=True,
            default_town="highway",
        ),
    )
}


@dataclass(frozen=True)
class Staging:
    """Where a scenario's actors go and when they move, in metres along the ego's route: the one spec the
    SUMO and CARLA backends both stage from (how each finds a crosswalk, a kerb or a side road is its own).

    Offsets across the road are measured from the edge of the ego's lane, positive outwards (to the right,
    onto the kerb side); `lane_offset_m` is from the lane centre, positive to the left.
    """

    # The event's place: the earliest route position it is staged at.
    at_m: float
    # The scripted actor sets off when the ego is this far before the event's place.
    lead_m: float
    # Its speed once it moves, m/s.
    speed_mps: float
    # A parked vehicle (or a warning triangle): how far before the event's place, and how far out from the
    # lane edge.
    parked_back_m: float = 0.0
    parked_out_m: float = 0.0
    # A walker: how far beyond the event's place, how far out from the lane edge it starts, and how far
    # past the far lane edge it walks.
    walker_ahead_m: float = 0.0
    walker_out_m: float = 0.0
    walker_across_m: float = 0.0
    # A rider in the ego lane (or a warning triangle): its offset from the lane centre.
    lane_offset_m: float = 0.0
    # An oncoming rider: how far beyond the event's place it starts, in the opposite lane.
    oncoming_ahead_m: float = 0.0
    # A lead car: how far along the ego's route it starts (then it drives at `speed_mps` at most).
    lead_car_m: float = 0.0
    # A car that changes into the ego's lane: how far beyond its start it moves over, and over what length.
    change_after_m: float = 0.0
    change_over_m: float = 0.0
    # A car that brakes to a stop: after how far, how hard, and how far behind the car ahead it stops.
    brake_after_m: float = 0.0
    decel_mps2: float = 0.0
    stop_gap_m: float = 0.0


STAGING: dict[str, Staging] = {
    "pedestrian_crossing": Staging(
        at_m=35.0, lead_m=22.0, speed_mps=1.4, walker_out_m=1.0, walker_across_m=1.0
    ),
    "occluded_pedestrian": Staging(
        at_m=45.0,
        lead_m=18.0,
        speed_mps=1.6,
        parked_back_m=3.0,
        parked_out_m=0.7,
        walker_ahead_m=0.3,
        walker_out_m=2.2,
        walker_across_m=4.0,
    ),
    "slow_cyclist": Staging(at_m=30.0, lead_m=25.0, speed_mps=4.0, lane_offset_m=-0.6),
    "cyclist_merge": Staging(at_m=50.0, lead_m=35.0, speed_mps=4.5),
    "oncoming_cyclist": Staging(at_m=45.0, lead_m=30.0, speed_mps=5.0, oncoming_ahead_m=25.0),
    # The lead car drives in traffic; the event is the first signalised junction at least this far on.
    "car_following": Staging(at_m=30.0, lead_m=0.0, speed_mps=9.0, lead_car_m=28.0),
    # Motorway hazards: far enough ahead for the ego to be at speed when it meets them.
    "broken_down_vehicle": Staging(at_m=200.0, lead_m=0.0, speed_mps=0.0),
    # The triangle stands 50 m before the car, near the right edge of the ego's lane (a cue, not a block).
    "broken_down_vehicle_triangle": Staging(
        at_m=200.0, lead_m=0.0, speed_mps=0.0, parked_back_m=50.0, lane_offset_m=-1.2
    ),
    "lost_cargo": Staging(at_m=200.0, lead_m=0.0, speed_mps=0.0),
    "slow_truck": Staging(at_m=80.0, lead_m=0.0, speed_mps=11.1),
    # The car starts 40 m ahead in the next lane at 12 m/s and moves over into the ego's lane 120 m on.
    "cut_in": Staging(at_m=40.0, lead_m=0.0, speed_mps=12.0, change_after_m=120.0, change_over_m=25.0),
    "person_on_shoulder": Staging(at_m=150.0, lead_m=0.0, speed_mps=0.0, walker_out_m=1.0),
    # Cars 30 and 60 m ahead at 80 km/h; the far one brakes at 8 m/s^2 after 150 m, the near one at 6 to a
    # stop 8 m behind it.
    "hard_braking": Staging(
        at_m=30.0,
        lead_m=0.0,
        speed_mps=22.0,
        lead_car_m=30.0,
        brake_after_m=150.0,
        decel_mps2=8.0,
        stop_gap_m=8.0,
    ),
    # The car sets off 80 m up the ramp as the ego comes within 90 m of the junction: they meet there.
    "ramp_merge": Staging(at_m=100.0, lead_m=90.0, speed_mps=22.0),
}


@dataclass(frozen=True)
class Town:
    name: str
    description: str
    # Held out from training: used only by evaluation suites (cross-town generalisation).
    unseen: bool
    # urban: streets with sidewalks, crossings, signals, pedestrians and cyclists, routes that turn;
    # highway: a motorway (no people or bicycles on it, routes that follow the carriageway).
    kind: str = "urban"
    # The speed the ego is asked to hold on a clear road there, and the speed that ends a training
    # episode (env.target_speed_kmh, env.max_speed_kmh left unset).
    target_speed_kmh: float = 25.0
    max_speed_kmh: float = 35.0


TOWNS: dict[str, Town] = {
    t.name: t
    for t in (
        Town("grid", "3 x 3 signalised grid, two lanes each way, sidewalks and crosswalks.", unseen=False),
        Town("tee", "A main street with T-junctions and side roads.", unseen=True),
        Town("irregular", "An irregular spider-web network with odd angles.", unseen=True),
        Town(
            "highway",
            "A motorway, three lanes each way at 120 km/h, with an on- and an off-ramp per direction.",
            unseen=False,
            kind="highway",
            target_speed_kmh=100.0,
            max_speed_kmh=130.0,
        ),
    )
}
# What a town brought as a network file is taken to be.
URBAN_DEFAULTS = Town("file", "A SUMO network or OpenStreetMap extract.", unseen=False)
# The towns of the urban method and its data: training, unseen-town suites, data sets.
URBAN_TOWNS: tuple[str, ...] = tuple(name for name, town in TOWNS.items() if town.kind == "urban")
# The scenarios of the urban method and its data (data sets, the small models' windows).
URBAN_SCENARIOS: tuple[str, ...] = tuple(name for name, s in SCENARIOS.items() if not s.highway)

TRAINING_TOWN = "grid"

# CARLA's stock towns (the paper trains on Town02). The CARLA backend also accepts our town names.
CARLA_TOWNS: tuple[str, ...] = ("Town01", "Town02", "Town03", "Town04", "Town05")
SIMULATOR_TOWNS: dict[str, tuple[str, ...]] = {"sumo": tuple(TOWNS), "carla": (*URBAN_TOWNS, *CARLA_TOWNS)}


# A town may also be a file: a SUMO network, or an OpenStreetMap extract converted with netconvert.
NETWORK_SUFFIXES = (".net.xml", ".net.xml.gz")
OSM_SUFFIXES = (".osm", ".osm.xml", ".osm.gz")


def town_default(town: str, name: str) -> float:
    """A per-town default (`target_speed_kmh`, `max_speed_kmh`); a network file is taken for an urban town."""
    return float(getattr(TOWNS.get(town, URBAN_DEFAULTS), name))


def town_speed_scale(town: str) -> float:
    """The town's target speed over the training town's: how much faster scripted drivers go there."""
    return town_default(town, "target_speed_kmh") / town_default(TRAINING_TOWN, "target_speed_kmh")


def is_town_file(value: str) -> bool:
    """Whether a town value names a network file (by its suffix) rather than a generated town."""
    return str(value).lower().endswith(NETWORK_SUFFIXES + OSM_SUFFIXES)


def check_town(value: str, simulator: str = "sumo", field: str = "town") -> str:
    """A generated town's name, or (embedded simulator) the path of an existing network or OSM file, made
    absolute so that a run folder's config still finds it from another working directory."""
    if simulator == "sumo" and is_town_file(value):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError(f"{field}: no such network file {value!r}")
        return str(path.resolve())
    allowed = sorted(SIMULATOR_TOWNS.get(simulator, ()))
    if value not in allowed:
        files = ""
        if simulator == "sumo":
            suffixes = ", ".join(NETWORK_SUFFIXES + OSM_SUFFIXES)
            files = f", or the path of a SUMO network or OpenStreetMap file ({suffixes})"
        raise ValueError(f"{field}: unknown value {value!r}; allowed: {', '.join(allowed)}{files}")
    return value


def check_choice(field: str, value: str, allowed: dict[str, object] | list[str]) -> str:
    """Raise a ValueError naming the field and the allowed values when `value` is not one of them."""
    names = sorted(allowed)
    if value not in names:
        raise ValueError(f"{field}: unknown value {value!r}; allowed: {', '.join(names)}")
    return value

"""Named evaluation suites (paper-spec §5): which episodes a trained policy is tested on.

A suite is a fixed list of episodes (town, scenario, density, evaluation route, seed), so two policies
evaluated on the same suite drive exactly the same routes with the same traffic seeds.

- `unseen_routes`: the training town, its fixed evaluation routes, regular traffic (Table 2).
- `density_empty` / `density_regular` / `density_dense`: the same routes at 0 / 20 / 40 vehicles.
- `unseen_towns`: towns never seen in training (embedded: tee, irregular; CARLA: Town01/03/04/05).
- `scenario_<name>`: one suite per scripted safety-critical scenario, staged on its evaluation routes
  (the motorway hazards on the highway town; `highway_hazards` names them all).
- `highway`: the highway town's evaluation routes, regular traffic (embedded simulator only).

Every suite drives with the training-only terminations off (`EnvConfig.training=False`).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivevlm.sim.scenarios import CARLA_TOWNS, SCENARIOS, TOWNS, TRAINING_TOWN, Density

DEFAULT_EPISODES = 10
# The embedded backend has this many fixed evaluation routes per (town, scenario) (sim/sumo/backend.py).
SUMO_EVAL_ROUTES = 10
# CARLA's fixed evaluation routes per town, as in sim/carla/towns.py EVAL_ROUTES (the paper's 10 Town02
# routes). Repeated here because importing the CARLA package needs the CARLA client installed.
CARLA_EVAL_ROUTES: dict[str, int] = {"Town02": 10}
CARLA_TRAINING_TOWN = "Town02"
CARLA_UNSEEN_TOWNS: tuple[str, ...] = tuple(t for t in CARLA_TOWNS if t != CARLA_TRAINING_TOWN)
SUMO_UNSEEN_TOWNS: tuple[str, ...] = tuple(name for name, town in TOWNS.items() if town.unseen)

SCRIPTED_SCENARIOS: tuple[str, ...] = tuple(name for name in SCENARIOS if name != "random")
SUITE_NAMES: tuple[str, ...] = (
    "unseen_routes",
    *(f"density_{d.value}" for d in Density),
    "unseen_towns",
    *(f"scenario_{name}" for name in SCRIPTED_SCENARIOS),
    "highway",
)

# The scenario suites where a vulnerable road user is at risk: where the dynamic pathway should matter.
VRU_SUITES: tuple[str, ...] = (
    "scenario_pedestrian_crossing",
    "scenario_occluded_pedestrian",
    "scenario_slow_cyclist",
    "scenario_cyclist_merge",
    "scenario_oncoming_cyclist",
)
# The motorway's long-tail hazards (the paper's open problem), each staged on the highway town.
HIGHWAY_HAZARD_SUITES: tuple[str, ...] = tuple(
    f"scenario_{name}" for name in SCRIPTED_SCENARIOS if SCENARIOS[name].highway
)
# Names that stand for several suites where a list of suites is asked for.
SUITE_GROUPS: dict[str, tuple[str, ...]] = {"vru": VRU_SUITES, "highway_hazards": HIGHWAY_HAZARD_SUITES}


class SuiteError(ValueError):
    """An unknown suite or an invalid suite parameter; the message names it and the allowed values."""


@dataclass(frozen=True)
class SuiteEpisode:
    town: str
    scenario: str
    density: str
    # A fixed evaluation route of the town; None where the backend has none (a seeded random route).
    route_index: int | None
    seed: int

    def reset_options(self) -> dict[str, object]:
        options: dict[str, object] = {"town": self.town, "scenario": self.scenario, "density": self.density}
        if self.route_index is not None:
            options["route_index"] = self.route_index
        return options

    def to_dict(self) -> dict[str, object]:
        return {
            "town": self.town,
            "scenario": self.scenario,
            "density": self.density,
            "route_index": self.route_index,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    simulator: str
    episodes: tuple[SuiteEpisode, ...]


def suite_list(text: str) -> tuple[str, ...]:
    """Comma-separated suite names and groups (`vru`) as suite names, in order, each once."""
    names: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        for name in SUITE_GROUPS.get(item, (item,)):
            if name not in SUITE_NAMES:
                allowed = ", ".join((*SUITE_NAMES, *SUITE_GROUPS))
                raise SuiteError(f"suite: unknown value {name!r}; allowed: {allowed}")
            if name not in names:
                names.append(name)
    return tuple(names)


def _eval_routes(simulator: str, town: str) -> int:
    if simulator == "sumo":
        return SUMO_EVAL_ROUTES
    return CARLA_EVAL_ROUTES.get(town, 0)


def _episodes(
    simulator: str, towns: tuple[str, ...], scenario: str, density: str, count: int
) -> tuple[SuiteEpisode, ...]:
    """`count` episodes cycling over the towns, then over each town's evaluation routes."""
    out = []
    for i in range(count):
        town = towns[i % len(towns)]
        routes = _eval_routes(simulator, town)
        route = (i // len(towns)) % routes if routes else None
        out.append(SuiteEpisode(town, scenario, density, route, seed=i))
    return tuple(out)


def _training_town(simulator: str, training_town: str | None) -> str:
    if training_town is not None:
        return training_town
    return CARLA_TRAINING_TOWN if simulator == "carla" else TRAINING_TOWN


def get_suite(
    name: str, simulator: str = "sumo", episodes: int = DEFAULT_EPISODES, training_town: str | None = None
) -> Suite:
    """Suite `name` with `episodes` episodes for `simulator`; `training_town` defaults to grid / Town02."""
    if name not in SUITE_NAMES:
        raise SuiteError(f"suite: unknown value {name!r}; allowed: {', '.join(SUITE_NAMES)}")
    if simulator not in ("sumo", "carla"):
        raise SuiteError(f"simulator: unknown value {simulator!r}; allowed: carla, sumo")
    if episodes < 1:
        raise SuiteError(f"episodes: must be >= 1, got {episodes}")
    town = _training_town(simulator, training_town)
    regular = Density.REGULAR.value
    if name == "unseen_routes":
        eps = _episodes(simulator, (town,), "random", regular, episodes)
        text = f"unseen evaluation routes in the training town {town}, regular traffic"
    elif name.startswith("density_"):
        density = name.removeprefix("density_")
        eps = _episodes(simulator, (town,), "random", density, episodes)
        text = f"evaluation routes in {town} with {density} traffic ({Density(density).vehicles} vehicles)"
    elif name == "highway":
        if simulator != "sumo":
            raise SuiteError("suite highway: the motorway town exists in the embedded simulator only")
        eps = _episodes(simulator, ("highway",), "random", regular, episodes)
        text = "the highway town's evaluation routes, regular traffic at up to 120 km/h"
    elif name == "unseen_towns":
        towns = CARLA_UNSEEN_TOWNS if simulator == "carla" else SUMO_UNSEEN_TOWNS
        eps = _episodes(simulator, towns, "random", regular, episodes)
        text = f"zero-shot cross-town generalisation: {', '.join(towns)}"
    else:
        scenario = name.removeprefix("scenario_")
        staged = SCENARIOS[scenario].default_town or town
        eps = _episodes(simulator, (staged,), scenario, regular, episodes)
        text = f"{SCENARIOS[scenario].description} (town {staged})"
    return Suite(name, text, simulator, eps)

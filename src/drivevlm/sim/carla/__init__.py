"""The CARLA backend (optional extra `carla`): a CARLA server drives the world, our code reads it.

Importing this package needs the CARLA Python client; without it the import fails with an error that
says how to install it, so `make_backend("carla")` tells the user what to do instead of a bare
ModuleNotFoundError.
"""

from __future__ import annotations

try:
    import carla  # noqa: F401
except ImportError as error:
    raise ImportError(
        "the CARLA backend needs the CARLA Python client: pip install drivevlm[carla] "
        "(or `pip install carla==<your server's version>`; never two carla client packages at once)"
    ) from error

from drivevlm.sim.base import register_backend
from drivevlm.sim.carla.backend import CarlaBackend
from drivevlm.sim.carla.map import lane_graph, map_geometry
from drivevlm.sim.carla.route_planner import RoutePlanner
from drivevlm.sim.carla.towns import CARLA_TOWNS, EVAL_ROUTES, UNSEEN_TOWNS, carla_town_for

register_backend("carla")(CarlaBackend)

__all__ = [
    "CARLA_TOWNS",
    "EVAL_ROUTES",
    "UNSEEN_TOWNS",
    "CarlaBackend",
    "RoutePlanner",
    "carla_town_for",
    "lane_graph",
    "map_geometry",
]

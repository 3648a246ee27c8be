"""The embedded default simulator: SUMO via libsumo, with our own ego dynamics and scripted events."""

from __future__ import annotations

from drivevlm.sim.base import register_backend
from drivevlm.sim.sumo.backend import SumoBackend, evaluation_routes
from drivevlm.sim.sumo.towns import export_opendrive, town_network

register_backend("sumo")(SumoBackend)

__all__ = ["SumoBackend", "evaluation_routes", "export_opendrive", "town_network"]

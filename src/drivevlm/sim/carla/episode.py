"""What one CARLA episode holds: its route, the actors this backend spawned, and its scripted events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivevlm.sim.base import EpisodeSpec
from drivevlm.sim.world import MapGeometry, Route


@dataclass
class ScriptedEvent:
    """A walker that steps into the road once the ego is far enough along its route."""

    name: str
    actor: Any
    trigger_arc: float
    direction: tuple[float, float]
    speed: float
    fired: bool = False


@dataclass
class CarlaEpisode:
    spec: EpisodeSpec
    town: str
    geometry: MapGeometry
    route: Route
    route_arc: np.ndarray
    ego: Any
    sensors: list[Any] = field(default_factory=list)
    controllers: list[Any] = field(default_factory=list)
    others: list[Any] = field(default_factory=list)
    scripted_ids: set[int] = field(default_factory=set)
    parked_ids: set[int] = field(default_factory=set)
    events: list[ScriptedEvent] = field(default_factory=list)
    stop_lines: dict[int, tuple[float, float]] = field(default_factory=dict)
    step: int = 0
    steer: float = 0.0
    throttle: float = 0.0

    def track(self, actor: Any, *, scripted: bool = False, parked: bool = False) -> Any:
        """Remember a spawned actor (destroyed with the episode), flagged scripted or parked."""
        self.others.append(actor)
        if scripted:
            self.scripted_ids.add(int(actor.id))
        if parked:
            self.parked_ids.add(int(actor.id))
        return actor

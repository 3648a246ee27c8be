"""The world as every simulator backend reports it, and as every renderer and the env read it.

Conventions (all backends convert to these):
- metres, seconds, radians; world frame x east, y north, yaw counter-clockwise from +x;
- speeds in m/s (the env converts to km/h where the paper's formulas want km/h);
- a pose is the centre of the actor's bounding box on the ground.
This module knows nothing of rewards, models or a particular simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class ActorKind(str, Enum):
    CAR = "car"
    BICYCLE = "bicycle"
    MOTORCYCLE = "motorcycle"
    PEDESTRIAN = "pedestrian"
    # Motorway hazards that are not road users: debris or lost cargo, and a warning triangle.
    OBSTACLE = "obstacle"
    WARNING_TRIANGLE = "warning_triangle"

    @property
    def is_vulnerable(self) -> bool:
        """Pedestrians and riders: the classes that open the dynamic pathway's gate."""
        return self in (ActorKind.PEDESTRIAN, ActorKind.BICYCLE, ActorKind.MOTORCYCLE)


@dataclass(frozen=True, slots=True)
class Pose:
    x: float
    y: float
    yaw: float


@dataclass(frozen=True, slots=True)
class Control:
    """The policy's action: steer and throttle/brake in [-1, 1]; negative throttle brakes."""

    steer: float
    throttle: float


@dataclass(frozen=True, slots=True)
class EgoState:
    pose: Pose
    speed: float
    steer: float
    throttle: float
    length: float = 4.6
    width: float = 1.9
    height: float = 1.5


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    kind: ActorKind
    pose: Pose
    speed: float
    length: float
    width: float
    height: float
    # True for actors placed by a scripted safety-critical event (useful ground truth for inspection).
    scripted: bool = False
    # A parked or stopped obstacle: still collidable, drawn like any other actor of its kind.
    parked: bool = False

    @property
    def velocity(self) -> tuple[float, float]:
        return (self.speed * float(np.cos(self.pose.yaw)), self.speed * float(np.sin(self.pose.yaw)))


class LaneKind(str, Enum):
    DRIVING = "driving"
    BIKE = "bike"


@dataclass(frozen=True, slots=True)
class Lane:
    """One lane: its centre line (N x 2 world points, in driving direction) and width."""

    id: str
    centerline: np.ndarray
    width: float
    kind: LaneKind = LaneKind.DRIVING
    # Lanes of one road edge share a road id; the right-most lane has index 0 (SUMO's convention).
    road_id: str = ""
    index: int = 0


@dataclass(frozen=True, slots=True)
class Strip:
    """A walkable or markable band: a centre line with a width (sidewalks, crossings)."""

    id: str
    centerline: np.ndarray
    width: float


@dataclass(frozen=True, slots=True)
class TrafficLight:
    """A signal head at a stop line: `state` is one of 'r', 'y', 'g'."""

    id: str
    position: tuple[float, float]
    state: str


@dataclass(frozen=True, eq=False)
class MapGeometry:
    """Static map geometry. Renderers cache their static layers per `name`, so a map must never change."""

    name: str
    lanes: tuple[Lane, ...]
    sidewalks: tuple[Strip, ...] = ()
    crossings: tuple[Strip, ...] = ()
    # Junction areas as polygons (M x 2): road surface without lane markings.
    junctions: tuple[np.ndarray, ...] = ()
    # (xmin, ymin, xmax, ymax) of everything above.
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, eq=False)
class Route:
    """The ego's route: dense waypoints (N x 2, about 1 m apart) with their headings (N,)."""

    waypoints: np.ndarray
    headings: np.ndarray
    lane_ids: tuple[str, ...] = ()

    @property
    def length(self) -> float:
        if len(self.waypoints) < 2:
            return 0.0
        return float(np.linalg.norm(np.diff(self.waypoints, axis=0), axis=1).sum())


@dataclass(frozen=True, slots=True)
class Collision:
    actor_id: str
    kind: ActorKind | None
    # Ego speed at impact, km/h (the paper's collision speed CS).
    ego_speed_kmh: float
    # Closing speed between ego and the other actor, km/h.
    relative_speed_kmh: float


@dataclass(frozen=True, slots=True)
class StepEvents:
    collisions: tuple[Collision, ...] = ()
    lane_invasion: bool = False
    # Names of scripted events that were triggered during this step (e.g. "pedestrian_crossing").
    triggered: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class WorldState:
    time: float
    step: int
    ego: EgoState
    actors: tuple[Actor, ...]
    map: MapGeometry
    route: Route
    events: StepEvents = field(default_factory=StepEvents)
    traffic_lights: tuple[TrafficLight, ...] = ()

    def actors_of(self, kind: ActorKind) -> tuple[Actor, ...]:
        return tuple(a for a in self.actors if a.kind is kind)

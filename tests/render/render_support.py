"""Scenes and pixel arithmetic for the renderer tests. A hand-built town: one 4-way junction at the origin.

East-west road: two lanes per direction (3.2 m); north-south road: one lane per direction (3.5 m);
right-hand traffic, sidewalks along every arm, zebra crossings on the east and north arms, two signals.
Scenes put the ego on the inner eastbound lane at (-30, -1.6) facing east unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drivevlm.sim.world import (
    Actor,
    ActorKind,
    EgoState,
    Lane,
    MapGeometry,
    Pose,
    Route,
    Strip,
    TrafficLight,
    WorldState,
)

JUNCTION_HALF = 9.0
ARM_END = 70.0
EW_LANE = 3.2
NS_LANE = 3.5
EGO_POSE = Pose(-30.0, -1.6, 0.0)

# Typical box sizes (length, width, height) per kind.
SIZES = {
    ActorKind.CAR: (4.5, 1.9, 1.5),
    ActorKind.BICYCLE: (1.7, 0.6, 1.7),
    ActorKind.MOTORCYCLE: (2.2, 0.8, 1.5),
    ActorKind.PEDESTRIAN: (0.5, 0.5, 1.75),
    ActorKind.OBSTACLE: (1.2, 1.0, 0.8),
    ActorKind.WARNING_TRIANGLE: (0.2, 0.45, 0.45),
}


def _line(a: tuple[float, float], b: tuple[float, float], step: float = 5.0) -> np.ndarray:
    n = max(2, int(np.hypot(b[0] - a[0], b[1] - a[1]) / step) + 1)
    return np.stack([np.linspace(a[0], b[0], n), np.linspace(a[1], b[1], n)], axis=1)


def _town() -> MapGeometry:
    j, e = JUNCTION_HALF, ARM_END
    lanes: list[Lane] = []

    def road(
        road_id: str, start: tuple[float, float], end: tuple[float, float], offsets: Sequence[float], w: float
    ):
        direction = np.subtract(end, start) / np.hypot(*np.subtract(end, start))
        right = np.array([direction[1], -direction[0]])
        for index, off in enumerate(offsets):
            shift = right * off
            lanes.append(
                Lane(
                    f"{road_id}_{index}",
                    _line(tuple(np.add(start, shift)), tuple(np.add(end, shift))),
                    w,
                    road_id=road_id,
                    index=index,
                )
            )

    ew = (1.5 * EW_LANE, 0.5 * EW_LANE)  # right-most lane first (SUMO's index 0)
    road("W_in", (-e, 0.0), (-j, 0.0), ew, EW_LANE)
    road("E_out", (j, 0.0), (e, 0.0), ew, EW_LANE)
    road("E_in", (e, 0.0), (j, 0.0), ew, EW_LANE)
    road("W_out", (-j, 0.0), (-e, 0.0), ew, EW_LANE)
    ns = (0.5 * NS_LANE,)
    road("S_in", (0.0, -e), (0.0, -j), ns, NS_LANE)
    road("N_out", (0.0, j), (0.0, e), ns, NS_LANE)
    road("N_in", (0.0, e), (0.0, j), ns, NS_LANE)
    road("S_out", (0.0, -j), (0.0, -e), ns, NS_LANE)
    ew_half, ns_half = 2 * EW_LANE, NS_LANE
    sidewalks = []
    for sign in (-1.0, 1.0):
        for side in (-1.0, 1.0):
            y = side * (ew_half + 1.0)
            sidewalks.append(Strip(f"ew{sign}{side}", _line((sign * j, y), (sign * e, y)), 2.0))
            x = side * (ns_half + 1.0)
            sidewalks.append(Strip(f"ns{sign}{side}", _line((x, sign * j), (x, sign * e)), 2.0))
    crossings = (
        Strip("cross_east", _line((7.5, -ew_half), (7.5, ew_half), 1.0), 3.0),
        Strip("cross_north", _line((-ns_half, 7.5), (ns_half, 7.5), 1.0), 3.0),
    )
    junction = np.array([[-j, -j], [j, -j], [j, j], [-j, j]], dtype=float)
    return MapGeometry(
        name="test:crossroads",
        lanes=tuple(lanes),
        sidewalks=tuple(sidewalks),
        crossings=crossings,
        junctions=(junction,),
        bounds=(-e, -e, e, e),
    )


TOWN = _town()


def actor(kind: ActorKind, x: float, y: float, yaw: float = 0.0, name: str | None = None) -> Actor:
    length, width, height = SIZES[kind]
    return Actor(name or f"{kind.value}@{x:.1f},{y:.1f}", kind, Pose(x, y, yaw), 1.0, length, width, height)


def ego_frame_point(ahead: float, left: float, pose: Pose = EGO_POSE) -> tuple[float, float]:
    """World point `ahead` metres in front of and `left` metres to the left of the ego."""
    c, s = np.cos(pose.yaw), np.sin(pose.yaw)
    return pose.x + ahead * c - left * s, pose.y + ahead * s + left * c


def make_state(
    actors: Sequence[Actor] = (),
    pose: Pose = EGO_POSE,
    lights: Sequence[TrafficLight] = (),
    world_map: MapGeometry = TOWN,
) -> WorldState:
    xs = np.arange(-60.0, 61.0, 1.0)
    waypoints = np.stack([xs, np.full_like(xs, -1.6)], axis=1)
    route = Route(waypoints, np.zeros(len(xs)))
    ego = EgoState(pose=pose, speed=5.0, steer=0.0, throttle=0.0)
    return WorldState(
        time=0.0,
        step=0,
        ego=ego,
        actors=tuple(actors),
        map=world_map,
        route=route,
        traffic_lights=tuple(lights),
    )


def bev_pixel(size: int, ppm: float, ego_from_bottom: float, ahead: float, left: float) -> tuple[int, int]:
    """(row, col) where an ego-frame point lands in a heading-up bird's-eye image."""
    cx = 0.5 * size - 0.5
    cy = size * (1.0 - ego_from_bottom) - 0.5
    return round(cy - ppm * ahead), round(cx - ppm * left)


def colour_matches(image: np.ndarray, colour: tuple[int, int, int], tolerance: float = 14.0) -> np.ndarray:
    """Boolean mask of pixels that are a shade (0.3x to 1.1x) of `colour`: robust to face shading."""
    c = np.asarray(colour, dtype=float)
    pix = image.reshape(-1, 3).astype(float)
    k = pix @ c / (c @ c)
    err = np.linalg.norm(pix - k[:, None] * c, axis=1)
    return ((err < tolerance) & (k > 0.3) & (k < 1.1)).reshape(image.shape[:2])

"""A `carla.Map` turned into our `MapGeometry` (and the lane graph the route planner walks).

CARLA's world is left-handed (x forward, y to the right, yaw clockwise seen from above); ours is x east,
y north, yaw counter-clockwise. Flipping y and yaw maps one onto the other, and it is exactly the
OpenDRIVE frame, so a map exported from a SUMO town lands on the SUMO town's coordinates.

Reading a town samples thousands of waypoints (about a second for Town03), so both the geometry and the
lane graph are cached per map name: the renderers cache their static layers by `MapGeometry.name` and
rely on one name always meaning the same geometry.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

import carla
import numpy as np

from drivevlm.sim.geometry import resample_polyline
from drivevlm.sim.world import Lane, LaneKind, MapGeometry, Strip

SegmentKey = tuple[int, int, int]
SAMPLE_SPACING_M = 1.0


def to_xy(location: carla.Location) -> tuple[float, float]:
    """CARLA location -> our (x, y)."""
    return float(location.x), -float(location.y)


def to_yaw(rotation: carla.Rotation) -> float:
    """CARLA yaw (degrees, clockwise) -> our yaw (radians, counter-clockwise), wrapped to [-pi, pi)."""
    yaw = -math.radians(float(rotation.yaw))
    return (yaw + math.pi) % (2.0 * math.pi) - math.pi


def to_location(x: float, y: float, z: float = 0.0) -> carla.Location:
    """Our (x, y) -> a CARLA location."""
    return carla.Location(x=float(x), y=-float(y), z=float(z))


def to_rotation(yaw: float) -> carla.Rotation:
    """Our yaw (radians) -> a CARLA rotation."""
    return carla.Rotation(yaw=-math.degrees(float(yaw)))


def short_name(carla_map: carla.Map) -> str:
    """'Carla/Maps/Town02' -> 'Town02' (a map loaded from OpenDRIVE keeps the name it was given)."""
    return str(carla_map.name).rsplit("/", 1)[-1]


def segment_key(waypoint: carla.Waypoint) -> SegmentKey:
    return (int(waypoint.road_id), int(waypoint.section_id), int(waypoint.lane_id))


def lane_id_of(key: SegmentKey) -> str:
    """The `Lane.id` / `Route.lane_ids` string of a lane segment."""
    return f"{key[0]}:{key[1]}:{key[2]}"


@dataclass(frozen=True, eq=False)
class LaneSegment:
    """One driving lane of one lane section, sampled about every metre in driving direction."""

    key: SegmentKey
    points: np.ndarray
    width: float
    in_junction: bool
    junction_id: int
    successors: tuple[SegmentKey, ...]
    # Same-direction neighbour lanes a car may change into (None where there is none or it is forbidden).
    left: SegmentKey | None
    right: SegmentKey | None

    @property
    def length(self) -> float:
        return (
            float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum()) if len(self.points) > 1 else 0.0
        )


@dataclass(frozen=True, eq=False)
class LaneGraph:
    name: str
    segments: dict[SegmentKey, LaneSegment]


_GRAPHS: dict[str, LaneGraph] = {}
_GEOMETRY: dict[str, MapGeometry] = {}


def _neighbour(waypoint: carla.Waypoint, side: str) -> SegmentKey | None:
    """The same-direction driving lane beside `waypoint` if CARLA allows changing into it."""
    allowed = {"left": (carla.LaneChange.Left, carla.LaneChange.Both)}
    allowed["right"] = (carla.LaneChange.Right, carla.LaneChange.Both)
    if waypoint.is_junction or waypoint.lane_change not in allowed[side]:
        return None
    other = waypoint.get_left_lane() if side == "left" else waypoint.get_right_lane()
    if other is None or other.lane_type != carla.LaneType.Driving:
        return None
    if other.lane_id * waypoint.lane_id <= 0:
        return None
    return segment_key(other)


def lane_graph(carla_map: carla.Map) -> LaneGraph:
    """Driving lane segments and their successors, from `get_topology()` (cached per map name).

    Each topology pair (a, b) means: drive a's lane to its end, then continue in b's lane.
    """
    name = short_name(carla_map)
    cached = _GRAPHS.get(name)
    if cached is not None:
        return cached
    starts: dict[SegmentKey, carla.Waypoint] = {}
    successors: dict[SegmentKey, list[SegmentKey]] = {}
    for entry, follower in carla_map.get_topology():
        key = segment_key(entry)
        starts.setdefault(key, entry)
        nxt = successors.setdefault(key, [])
        follower_key = segment_key(follower)
        if follower_key not in nxt:
            nxt.append(follower_key)
        starts.setdefault(follower_key, follower)
        successors.setdefault(follower_key, [])
    segments: dict[SegmentKey, LaneSegment] = {}
    for key, start in starts.items():
        waypoints = [start, *start.next_until_lane_end(SAMPLE_SPACING_M)]
        points = np.array([to_xy(w.transform.location) for w in waypoints], dtype=float)
        keep = np.concatenate([[True], np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-6])
        points = points[keep]
        if len(points) < 2:
            continue
        middle = waypoints[len(waypoints) // 2]
        segments[key] = LaneSegment(
            key=key,
            points=points,
            width=float(np.median([w.lane_width for w in waypoints])),
            in_junction=bool(start.is_junction),
            junction_id=int(start.junction_id) if start.is_junction else -1,
            successors=tuple(successors[key]),
            left=_neighbour(middle, "left"),
            right=_neighbour(middle, "right"),
        )
    for key, segment in list(segments.items()):
        kept = tuple(k for k in segment.successors if k in segments)
        left = segment.left if segment.left in segments else None
        right = segment.right if segment.right in segments else None
        segments[key] = LaneSegment(
            key, segment.points, segment.width, segment.in_junction, segment.junction_id, kept, left, right
        )
    graph = LaneGraph(name, segments)
    _GRAPHS[name] = graph
    return graph


def _lane_sections(opendrive: str) -> Iterable[tuple[int, int, float, float, str]]:
    """(road id, lane id, s start, s end, lane type) of every lane of every lane section in OpenDRIVE text."""
    root = ET.fromstring(opendrive)
    for road in root.iter("road"):
        road_id = int(road.get("id", "0"))
        length = float(road.get("length", "0"))
        lanes = road.find("lanes")
        if lanes is None:
            continue
        sections = lanes.findall("laneSection")
        bounds = [float(s.get("s", "0")) for s in sections] + [length]
        for index, section in enumerate(sections):
            for lane in section.iter("lane"):
                lane_id = int(lane.get("id", "0"))
                if lane_id != 0:
                    yield road_id, lane_id, bounds[index], bounds[index + 1], lane.get("type", "")


def _sample_lane(
    carla_map: carla.Map, road: int, lane: int, s0: float, s1: float
) -> tuple[np.ndarray, float]:
    """Centre points of one non-driving lane (sidewalk, bike lane) between s0 and s1, and its width."""
    if s1 - s0 < 0.2:
        return np.zeros((0, 2)), 0.0
    stations = [*np.arange(s0 + 0.05, s1 - 0.05, SAMPLE_SPACING_M), s1 - 0.05]
    points, widths = [], []
    for s in stations:
        waypoint = carla_map.get_waypoint_xodr(road, lane, float(s))
        if waypoint is None:
            continue
        points.append(to_xy(waypoint.transform.location))
        widths.append(float(waypoint.lane_width))
    if len(points) < 2:
        return np.zeros((0, 2)), 0.0
    pts = np.array(points, dtype=float)
    # Lanes left of the reference line run against increasing s.
    if lane > 0:
        pts = pts[::-1]
    return pts, float(np.median(widths))


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull (monotone chain) of N x 2 points."""
    pts = np.unique(np.round(np.asarray(points, dtype=float), 3), axis=0)
    if len(pts) < 3:
        return pts
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]

    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    lower: list[np.ndarray] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[np.ndarray] = []
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def _lane_edges(points: np.ndarray, width: float) -> np.ndarray:
    """Both edges of a lane band (2N x 2), for hulls."""
    d = np.gradient(points, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) * (0.5 * width)
    return np.concatenate([points + normal, points - normal])


def crosswalk_polygons(carla_map: carla.Map) -> list[np.ndarray]:
    """Split `get_crosswalks()` into polygons.

    CARLA lists every crosswalk's outline and repeats its first corner to close it; outlines that are not
    closed that way (seen in OpenDRIVE written by SUMO's netconvert) come as plain quadrilaterals.
    """
    pts = np.array([to_xy(p) for p in carla_map.get_crosswalks()], dtype=float).reshape(-1, 2)
    polygons: list[np.ndarray] = []
    i = 0
    while i < len(pts):
        rest = pts[i + 1 :]
        closing = np.flatnonzero(np.linalg.norm(rest - pts[i], axis=1) < 1e-3)
        if len(closing) and closing[0] >= 2:
            end = i + 1 + int(closing[0])
            polygons.append(pts[i:end])
            i = end + 1
        else:
            polygons.append(pts[i : i + 4])
            i += 4
    return [p for p in polygons if len(p) >= 3]


def _crossing_strip(index: int, polygon: np.ndarray) -> Strip:
    """A crosswalk polygon as a strip along its long axis (people walk across the road, along the zebra)."""
    centre = polygon.mean(axis=0)
    _, _, axes = np.linalg.svd(polygon - centre)
    along, across = axes[0], axes[1]
    u = (polygon - centre) @ along
    v = (polygon - centre) @ across
    line = np.stack([centre + along * u.min(), centre + along * u.max()])
    return Strip(f"crosswalk:{index}", line, float(v.max() - v.min()))


def map_geometry(carla_map: carla.Map) -> MapGeometry:
    """Lanes, sidewalks, crosswalks, junction areas and bounds of a CARLA map (cached per map name).

    Lanes are the driving lanes outside junctions plus bike lanes, grouped by road section and direction
    (`road_id` "road:section:R|L", index 0 the right-most as in SUMO); junctions are the convex hulls of
    the lanes that cross them.
    """
    name = short_name(carla_map)
    cached = _GEOMETRY.get(name)
    if cached is not None:
        return cached
    graph = lane_graph(carla_map)
    by_road: dict[str, list[tuple[int, Lane]]] = {}
    junction_points: dict[int, list[np.ndarray]] = {}
    for key, segment in graph.segments.items():
        if segment.in_junction:
            junction_points.setdefault(segment.junction_id, []).append(
                _lane_edges(segment.points, segment.width)
            )
            continue
        road = f"{key[0]}:{key[1]}:{'R' if key[2] < 0 else 'L'}"
        lane = Lane(lane_id_of(key), segment.points, segment.width, LaneKind.DRIVING, road)
        by_road.setdefault(road, []).append((abs(key[2]), lane))
    sidewalks: list[Strip] = []
    for road, lane_id, s0, s1, kind in _lane_sections(carla_map.to_opendrive()):
        if kind not in ("sidewalk", "biking"):
            continue
        points, width = _sample_lane(carla_map, road, lane_id, s0, s1)
        if len(points) < 2 or width <= 0:
            continue
        section_key = f"{road}:{s0:.2f}:{lane_id}"
        if kind == "sidewalk":
            sidewalks.append(
                Strip(f"sidewalk:{section_key}", resample_polyline(points, SAMPLE_SPACING_M), width)
            )
        else:
            side = f"{road}:{_section_index(graph, road, points)}:{'R' if lane_id < 0 else 'L'}"
            bike = Lane(f"bike:{section_key}", points, width, LaneKind.BIKE, side)
            by_road.setdefault(side, []).append((abs(lane_id), bike))
    lanes: list[Lane] = []
    for members in by_road.values():
        # The outermost lane (largest |lane id|) is the right-most in driving direction: index 0.
        members.sort(key=lambda item: -item[0])
        for index, (_, lane) in enumerate(members):
            lanes.append(Lane(lane.id, lane.centerline, lane.width, lane.kind, lane.road_id, index))
    crossings = [_crossing_strip(i, p) for i, p in enumerate(crosswalk_polygons(carla_map))]
    junctions = [_convex_hull(np.concatenate(parts)) for parts in junction_points.values()]
    junctions = [j for j in junctions if len(j) >= 3]
    everything = [lane.centerline for lane in lanes] + [s.centerline for s in sidewalks]
    everything += [c.centerline for c in crossings] + junctions
    if everything:
        stacked = np.concatenate(everything)
        pad = 5.0
        bounds = (
            float(stacked[:, 0].min() - pad),
            float(stacked[:, 1].min() - pad),
            float(stacked[:, 0].max() + pad),
            float(stacked[:, 1].max() + pad),
        )
    else:
        bounds = (0.0, 0.0, 0.0, 0.0)
    geometry = MapGeometry(
        name=f"carla:{name}",
        lanes=tuple(lanes),
        sidewalks=tuple(sidewalks),
        crossings=tuple(crossings),
        junctions=tuple(junctions),
        bounds=bounds,
    )
    _GEOMETRY[name] = geometry
    return geometry


def _section_index(graph: LaneGraph, road: int, points: np.ndarray) -> int:
    """The lane section of `road` whose driving lanes pass closest to a bike lane's middle."""
    middle = points[len(points) // 2]
    best, best_d = 0, math.inf
    for (road_id, section, _), segment in graph.segments.items():
        if road_id != road:
            continue
        d = float(np.min(np.linalg.norm(segment.points - middle, axis=1)))
        if d < best_d:
            best, best_d = section, d
    return best


def clear_caches() -> None:
    """Forget cached maps (for tests that load different maps under one name)."""
    _GRAPHS.clear()
    _GEOMETRY.clear()

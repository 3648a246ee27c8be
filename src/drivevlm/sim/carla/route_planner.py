"""A global route planner over a CARLA map's lane graph: A* between two locations, lane changes included.

The graph is the map's topology (see `map.lane_graph`): a search state is a lane segment and the arc
length at which the car enters it. Following a lane to its end leads into each successor at arc 0; a lane
change moves sideways into a same-direction neighbour over `lane_change_length_m` of travel and costs
`lane_change_cost_m` extra, so the planner changes lanes only where that shortens the trip (for example to
reach a turn lane). The straight-line distance to the goal is the A* heuristic, which never overestimates
because no move costs less than the distance it covers.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import carla
import numpy as np

from drivevlm.sim.carla.map import (
    LaneGraph,
    LaneSegment,
    SegmentKey,
    lane_graph,
    lane_id_of,
    to_location,
    to_xy,
)
from drivevlm.sim.geometry import polyline_headings, polyline_lengths, project_point, resample_polyline
from drivevlm.sim.world import Route


class RouteNotFoundError(ValueError):
    """No drivable route joins the two locations."""


@dataclass(frozen=True, slots=True)
class SpawnPoint:
    """A place to put a vehicle, in our frame."""

    x: float
    y: float
    yaw: float
    z: float = 0.0


def spawn_points(carla_map: carla.Map) -> list[SpawnPoint]:
    """The map's spawn points; maps loaded from OpenDRIVE alone have none, so lane starts stand in."""
    found = []
    for transform in carla_map.get_spawn_points():
        x, y = to_xy(transform.location)
        found.append(SpawnPoint(x, y, -math.radians(transform.rotation.yaw), float(transform.location.z)))
    if found:
        return found
    for segment in lane_graph(carla_map).segments.values():
        if segment.in_junction or segment.length < 10.0:
            continue
        x, y = _point_at(segment, _cumulative(segment), 3.0)
        heading = polyline_headings(segment.points)[min(3, len(segment.points) - 1)]
        found.append(SpawnPoint(float(x), float(y), float(heading), 0.5))
    return found


def _cumulative(segment: LaneSegment) -> np.ndarray:
    return polyline_lengths(segment.points)


def _point_at(segment: LaneSegment, cumulative: np.ndarray, s: float) -> np.ndarray:
    s = min(max(s, 0.0), float(cumulative[-1]))
    return np.array(
        [np.interp(s, cumulative, segment.points[:, 0]), np.interp(s, cumulative, segment.points[:, 1])]
    )


def _stretch(segment: LaneSegment, cumulative: np.ndarray, s0: float, s1: float) -> np.ndarray:
    """Points of a segment between arcs s0 and s1 (ends interpolated)."""
    inner = segment.points[(cumulative > s0) & (cumulative < s1)]
    return np.concatenate([[_point_at(segment, cumulative, s0)], inner, [_point_at(segment, cumulative, s1)]])


_GOAL: SegmentKey = (-1, -1, 0)
# A lane segment and the arc length at which the car enters it.
SearchState = tuple[SegmentKey, float]


class RoutePlanner:
    """Plans `Route`s on one CARLA map; build one per map and reuse it (the lane graph is cached)."""

    def __init__(
        self,
        carla_map: carla.Map,
        spacing_m: float = 1.0,
        lane_change_length_m: float = 10.0,
        lane_change_cost_m: float = 5.0,
    ) -> None:
        if spacing_m <= 0:
            raise ValueError(f"spacing_m: must be positive, got {spacing_m}")
        if lane_change_length_m <= 0 or lane_change_cost_m < 1.0:
            raise ValueError("lane_change_length_m must be positive and lane_change_cost_m at least 1 m")
        self.map = carla_map
        self.graph: LaneGraph = lane_graph(carla_map)
        self.spacing_m = float(spacing_m)
        self.lane_change_length_m = float(lane_change_length_m)
        self.lane_change_cost_m = float(lane_change_cost_m)
        self._cumulative = {key: _cumulative(seg) for key, seg in self.graph.segments.items()}

    def locate(self, x: float, y: float) -> tuple[SegmentKey, float]:
        """The driving lane segment under (x, y) and the arc length along it."""
        waypoint = self.map.get_waypoint(to_location(x, y), True, carla.LaneType.Driving)
        candidates: list[SegmentKey] = []
        if waypoint is not None:
            key = (int(waypoint.road_id), int(waypoint.section_id), int(waypoint.lane_id))
            if key in self.graph.segments:
                candidates.append(key)
        if not candidates:
            candidates = list(self.graph.segments)
        if not candidates:
            raise RouteNotFoundError(f"map {self.graph.name!r} has no driving lanes")
        best: tuple[float, SegmentKey, float] | None = None
        for key in candidates:
            segment = self.graph.segments[key]
            foot = project_point(segment.points, x, y, self._cumulative[key])
            here = _point_at(segment, self._cumulative[key], foot.arc_length)
            distance = float(np.hypot(here[0] - x, here[1] - y))
            if best is None or distance < best[0]:
                best = (distance, key, foot.arc_length)
        assert best is not None
        return best[1], best[2]

    def plan(self, start: tuple[float, float], goal: tuple[float, float]) -> Route:
        """The shortest drivable route from `start` to `goal` (our frame), waypoints `spacing_m` apart."""
        start_key, start_s = self.locate(*start)
        goal_key, goal_s = self.locate(*goal)
        moves = self._search(start_key, start_s, goal_key, goal_s)
        return self._densify(moves)

    def plan_spawn_points(self, start_index: int, goal_index: int) -> Route:
        """A route between two of the map's spawn points (how the paper names its fixed routes)."""
        points = spawn_points(self.map)
        for field, index in (("start_index", start_index), ("goal_index", goal_index)):
            if not 0 <= index < len(points):
                raise ValueError(
                    f"{field}: {index} is not a spawn point index of {self.graph.name} (0..{len(points) - 1})"
                )
        a, b = points[start_index], points[goal_index]
        return self.plan((a.x, a.y), (b.x, b.y))

    def _heuristic(self, key: SegmentKey, s: float, goal: np.ndarray) -> float:
        point = _point_at(self.graph.segments[key], self._cumulative[key], s)
        return float(np.hypot(*(point - goal)))

    def _search(
        self, start_key: SegmentKey, start_s: float, goal_key: SegmentKey, goal_s: float
    ) -> list[tuple[str, SegmentKey, float, SegmentKey, float]]:
        segments = self.graph.segments
        goal_xy = _point_at(segments[goal_key], self._cumulative[goal_key], goal_s)
        start: SearchState = (start_key, round(start_s, 1))
        best: dict[SearchState, float] = {start: 0.0}
        parent: dict[SearchState, tuple[SearchState, str]] = {}
        frontier: list[tuple[float, float, SearchState]] = [
            (self._heuristic(start_key, start_s, goal_xy), 0.0, start)
        ]
        change = self.lane_change_length_m
        while frontier:
            _, cost, state = heapq.heappop(frontier)
            if cost > best.get(state, math.inf):
                continue
            key, s = state
            if key == _GOAL:
                return self._unwind(state, parent)
            segment = segments[key]
            length = float(self._cumulative[key][-1])
            options: list[tuple[SearchState, float, str]] = []
            if key == goal_key and s <= goal_s + 1e-6:
                options.append(((_GOAL, round(goal_s, 1)), goal_s - s, "follow"))
            for successor in segment.successors:
                options.append(((successor, 0.0), max(length - s, 0.0), "follow"))
            for neighbour in (segment.left, segment.right):
                if neighbour is None or s + change > length:
                    continue
                other = float(self._cumulative[neighbour][-1])
                landing = s * other / max(length, 1e-9) + change
                if landing <= other:
                    options.append(
                        ((neighbour, round(landing, 1)), change + self.lane_change_cost_m, "change")
                    )
            for target, step, how in options:
                total = cost + step
                if total < best.get(target, math.inf) - 1e-9:
                    best[target] = total
                    parent[target] = (state, how)
                    tkey, ts = target
                    h = 0.0 if tkey == _GOAL else self._heuristic(tkey, ts, goal_xy)
                    heapq.heappush(frontier, (total + h, total, target))
        raise RouteNotFoundError(
            f"no drivable route on {self.graph.name} from lane {lane_id_of(start_key)} (s={start_s:.1f} m) "
            f"to lane {lane_id_of(goal_key)} (s={goal_s:.1f} m)"
        )

    def _unwind(
        self, state: SearchState, parent: dict[SearchState, tuple[SearchState, str]]
    ) -> list[tuple[str, SegmentKey, float, SegmentKey, float]]:
        """Moves (kind, from lane, from arc, to lane, to arc) from the start state to the goal."""
        moves = []
        while state in parent:
            previous, how = parent[state]
            moves.append((how, previous[0], previous[1], state[0], state[1]))
            state = previous
        return moves[::-1]

    def _densify(self, moves: list[tuple[str, SegmentKey, float, SegmentKey, float]]) -> Route:
        pieces: list[np.ndarray] = []
        owners: list[str] = []
        segments = self.graph.segments
        for how, key, s, target, target_s in moves:
            cumulative = self._cumulative[key]
            if how == "follow":
                end = target_s if target == _GOAL else float(cumulative[-1])
                points = _stretch(segments[key], cumulative, s, max(end, s))
            else:
                other_cum = self._cumulative[target]
                t = np.linspace(0.0, 1.0, max(int(self.lane_change_length_m / self.spacing_m), 2) + 1)
                weight = (3.0 * t**2 - 2.0 * t**3)[:, None]
                here = np.array(
                    [_point_at(segments[key], cumulative, s + u * self.lane_change_length_m) for u in t]
                )
                start_there = target_s - self.lane_change_length_m
                there = np.array(
                    [
                        _point_at(segments[target], other_cum, start_there + u * self.lane_change_length_m)
                        for u in t
                    ]
                )
                points = (1.0 - weight) * here + weight * there
            pieces.append(points)
            owners.extend([lane_id_of(key)] * len(points))
        raw = np.concatenate(pieces) if pieces else np.zeros((0, 2))
        keep = (
            np.concatenate([[True], np.linalg.norm(np.diff(raw, axis=0), axis=1) > 1e-6]) if len(raw) else []
        )
        raw = raw[keep]
        raw_owners = [o for o, k in zip(owners, keep, strict=True) if k]
        if len(raw) < 2:
            point = raw[0] if len(raw) else np.zeros(2)
            raw = np.stack([point, point + 1e-3])
            raw_owners = raw_owners[:1] * 2 or ["", ""]
        waypoints = resample_polyline(raw, self.spacing_m)
        raw_arc = polyline_lengths(raw)
        arc = polyline_lengths(waypoints)
        index = np.clip(np.searchsorted(raw_arc, arc, side="right") - 1, 0, len(raw_owners) - 1)
        return Route(
            waypoints=waypoints,
            headings=polyline_headings(waypoints),
            lane_ids=tuple(raw_owners[i] for i in index),
        )

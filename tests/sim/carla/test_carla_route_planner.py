"""Route planning on a real carla.Map (loaded from OpenDRIVE; no server involved)."""

from __future__ import annotations

import itertools

import carla
import numpy as np
import pytest

from drivevlm.sim.carla.map import lane_graph
from drivevlm.sim.carla.route_planner import RoutePlanner, spawn_points
from drivevlm.sim.geometry import wrap_angle


def _lane_distance(grid_map: carla.Map, point: np.ndarray) -> float:
    best = np.inf
    for segment in lane_graph(grid_map).segments.values():
        best = min(best, float(np.min(np.linalg.norm(segment.points - point, axis=1))))
    return best


def test_route_between_far_corners_follows_lanes(grid_map: carla.Map) -> None:
    planner = RoutePlanner(grid_map)
    points = spawn_points(grid_map)
    start = min(points, key=lambda p: p.x + p.y)
    goal = max(points, key=lambda p: p.x + p.y)
    manhattan = abs(goal.x - start.x) + abs(goal.y - start.y)
    assert manhattan > 300.0
    route = planner.plan((start.x, start.y), (goal.x, goal.y))
    pts = route.waypoints
    assert np.linalg.norm(pts[0] - [start.x, start.y]) < 1.0
    assert np.linalg.norm(pts[-1] - [goal.x, goal.y]) < 1.0
    # A grid has no diagonals: at least the Manhattan distance, at most a few detours around blocks.
    assert manhattan - 10.0 <= route.length <= manhattan + 400.0
    steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    assert steps.min() > 0.9 and steps.max() < 1.05
    assert len(route.lane_ids) == len(pts) == len(route.headings)
    # On a lane centre (a lane change blends two centres 3.2 m apart, so allow half of that).
    assert max(_lane_distance(grid_map, p) for p in pts[::5]) < 1.7
    # Headings point along the route and turn smoothly.
    along = np.arctan2(np.diff(pts[:, 1]), np.diff(pts[:, 0]))
    assert max(abs(wrap_angle(a - h)) for a, h in zip(along, route.headings[:-1], strict=True)) < 1e-6
    assert max(abs(wrap_angle(b - a)) for a, b in itertools.pairwise(along)) < 0.4


def test_route_respects_driving_direction(grid_map: carla.Map) -> None:
    """Going 'backwards' along a one-way lane means driving around: the route is longer than the gap."""
    planner = RoutePlanner(grid_map)
    points = spawn_points(grid_map)
    start = points[0]
    behind = (start.x - 20.0 * np.cos(start.yaw), start.y - 20.0 * np.sin(start.yaw))
    route = planner.plan((start.x, start.y), behind)
    assert route.length > 60.0
    ahead = (start.x + 20.0 * np.cos(start.yaw), start.y + 20.0 * np.sin(start.yaw))
    assert planner.plan((start.x, start.y), ahead).length == pytest.approx(20.0, abs=1.5)


def test_spawn_point_routes_and_bad_index(grid_map: carla.Map) -> None:
    planner = RoutePlanner(grid_map)
    points = spawn_points(grid_map)
    assert len(points) >= 24
    route = planner.plan_spawn_points(0, len(points) - 1)
    assert route.length > 10.0
    with pytest.raises(ValueError, match="start_index"):
        planner.plan_spawn_points(len(points), 0)

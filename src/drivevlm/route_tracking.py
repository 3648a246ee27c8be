"""Where the ego is along its route: progress, lane-centre offset, heading error, next waypoints.

The search is windowed around the last match so a step costs the same on a 50 m and a 5 km route,
and a route that passes the same place twice cannot make the ego jump ahead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivevlm.sim.geometry import polyline_lengths, project_point, world_to_ego, wrap_angle
from drivevlm.sim.world import Pose, Route

_BEHIND = 5
_AHEAD = 40


@dataclass(frozen=True, slots=True)
class RouteProgress:
    # Metres along the route from its start.
    arc_length: float
    # Signed distance to the route's centre line, m (left positive).
    lateral: float
    # Ego heading minus route heading, radians in [-pi, pi).
    heading_error: float
    # Share of the route driven, in [0, 1].
    completion: float
    finished: bool


class RouteTracker:
    def __init__(self, route: Route, finish_tolerance_m: float = 5.0) -> None:
        if len(route.waypoints) < 2:
            raise ValueError("route: needs at least two waypoints")
        self.route = route
        self._points = np.asarray(route.waypoints, dtype=float)
        self._cumulative = polyline_lengths(self._points)
        self.length = float(self._cumulative[-1])
        self._finish_tolerance = finish_tolerance_m
        self._segment = 0
        self._arc = 0.0

    def update(self, pose: Pose) -> RouteProgress:
        lo = max(self._segment - _BEHIND, 0)
        hi = min(self._segment + _AHEAD, len(self._points))
        window = self._points[lo:hi]
        proj = project_point(window, pose.x, pose.y, self._cumulative[lo:hi] - self._cumulative[lo])
        self._segment = lo + proj.segment
        arc = float(self._cumulative[lo] + proj.arc_length)
        self._arc = arc
        remaining = self.length - arc
        return RouteProgress(
            arc_length=arc,
            lateral=proj.lateral,
            heading_error=wrap_angle(pose.yaw - proj.heading),
            completion=min(max(arc / self.length, 0.0), 1.0) if self.length > 0 else 1.0,
            finished=remaining <= self._finish_tolerance,
        )

    def waypoints_ahead(self, pose: Pose, count: int, spacing_m: float) -> np.ndarray:
        """The next `count` route points every `spacing_m` metres past the last update, in the ego frame."""
        targets = np.minimum(self._arc + spacing_m * np.arange(1, count + 1), self.length)
        xs = np.interp(targets, self._cumulative, self._points[:, 0])
        ys = np.interp(targets, self._cumulative, self._points[:, 1])
        return world_to_ego(np.stack([xs, ys], axis=1), pose.x, pose.y, pose.yaw)

import math

import numpy as np
import pytest

from drivevlm.route_tracking import RouteTracker
from drivevlm.sim.geometry import polyline_headings, resample_polyline
from drivevlm.sim.world import Pose, Route


def _route(points: list[tuple[float, float]]) -> Route:
    dense = resample_polyline(np.array(points, dtype=float), 1.0)
    return Route(waypoints=dense, headings=polyline_headings(dense))


def test_straight_route_offset_heading_and_progress() -> None:
    tracker = RouteTracker(_route([(0, 0), (100, 0)]))
    progress = tracker.update(Pose(30.0, 1.5, math.radians(10)))
    assert progress.arc_length == pytest.approx(30.0)
    assert progress.lateral == pytest.approx(1.5)  # left of the route is positive
    assert math.degrees(progress.heading_error) == pytest.approx(10.0)
    assert progress.completion == pytest.approx(0.3)
    assert not progress.finished


def test_route_finishes_within_tolerance_of_the_end() -> None:
    tracker = RouteTracker(_route([(0, 0), (20, 0)]))
    for x in range(0, 17):
        progress = tracker.update(Pose(float(x), 0.0, 0.0))
    assert progress.finished


def test_waypoints_ahead_are_in_the_ego_frame() -> None:
    # Route goes north; ego faces north: the waypoints lie straight ahead (+x in the ego frame).
    tracker = RouteTracker(_route([(0, 0), (0, 100)]))
    pose = Pose(0.0, 10.0, math.pi / 2)
    tracker.update(pose)
    ahead = tracker.waypoints_ahead(pose, count=5, spacing_m=2.0)
    assert ahead.shape == (5, 2)
    np.testing.assert_allclose(ahead[:, 0], [2, 4, 6, 8, 10], atol=1e-6)
    np.testing.assert_allclose(ahead[:, 1], 0.0, atol=1e-6)


def test_a_route_that_revisits_a_place_does_not_jump_ahead() -> None:
    # A loop that passes (10, 0) at its start and again near its end.
    route = _route([(0, 0), (20, 0), (20, 20), (10, 20), (10, 0.5), (10, -20)])
    tracker = RouteTracker(route)
    progress = tracker.update(Pose(10.0, 0.0, 0.0))
    assert progress.arc_length == pytest.approx(10.0, abs=0.5)


def test_waypoints_past_the_end_stay_at_the_end() -> None:
    tracker = RouteTracker(_route([(0, 0), (5, 0)]))
    pose = Pose(0.0, 0.0, 0.0)
    tracker.update(pose)
    ahead = tracker.waypoints_ahead(pose, count=4, spacing_m=2.0)
    np.testing.assert_allclose(ahead[:, 0], [2, 4, 5, 5], atol=1e-6)


def test_too_short_route_is_an_error() -> None:
    with pytest.raises(ValueError, match="route"):
        RouteTracker(Route(waypoints=np.zeros((1, 2)), headings=np.zeros(1)))

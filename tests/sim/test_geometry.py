import math

import numpy as np
import pytest

from drivevlm.sim.geometry import (
    box_corners,
    boxes_overlap,
    ego_to_world,
    point_in_polygon,
    polyline_headings,
    project_point,
    resample_polyline,
    world_to_ego,
)


def test_axis_aligned_boxes_overlap_and_separate():
    assert boxes_overlap((0, 0, 0, 4, 2), (3.9, 0, 0, 4, 2))
    assert not boxes_overlap((0, 0, 0, 4, 2), (4.1, 0, 0, 4, 2))
    assert not boxes_overlap((0, 0, 0, 4, 2), (0, 2.1, 0, 4, 2))


def test_rotated_boxes_use_separating_axes_not_bounding_circles():
    # Circles overlap (centres 3.2 m apart) but a 45-degree box corner misses the other box.
    a = (0.0, 0.0, 0.0, 4.0, 2.0)
    b_far = (2.0 + 1.0 / math.sqrt(2) + 0.55, 1.0 + 1.0 / math.sqrt(2) + 0.55, math.pi / 4, 2.0, 2.0)
    assert not boxes_overlap(a, b_far)
    b_near = (2.0 + 0.5, 1.0 + 0.5, math.pi / 4, 2.0, 2.0)
    assert boxes_overlap(a, b_near)
    # A thin box crossing at right angles overlaps.
    assert boxes_overlap(a, (0.0, 0.0, math.pi / 2, 10.0, 0.2))


def test_box_corners_span_length_and_width():
    c = box_corners(1.0, 2.0, math.pi / 2, 4.0, 2.0)
    assert np.allclose(c[:, 0].min(), 0.0) and np.allclose(c[:, 0].max(), 2.0)
    assert np.allclose(c[:, 1].min(), 0.0) and np.allclose(c[:, 1].max(), 4.0)


def test_resample_keeps_ends_and_spacing():
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [10.0, 5.5]])
    out = resample_polyline(line, 1.0)
    assert np.allclose(out[0], [0, 0]) and np.allclose(out[-1], [10, 5.5])
    steps = np.linalg.norm(np.diff(out, axis=0), axis=1)
    assert steps.max() <= 1.0 + 1e-9 and steps.min() > 0.6  # chords cut the corner
    with pytest.raises(ValueError, match="spacing"):
        resample_polyline(line, 0.0)


def test_projection_gives_arc_length_signed_offset_and_heading():
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    left = project_point(line, 4.0, 1.5)
    assert left.arc_length == pytest.approx(4.0) and left.lateral == pytest.approx(1.5)
    assert left.heading == pytest.approx(0.0)
    right = project_point(line, 12.0, 6.0)
    assert right.arc_length == pytest.approx(16.0) and right.lateral == pytest.approx(-2.0)
    assert right.heading == pytest.approx(math.pi / 2)
    assert polyline_headings(line)[-1] == pytest.approx(math.pi / 2)


def test_frame_transforms_round_trip_and_point_ahead():
    pts = np.array([[3.0, 4.0], [-1.0, 2.0]])
    local = world_to_ego(pts, 1.0, 1.0, math.pi / 2)
    # A point 3 m north of an ego heading north is 3 m ahead.
    assert np.allclose(local[0], [3.0, -2.0])
    assert np.allclose(ego_to_world(local, 1.0, 1.0, math.pi / 2), pts)


def test_point_in_polygon():
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], dtype=float)
    assert point_in_polygon(1.0, 1.0, square)
    assert not point_in_polygon(3.0, 1.0, square)

"""The path-aware attention gate: the camera model inverts the front camera, the corridor and range rules."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from drivevlm.models.base import Detection
from drivevlm.render import FrontCameraRenderer
from drivevlm.rewards.dynamic import AttentionGate, GroundCamera, PathFilter
from render.render_support import ego_frame_point, make_state

WIDTH = HEIGHT = 224
RENDERER = FrontCameraRenderer(width=WIDTH, height=HEIGHT)
STATE = make_state()


def _pixels(ahead: float, left: float) -> tuple[float, float]:
    """Where the renderer's own camera puts the ground point `ahead` m in front of and `left` m left of
    the ego's centre."""
    x, y = ego_frame_point(ahead, left)
    u, v, _ = RENDERER.project(STATE, np.array([[x, y, 0.0]]))[0]
    return float(u), float(v)


def _box(ahead: float, left: float, half_width: float = 0.3, tall: float = 40.0) -> tuple[float, ...]:
    """The image box of an object standing on the ground at (ahead, left)."""
    u_left, v = _pixels(ahead, left + half_width)
    u_right, _ = _pixels(ahead, left - half_width)
    return (u_left, v - tall, u_right, v)


def test_the_ground_camera_inverts_the_front_cameras_projection() -> None:
    camera = GroundCamera()
    for ahead, left in [(4.0, 0.0), (12.0, -3.0), (30.0, 5.0), (60.0, -1.0)]:
        u, v = _pixels(ahead, left)
        got_ahead, got_left = camera.ground_points(np.array([u]), np.array([v]), WIDTH, HEIGHT)
        assert got_ahead[0] == pytest.approx(ahead, abs=1e-6)
        assert got_left[0] == pytest.approx(left, abs=1e-6)
    above_horizon, _ = camera.ground_points(np.array([100.0]), np.array([10.0]), WIDTH, HEIGHT)
    assert np.isinf(above_horizon[0])


def test_objects_count_in_the_corridor_within_range_or_time_to_collision() -> None:
    path = PathFilter(max_distance_m=35.0, ttc_s=3.0, half_width_m=2.5)
    boxes = np.array(
        [
            _box(15.0, 0.5),  # in the lane ahead
            _box(15.0, 2.7),  # stepping off the kerb: its box reaches the corridor
            _box(15.0, 6.0),  # on the far sidewalk
            _box(50.0, 0.0),  # in the lane, beyond 35 m
            (100.0, 0.0, 110.0, 20.0),  # above the horizon
        ]
    )
    assert path.in_path(boxes, WIDTH, HEIGHT).tolist() == [True, True, False, False, False]
    # At 72 km/h three seconds reach 60 m: the far one counts.
    assert path.in_path(boxes, WIDTH, HEIGHT, speed_kmh=72.0).tolist() == [True, True, False, True, False]
    with pytest.raises(ValueError, match=r"gate\.half_width_m"):
        PathFilter(half_width_m=0.0)


class _Boxes:
    """A detector whose detections are given per call (the gate's own rules are under test)."""

    name = "boxes"

    def __init__(self, detections: list[list[Detection]]) -> None:
        self.detections = detections

    def detect(self, images: Sequence[np.ndarray] | np.ndarray) -> list[list[Detection]]:
        return self.detections


def test_the_path_gate_opens_only_for_critical_objects_in_the_path() -> None:
    on_sidewalk = Detection("person", 0.9, _box(12.0, 6.0))
    in_lane = Detection("bicycle", 0.9, _box(12.0, 0.0))
    car_in_lane = Detection("car", 0.9, _box(12.0, 0.0, half_width=0.9))
    frames = np.zeros((3, HEIGHT, WIDTH, 3), np.uint8)
    detector = _Boxes([[on_sidewalk], [on_sidewalk, in_lane], [car_in_lane]])
    class_gate = AttentionGate(detector)  # type: ignore[arg-type]
    path_gate = AttentionGate(detector, path=PathFilter())  # type: ignore[arg-type]
    assert class_gate(frames)[0].tolist() == [True, True, False]
    opened, found = path_gate(frames, [20.0, 20.0, 20.0])
    assert opened.tolist() == [False, True, False]
    assert found[1] == [in_lane]

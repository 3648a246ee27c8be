"""Shared plumbing of the top-down renderers: the ego-centred, heading-up view and actor arrays."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from drivevlm.render.static import StaticLayer
from drivevlm.sim.world import Actor, ActorKind, Pose

KIND_CODES: dict[ActorKind, int] = {
    ActorKind.CAR: 0,
    ActorKind.BICYCLE: 1,
    ActorKind.MOTORCYCLE: 2,
    ActorKind.PEDESTRIAN: 3,
    ActorKind.OBSTACLE: 4,
    ActorKind.WARNING_TRIANGLE: 5,
}
KINDS_BY_CODE: tuple[ActorKind, ...] = tuple(KIND_CODES)
_BOX_SIGNS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


def check_view(size: int, pixels_per_meter: float, ego_from_bottom: float) -> None:
    """Reject view settings that cannot make an image, naming the field."""
    if not isinstance(size, int | np.integer) or size < 8:
        raise ValueError(f"size: must be an integer of at least 8 pixels, got {size!r}")
    if not np.isfinite(pixels_per_meter) or pixels_per_meter <= 0:
        raise ValueError(f"pixels_per_meter: must be a positive number, got {pixels_per_meter!r}")
    if not 0.0 <= ego_from_bottom < 1.0:
        raise ValueError(f"ego_from_bottom: must lie in [0, 1), got {ego_from_bottom!r}")


def ego_view(pose: Pose, size: int, ppm: float, ego_from_bottom: float) -> np.ndarray:
    """2 x 3 affine map from world metres to image pixels: ego at the centre column, facing up.

    With the ego frame (+x ahead, +y left), column = cx - ppm * y_ego and row = cy - ppm * x_ego.
    """
    c, s = np.cos(pose.yaw), np.sin(pose.yaw)
    a = ppm * np.array([[s, -c], [-c, -s]])
    centre = np.array([0.5 * size - 0.5, size * (1.0 - ego_from_bottom) - 0.5])
    b = centre - a @ np.array([pose.x, pose.y])
    return np.concatenate([a, b[:, None]], axis=1)


def layer_warp(view: np.ndarray, layer: StaticLayer) -> np.ndarray:
    """2 x 3 affine map from the layer's raster pixels to image pixels (for cv2.warpAffine)."""
    world_to_image = np.vstack([view, [0.0, 0.0, 1.0]])
    return (world_to_image @ layer.frame.pixel_to_world())[:2]


def warp_layer(layer: StaticLayer, view: np.ndarray, size: int, border: int | tuple[int, ...]) -> np.ndarray:
    """The layer's raster as the ego sees it (size x size, bilinear), `border` where the map ends."""
    return cv2.warpAffine(
        layer.image,
        layer_warp(view, layer),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )


def actor_table(actors: Sequence[Actor]) -> np.ndarray:
    """(N, 6) float array of x, y, yaw, length, width, kind code: one vectorised pass per frame."""
    table = np.empty((len(actors), 6))
    for i, a in enumerate(actors):
        p = a.pose
        table[i] = (p.x, p.y, p.yaw, a.length, a.width, KIND_CODES[a.kind])
    return table


class ActorTableCache:
    """Remembers the tables of the last few actor tuples, so history frames are converted only once.

    Keyed by object identity (the tuple is kept alive here, so an id is never reused while cached).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._items: list[tuple[tuple[Actor, ...], np.ndarray]] = []

    def get(self, actors: tuple[Actor, ...]) -> np.ndarray:
        for held, table in self._items:
            if held is actors:
                return table
        table = actor_table(actors)
        self._items.append((actors, table))
        if len(self._items) > self.capacity:
            del self._items[0]
        return table


def box_pixels(table: np.ndarray, view: np.ndarray, scale: float, min_extent_m: float = 0.0) -> np.ndarray:
    """Corners (N, 4, 2) of each actor box in image pixels times `scale` (for OpenCV's sub-pixel shift)."""
    half_l = 0.5 * np.maximum(table[:, 3], min_extent_m)
    half_w = 0.5 * np.maximum(table[:, 4], min_extent_m)
    c, s = np.cos(table[:, 2]), np.sin(table[:, 2])
    lx = _BOX_SIGNS[None, :, 0] * half_l[:, None]
    ly = _BOX_SIGNS[None, :, 1] * half_w[:, None]
    wx = table[:, None, 0] + lx * c[:, None] - ly * s[:, None]
    wy = table[:, None, 1] + lx * s[:, None] + ly * c[:, None]
    u = view[0, 0] * wx + view[0, 1] * wy + view[0, 2]
    v = view[1, 0] * wx + view[1, 1] * wy + view[1, 2]
    return np.stack([u, v], axis=2) * scale


def points_in_view(
    points: Sequence[tuple[float, float]], view: np.ndarray, size: int, margin: float, scale: float
) -> tuple[list[int], list[tuple[int, int]]]:
    """Which world `points` land within `margin` pixels of the image, and their (x, y) pixels times `scale`
    (for OpenCV's fixed-point drawing)."""
    pix = np.asarray(points, dtype=float) @ view[:, :2].T + view[:, 2]
    inside = np.flatnonzero(((pix > -margin) & (pix < size + margin)).all(axis=1))
    fixed = np.round(pix[inside] * scale).astype(np.int64)
    return inside.tolist(), [(int(x), int(y)) for x, y in fixed]


def visible(corners: np.ndarray, size: int, scale: float) -> np.ndarray:
    """Boolean (N,) of boxes whose pixel corners touch the image."""
    lo = corners.min(axis=1)
    hi = corners.max(axis=1)
    limit = size * scale
    return (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < limit) & (lo[:, 1] < limit)


def remaining_route(waypoints: np.ndarray, headings: np.ndarray, pose: Pose, ahead_m: float) -> np.ndarray:
    """The route from the waypoint nearest the ego (facing its way) up to `ahead_m` metres on."""
    if len(waypoints) == 0:
        return waypoints
    d2 = (waypoints[:, 0] - pose.x) ** 2 + (waypoints[:, 1] - pose.y) ** 2
    if len(headings) == len(waypoints):
        # Skip waypoints heading against the ego, so a route that passes the same place twice stays right.
        facing = np.cos(headings - pose.yaw) > -0.2
        d2 = np.where(facing, d2, d2 + 1e6)
    start = int(np.argmin(d2))
    # Waypoints lie about 1 m apart; a margin covers sparser routes.
    stop = min(len(waypoints), start + int(ahead_m * 2.0) + 2)
    return waypoints[start:stop]

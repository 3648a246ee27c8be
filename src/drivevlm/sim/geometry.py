"""Planar geometry shared by simulator backends: oriented boxes, polylines and frame transforms.

Everything here is plain numpy on world-frame metres and radians (yaw counter-clockwise from +x),
so backends can run their own collision and lane checks without the simulator's help.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def wrap_angle(angle: float) -> float:
    """Map an angle to [-pi, pi)."""
    return float((angle + np.pi) % (2.0 * np.pi) - np.pi)


def box_corners(x: float, y: float, yaw: float, length: float, width: float) -> np.ndarray:
    """Four corners (4 x 2) of a box centred at (x, y), long side along `yaw`, counter-clockwise."""
    c, s = np.cos(yaw), np.sin(yaw)
    hl, hw = 0.5 * length, 0.5 * width
    local = np.array([[hl, hw], [-hl, hw], [-hl, -hw], [hl, -hw]])
    rot = np.array([[c, -s], [s, c]])
    return local @ rot.T + np.array([x, y])


def boxes_overlap(
    a: tuple[float, float, float, float, float], b: tuple[float, float, float, float, float]
) -> bool:
    """Separating-axis test for two oriented boxes given as (x, y, yaw, length, width).

    Two convex rectangles are disjoint exactly when their projections are disjoint on one of the
    four edge normals; touching counts as overlap.
    """
    ax, ay, ayaw, al, aw = a
    bx, by, byaw, bl, bw = b
    dx, dy = bx - ax, by - ay
    # Quick reject by bounding circles: most pairs are far apart.
    ra = 0.5 * np.hypot(al, aw)
    rb = 0.5 * np.hypot(bl, bw)
    if dx * dx + dy * dy > (ra + rb) ** 2:
        return False
    ca, sa = np.cos(ayaw), np.sin(ayaw)
    cb, sb = np.cos(byaw), np.sin(byaw)
    axes = ((ca, sa), (-sa, ca), (cb, sb), (-sb, cb))
    a_half = ((ca * al * 0.5, sa * al * 0.5), (-sa * aw * 0.5, ca * aw * 0.5))
    b_half = ((cb * bl * 0.5, sb * bl * 0.5), (-sb * bw * 0.5, cb * bw * 0.5))
    for ux, uy in axes:
        dist = abs(dx * ux + dy * uy)
        reach_a = abs(a_half[0][0] * ux + a_half[0][1] * uy) + abs(a_half[1][0] * ux + a_half[1][1] * uy)
        reach_b = abs(b_half[0][0] * ux + b_half[0][1] * uy) + abs(b_half[1][0] * ux + b_half[1][1] * uy)
        if dist > reach_a + reach_b:
            return False
    return True


def world_to_ego(points: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    """World points (N x 2) into the ego frame: +x ahead, +y to the left."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2) - np.array([x, y])
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([pts[:, 0] * c + pts[:, 1] * s, -pts[:, 0] * s + pts[:, 1] * c], axis=1)


def ego_to_world(points: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    """Ego-frame points (N x 2) back to the world frame (inverse of `world_to_ego`)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([pts[:, 0] * c - pts[:, 1] * s + x, pts[:, 0] * s + pts[:, 1] * c + y], axis=1)


def polyline_lengths(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length (N,) along a polyline (N x 2), starting at 0."""
    pts = np.asarray(points, dtype=float)
    if len(pts) < 2:
        return np.zeros(len(pts))
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])


def resample_polyline(points: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Points evenly spaced by about `spacing` along a polyline, keeping both ends.

    Duplicate consecutive points are dropped first so that joined lane shapes resample cleanly.
    """
    if spacing <= 0:
        raise ValueError(f"spacing: must be positive, got {spacing}")
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) == 0:
        return pts
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-9])
    pts = pts[keep]
    if len(pts) < 2:
        return pts.copy()
    s = polyline_lengths(pts)
    count = max(int(np.ceil(s[-1] / spacing)), 1) + 1
    targets = np.linspace(0.0, s[-1], count)
    return np.stack([np.interp(targets, s, pts[:, 0]), np.interp(targets, s, pts[:, 1])], axis=1)


def polyline_headings(points: np.ndarray) -> np.ndarray:
    """Heading (N,) of each polyline point: the direction of the segment leaving it (the last repeats)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) < 2:
        return np.zeros(len(pts))
    d = np.diff(pts, axis=0)
    head = np.arctan2(d[:, 1], d[:, 0])
    return np.concatenate([head, head[-1:]])


@dataclass(frozen=True, slots=True)
class Projection:
    """Where a point falls on a polyline."""

    # Arc length from the polyline's start to the foot point.
    arc_length: float
    # Positive when the point lies to the left of the driving direction.
    lateral: float
    # Heading of the segment holding the foot point.
    heading: float
    # Index of that segment's first point.
    segment: int


def project_point(points: np.ndarray, x: float, y: float, cumulative: np.ndarray | None = None) -> Projection:
    """Project (x, y) onto the nearest segment of a polyline.

    `cumulative` (from `polyline_lengths`) may be passed to avoid recomputing it on every call.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) == 0:
        raise ValueError("points: the polyline is empty")
    if len(pts) == 1:
        return Projection(0.0, 0.0, 0.0, 0)
    s = polyline_lengths(pts) if cumulative is None else cumulative
    a = pts[:-1]
    d = pts[1:] - a
    seg_len2 = np.einsum("ij,ij->i", d, d)
    seg_len2 = np.where(seg_len2 > 0, seg_len2, 1.0)
    rel = np.array([x, y]) - a
    t = np.clip(np.einsum("ij,ij->i", rel, d) / seg_len2, 0.0, 1.0)
    foot = a + d * t[:, None]
    dist2 = np.einsum("ij,ij->i", foot - [x, y], foot - [x, y])
    i = int(np.argmin(dist2))
    seg = d[i]
    heading = float(np.arctan2(seg[1], seg[0]))
    cross = seg[0] * rel[i, 1] - seg[1] * rel[i, 0]
    norm = float(np.hypot(seg[0], seg[1])) or 1.0
    lateral = float(cross / norm)
    arc = float(s[i] + t[i] * np.sqrt(seg_len2[i]))
    return Projection(arc, lateral, heading, i)


def point_in_polygon(x: float, y: float, polygon: np.ndarray) -> bool:
    """Even-odd rule point-in-polygon test (polygon M x 2, closed or not)."""
    poly = np.asarray(polygon, dtype=float)
    xs, ys = poly[:, 0], poly[:, 1]
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)
    crosses = ((ys > y) != (yj > y)) & (x < (xj - xs) * (y - ys) / np.where(yj != ys, yj - ys, 1e-12) + xs)
    return bool(np.count_nonzero(crosses) % 2)

"""Static map layers rasterised once per map and reused by every renderer.

A map never changes (`MapGeometry.name` identifies it), so the road, sidewalks, crossings and lane markings
are drawn once into a world-aligned raster; each frame then only warps the part it needs
(cv2.warpAffine / warpPerspective), which keeps a render well under a millisecond.

Raster pixel convention: column = (x - xmin) * ppm, row = (ymax - y) * ppm, integer values at pixel
centres (OpenCV's convention), so north is up in the raster.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from drivevlm.render import palette
from drivevlm.sim.world import Lane, LaneKind, MapGeometry, Strip

# Sub-pixel precision of every polygon and line drawn with OpenCV (coordinates scaled by 2**SHIFT).
SHIFT = 3
_SCALE = float(1 << SHIFT)

MARKING_WIDTH_M = 0.15
DASH_ON_M = 3.0
DASH_OFF_M = 5.0
STOP_LINE_WIDTH_M = 0.4
ZEBRA_STRIPE_M = 0.5
# Lane ends closer than this to a junction polygon get a stop line.
STOP_LINE_REACH_M = 2.0
# Two leftmost lane edges closer than this and running opposite ways share a centre line.
CENTRE_LINE_MATCH_M = 0.8
MARGIN_M = 10.0


@dataclass(frozen=True)
class RasterFrame:
    """How a world-aligned raster maps metres to pixels."""

    xmin: float
    ymax: float
    ppm: float
    width: int
    height: int

    def world_to_pixel(self) -> np.ndarray:
        """3 x 3 homogeneous matrix from world metres to raster pixels."""
        return np.array(
            [[self.ppm, 0.0, -self.xmin * self.ppm], [0.0, -self.ppm, self.ymax * self.ppm], [0.0, 0.0, 1.0]]
        )

    def pixel_to_world(self) -> np.ndarray:
        """3 x 3 homogeneous matrix from raster pixels to world metres."""
        inv = 1.0 / self.ppm
        return np.array([[inv, 0.0, self.xmin], [0.0, -inv, self.ymax], [0.0, 0.0, 1.0]])

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
        return np.stack([(pts[:, 0] - self.xmin) * self.ppm, (self.ymax - pts[:, 1]) * self.ppm], axis=1)


@dataclass(frozen=True)
class StaticLayer:
    """A rasterised static layer and its frame. `image` is H x W x C uint8 and must not be written to."""

    frame: RasterFrame
    image: np.ndarray


@dataclass(frozen=True)
class Marking:
    """One painted line: a world polyline and its style ('solid', 'dashed', 'centre' or 'stop')."""

    points: np.ndarray
    style: str


# ---------------------------------------------------------------------------------------------------------
# Geometry helpers


def offset_polyline(points: np.ndarray, offset: float) -> np.ndarray:
    """The polyline shifted sideways by `offset` metres (positive = left of the direction of travel)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) < 2:
        return pts.copy()
    d = np.diff(pts, axis=0)
    seg = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    tangents = np.empty_like(pts)
    tangents[0] = seg[0]
    tangents[-1] = seg[-1]
    # Average neighbouring segment directions so joints neither gap nor spike on gentle curves.
    tangents[1:-1] = seg[:-1] + seg[1:]
    tangents /= np.maximum(np.linalg.norm(tangents, axis=1, keepdims=True), 1e-9)
    normals = np.stack([-tangents[:, 1], tangents[:, 0]], axis=1)
    # Keep the band width at sharp joints (miter length), capped to avoid spikes.
    cos_half = np.ones(len(pts))
    cos_half[1:-1] = np.clip(np.einsum("ij,ij->i", seg[:-1], tangents[1:-1]), 0.5, 1.0)
    return pts + normals * (offset / cos_half)[:, None]


def band_polygon(points: np.ndarray, width: float) -> np.ndarray:
    """Closed outline (2N x 2) of a band of `width` metres around a centre line."""
    left = offset_polyline(points, 0.5 * width)
    right = offset_polyline(points, -0.5 * width)
    return np.concatenate([left, right[::-1]], axis=0)


def dash_pieces(points: np.ndarray, on: float, off: float) -> list[np.ndarray]:
    """Split a polyline into dashes of `on` metres separated by gaps of `off` metres."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) < 2:
        return []
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    total = s[-1]
    pieces = []
    start = 0.5 * off
    while start < total:
        end = min(start + on, total)
        inner = (s > start) & (s < end)
        ts = np.concatenate([[start], s[inner], [end]])
        pieces.append(np.stack([np.interp(ts, s, pts[:, 0]), np.interp(ts, s, pts[:, 1])], axis=1))
        start += on + off
    return pieces


def _direction(points: np.ndarray) -> np.ndarray:
    d = points[-1] - points[0]
    return d / max(float(np.linalg.norm(d)), 1e-9)


def _distance_to_polyline(point: np.ndarray, points: np.ndarray) -> float:
    a = points[:-1]
    d = points[1:] - a
    len2 = np.maximum(np.einsum("ij,ij->i", d, d), 1e-12)
    t = np.clip(np.einsum("ij,ij->i", point - a, d) / len2, 0.0, 1.0)
    foot = a + d * t[:, None]
    return float(np.min(np.linalg.norm(foot - point, axis=1)))


def lane_markings(world_map: MapGeometry) -> list[Marking]:
    """Painted lines of a map, derived from its lanes and junctions.

    Between lanes of one road: dashed white; next to a bike lane and at the outer right edge: solid white;
    at the left edge of a road whose opposite road runs alongside: the yellow centre line (drawn once);
    across lane ends that meet a junction: a stop line.
    """
    roads: dict[str, list[Lane]] = {}
    for lane in world_map.lanes:
        if len(lane.centerline) >= 2:
            roads.setdefault(lane.road_id or f"lane:{lane.id}", []).append(lane)
    marks: list[Marking] = []
    left_edges: list[tuple[str, np.ndarray]] = []
    for road_id, lanes in roads.items():
        lanes.sort(key=lambda ln: ln.index)
        first = lanes[0]
        marks.append(Marking(offset_polyline(first.centerline, -0.5 * first.width), "solid"))
        for right_lane, left_lane in itertools.pairwise(lanes):
            both_driving = right_lane.kind is LaneKind.DRIVING and left_lane.kind is LaneKind.DRIVING
            style = "dashed" if both_driving else "solid"
            marks.append(Marking(offset_polyline(right_lane.centerline, 0.5 * right_lane.width), style))
        last = lanes[-1]
        left_edges.append((road_id, offset_polyline(last.centerline, 0.5 * last.width)))
    paired: set[int] = set()
    for i, (_, edge_a) in enumerate(left_edges):
        if i in paired:
            continue
        mid_a = edge_a[len(edge_a) // 2] if len(edge_a) > 2 else edge_a.mean(axis=0)
        dir_a = _direction(edge_a)
        partner = None
        for j, (_, edge_b) in enumerate(left_edges):
            if j == i or j in paired:
                continue
            if float(np.dot(dir_a, _direction(edge_b))) > -0.8:
                continue
            if _distance_to_polyline(mid_a, edge_b) < CENTRE_LINE_MATCH_M:
                partner = j
                break
        if partner is None:
            marks.append(Marking(edge_a, "solid"))
        else:
            paired.update((i, partner))
            marks.append(Marking(edge_a, "centre"))
    junctions = [
        np.asarray(j, dtype=np.float32).reshape(-1, 1, 2) for j in world_map.junctions if len(j) >= 3
    ]
    for lane in world_map.lanes:
        if lane.kind is not LaneKind.DRIVING or len(lane.centerline) < 2 or not junctions:
            continue
        end = np.asarray(lane.centerline[-1], dtype=float)
        near = any(
            cv2.pointPolygonTest(poly, (float(end[0]), float(end[1])), True) > -STOP_LINE_REACH_M
            for poly in junctions
        )
        if near:
            direction = end - np.asarray(lane.centerline[-2], dtype=float)
            direction /= max(float(np.linalg.norm(direction)), 1e-9)
            normal = np.array([-direction[1], direction[0]])
            back = end - direction * 0.5 * STOP_LINE_WIDTH_M
            half = 0.5 * lane.width * normal
            marks.append(Marking(np.stack([back + half, back - half]), "stop"))
    return marks


def map_extent(world_map: MapGeometry) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of the map: its declared bounds, or what its geometry covers."""
    xmin, ymin, xmax, ymax = world_map.bounds
    if xmax > xmin and ymax > ymin:
        return xmin, ymin, xmax, ymax
    clouds = [ln.centerline for ln in world_map.lanes]
    clouds += [s.centerline for s in world_map.sidewalks] + [c.centerline for c in world_map.crossings]
    clouds += list(world_map.junctions)
    pts = [np.asarray(c, dtype=float).reshape(-1, 2) for c in clouds if len(c)]
    if not pts:
        return -50.0, -50.0, 50.0, 50.0
    allp = np.concatenate(pts)
    return float(allp[:, 0].min()), float(allp[:, 1].min()), float(allp[:, 0].max()), float(allp[:, 1].max())


def raster_frame(world_map: MapGeometry, ppm: float, max_pixels: int) -> RasterFrame:
    """Frame covering the map plus a margin; the resolution drops if the map is too large to hold."""
    xmin, ymin, xmax, ymax = map_extent(world_map)
    xmin, ymin, xmax, ymax = xmin - MARGIN_M, ymin - MARGIN_M, xmax + MARGIN_M, ymax + MARGIN_M
    area = (xmax - xmin) * (ymax - ymin)
    if area * ppm * ppm > max_pixels:
        ppm = float(np.sqrt(max_pixels / area))
    width = int(np.ceil((xmax - xmin) * ppm)) + 1
    height = int(np.ceil((ymax - ymin) * ppm)) + 1
    return RasterFrame(xmin=xmin, ymax=ymax, ppm=ppm, width=width, height=height)


# ---------------------------------------------------------------------------------------------------------
# Drawing into a raster


def _fixed(frame: RasterFrame, points: np.ndarray) -> np.ndarray:
    return np.round(frame.to_pixels(points) * _SCALE).astype(np.int32)


def _fill(image: np.ndarray, frame: RasterFrame, polygon: np.ndarray, colour: object) -> None:
    cv2.fillPoly(image, [_fixed(frame, polygon)], colour, lineType=cv2.LINE_AA, shift=SHIFT)


def _line(image: np.ndarray, frame: RasterFrame, points: np.ndarray, colour: object, width_m: float) -> None:
    thickness = max(1, round(width_m * frame.ppm))
    cv2.polylines(image, [_fixed(frame, points)], False, colour, thickness, cv2.LINE_AA, SHIFT)


def _zebra_stripes(crossing: Strip) -> list[np.ndarray]:
    """Stripe rectangles of a zebra crossing: bars spanning its width, repeated along the walking line."""
    pts = np.asarray(crossing.centerline, dtype=float).reshape(-1, 2)
    if len(pts) < 2:
        return []
    return [
        band_polygon(piece, crossing.width * 0.9)
        for piece in dash_pieces(pts, ZEBRA_STRIPE_M, ZEBRA_STRIPE_M)
    ]


def build_rgb_layer(world_map: MapGeometry, ppm: float, max_pixels: int) -> StaticLayer:
    """The map as an RGB picture seen from above, in the fixed legend of `palette`."""
    frame = raster_frame(world_map, ppm, max_pixels)
    image = np.empty((frame.height, frame.width, 3), dtype=np.uint8)
    image[:] = palette.TERRAIN
    for junction in world_map.junctions:
        if len(junction) >= 3:
            _fill(image, frame, junction, palette.JUNCTION)
    for lane in world_map.lanes:
        if len(lane.centerline) >= 2:
            colour = palette.ROAD if lane.kind is LaneKind.DRIVING else palette.BIKE_LANE
            _fill(image, frame, band_polygon(lane.centerline, lane.width), colour)
    for walk in world_map.sidewalks:
        if len(walk.centerline) >= 2:
            outline = band_polygon(walk.centerline, walk.width)
            _fill(image, frame, outline, palette.SIDEWALK)
            cv2.polylines(image, [_fixed(frame, outline)], True, palette.KERB, 1, cv2.LINE_AA, SHIFT)
    for crossing in world_map.crossings:
        for stripe in _zebra_stripes(crossing):
            _fill(image, frame, stripe, palette.CROSSING_STRIPE)
    marking_m = max(MARKING_WIDTH_M, 1.5 / frame.ppm)
    for mark in lane_markings(world_map):
        if mark.style == "dashed":
            for piece in dash_pieces(mark.points, DASH_ON_M, DASH_OFF_M):
                _line(image, frame, piece, palette.LANE_MARKING, marking_m)
        elif mark.style == "centre":
            _line(image, frame, mark.points, palette.CENTRE_LINE, marking_m)
        elif mark.style == "stop":
            _line(image, frame, mark.points, palette.STOP_LINE, STOP_LINE_WIDTH_M)
        else:
            _line(image, frame, mark.points, palette.LANE_MARKING, marking_m)
    image.setflags(write=False)
    return StaticLayer(frame, image)


def build_mask_layer(world_map: MapGeometry, ppm: float, max_pixels: int) -> StaticLayer:
    """Two binary channels (H x W x 2): drivable road (driving lanes and junctions) and lane markings."""
    frame = raster_frame(world_map, ppm, max_pixels)
    road = np.zeros((frame.height, frame.width), dtype=np.uint8)
    marks = np.zeros_like(road)
    for junction in world_map.junctions:
        if len(junction) >= 3:
            cv2.fillPoly(road, [_fixed(frame, junction)], 255, cv2.LINE_8, SHIFT)
    for lane in world_map.lanes:
        if lane.kind is LaneKind.DRIVING and len(lane.centerline) >= 2:
            cv2.fillPoly(
                road, [_fixed(frame, band_polygon(lane.centerline, lane.width))], 255, cv2.LINE_8, SHIFT
            )
    for mark in lane_markings(world_map):
        pieces = dash_pieces(mark.points, DASH_ON_M, DASH_OFF_M) if mark.style == "dashed" else [mark.points]
        cv2.polylines(marks, [_fixed(frame, p) for p in pieces], False, 255, 1, cv2.LINE_8, SHIFT)
    image = np.ascontiguousarray(np.stack([road, marks], axis=2))
    image.setflags(write=False)
    return StaticLayer(frame, image)


# ---------------------------------------------------------------------------------------------------------
# The cache


class StaticLayerCache:
    """Rasterised static layers keyed by (map name, layer kind, resolution), least recently used evicted.

    `builds` counts rasterisations, so callers and tests can see that a second frame reused the first's.
    """

    def __init__(self, max_entries: int = 8, max_pixels: int = 24_000_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries: must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self.max_pixels = max_pixels
        self.builds = 0
        self._entries: OrderedDict[tuple[str, str, float], StaticLayer] = OrderedDict()
        self._lock = threading.Lock()

    def rgb(self, world_map: MapGeometry, ppm: float) -> StaticLayer:
        return self._get(world_map, "rgb", ppm)

    def masks(self, world_map: MapGeometry, ppm: float) -> StaticLayer:
        return self._get(world_map, "masks", ppm)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, world_map: MapGeometry, kind: str, ppm: float) -> StaticLayer:
        key = (world_map.name, kind, float(ppm))
        with self._lock:
            layer = self._entries.get(key)
            if layer is not None:
                self._entries.move_to_end(key)
                return layer
        builder = build_rgb_layer if kind == "rgb" else build_mask_layer
        layer = builder(world_map, ppm, self.max_pixels)
        with self._lock:
            self.builds += 1
            self._entries[key] = layer
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return layer


# Shared by all renderers unless one is given its own cache.
DEFAULT_CACHE = StaticLayerCache()

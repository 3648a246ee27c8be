"""Everything static about a town, read once with sumolib and reused by every episode.

Reading a network costs a fraction of a second, so `load_town` caches one `TownData` per
(network path) in the process; the same `MapGeometry` object is handed to the renderers every episode.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from drivevlm.sim.base import SimulatorError
from drivevlm.sim.geometry import polyline_headings, polyline_lengths, resample_polyline
from drivevlm.sim.sumo.towns import town_network
from drivevlm.sim.world import Lane, LaneKind, MapGeometry, Route, Strip

# Invasion raster: 0 = free or junction, 1 = sidewalk, 2 + k = driving lane whose heading falls in bin k.
RASTER_RESOLUTION = 0.5
HEADING_BINS = 64


@dataclass(frozen=True)
class Connection:
    from_lane: int
    to_lane: int
    # Centre lines of the internal junction lanes, in order, and their ids.
    via_shapes: tuple[np.ndarray, ...]
    via_ids: tuple[str, ...]
    direction: str


@dataclass(frozen=True)
class Segment:
    """A stretch of a route: a normal edge or a junction passage, with its arc-length span."""

    kind: str  # "edge" or "junction"
    id: str  # edge id or junction (node) id
    start: float
    end: float


@dataclass(frozen=True, eq=False)
class RoutePlan:
    edges: tuple[str, ...]
    route: Route
    cumulative: np.ndarray
    segments: tuple[Segment, ...]
    # SUMO lane index of the ego on the first edge.
    depart_lane: int


@dataclass(eq=False)
class TownData:
    name: str
    net_path: Path
    map: MapGeometry
    lane_shapes: dict[str, np.ndarray]
    lane_widths: dict[str, float]
    driving_lanes: dict[str, tuple[int, ...]]
    edge_nodes: dict[str, tuple[str, str]]
    edge_lengths: dict[str, float]
    successors: dict[str, tuple[str, ...]]
    connections: dict[tuple[str, str], tuple[Connection, ...]]
    opposite: dict[str, str]
    crossings: tuple[tuple[str, np.ndarray, float, str], ...]
    sidewalk_edges: tuple[str, ...]
    # tls id -> ((link index, incoming lane id, stop-line position), ...)
    signals: dict[str, tuple[tuple[int, str, tuple[float, float]], ...]]
    raster: np.ndarray
    raster_origin: tuple[float, float]
    edge_centres: dict[str, tuple[float, float]] = field(default_factory=dict)
    # The fastest speed limit of a lane cars may use, m/s (background cars drive up to it).
    max_lane_speed: float = 13.89

    def lane_id(self, edge: str, index: int) -> str:
        return f"{edge}_{index}"


_CACHE: dict[Path, TownData] = {}


def load_town(town: str, cache_dir: str | Path | None = None) -> TownData:
    net_path = town_network(town, cache_dir).resolve()
    if net_path not in _CACHE:
        _CACHE[net_path] = _read(town, net_path)
    return _CACHE[net_path]


def _shape(lane: object) -> np.ndarray:
    return np.asarray(lane.getShape(), dtype=float)  # type: ignore[attr-defined]


def _read(town: str, net_path: Path) -> TownData:
    import sumolib

    net = sumolib.net.readNet(str(net_path), withInternal=True, withPedestrianConnections=True)
    lanes: list[Lane] = []
    sidewalks: list[Strip] = []
    crossings: list[Strip] = []
    crossing_info: list[tuple[str, np.ndarray, float, str]] = []
    walkingareas: list[np.ndarray] = []
    lane_shapes: dict[str, np.ndarray] = {}
    lane_widths: dict[str, float] = {}
    driving: dict[str, tuple[int, ...]] = {}
    max_speed = 0.0
    edge_nodes: dict[str, tuple[str, str]] = {}
    edge_lengths: dict[str, float] = {}
    sidewalk_edges: list[str] = []
    edge_centres: dict[str, tuple[float, float]] = {}
    for edge in net.getEdges(withInternal=True):
        function = edge.getFunction()
        for lane in edge.getLanes():
            lane_shapes[lane.getID()] = _shape(lane)
            lane_widths[lane.getID()] = float(lane.getWidth())
        if function == "crossing":
            lane = edge.getLanes()[0]
            strip = Strip(edge.getID(), _shape(lane), float(lane.getWidth()))
            crossings.append(strip)
            crossing_info.append((edge.getID(), strip.centerline, strip.width, edge.getFromNode().getID()))
            continue
        if function == "walkingarea":
            walkingareas.append(_shape(edge.getLanes()[0]))
            continue
        if function:
            continue
        eid = edge.getID()
        edge_nodes[eid] = (edge.getFromNode().getID(), edge.getToNode().getID())
        edge_lengths[eid] = float(edge.getLength())
        idx = []
        for lane in edge.getLanes():
            if lane.allows("passenger"):
                idx.append(lane.getIndex())
                max_speed = max(max_speed, float(lane.getSpeed()))
                lanes.append(
                    Lane(
                        lane.getID(),
                        _shape(lane),
                        float(lane.getWidth()),
                        LaneKind.DRIVING,
                        eid,
                        lane.getIndex(),
                    )
                )
            elif lane.allows("pedestrian"):
                sidewalks.append(Strip(lane.getID(), _shape(lane), float(lane.getWidth())))
                sidewalk_edges.append(eid)
        driving[eid] = tuple(idx)
        mid = _shape(edge.getLanes()[-1])
        edge_centres[eid] = (float(mid[:, 0].mean()), float(mid[:, 1].mean()))

    successors: dict[str, list[str]] = {e: [] for e in driving if driving[e]}
    connections: dict[tuple[str, str], list[Connection]] = {}
    for eid in successors:
        edge = net.getEdge(eid)
        for to_edge, conns in edge.getOutgoing().items():
            to_id = to_edge.getID()
            if to_id not in successors:
                continue
            for conn in conns:
                if not conn.getFromLane().allows("passenger") or not conn.getToLane().allows("passenger"):
                    continue
                via_ids: list[str] = []
                via = conn.getViaLaneID()
                while via:
                    via_ids.append(via)
                    outs = net.getLane(via).getOutgoing()
                    via = outs[0].getViaLaneID() if outs else ""
                found = Connection(
                    conn.getFromLane().getIndex(),
                    conn.getToLane().getIndex(),
                    tuple(lane_shapes[v] for v in via_ids),
                    tuple(via_ids),
                    conn.getDirection(),
                )
                connections.setdefault((eid, to_id), []).append(found)
            if (eid, to_id) in connections and to_id not in successors[eid]:
                successors[eid].append(to_id)
    opposite = {}
    by_nodes = {nodes: e for e, nodes in edge_nodes.items()}
    for e, (a, b) in edge_nodes.items():
        if (b, a) in by_nodes:
            opposite[e] = by_nodes[(b, a)]

    junctions = []
    for node in net.getNodes():
        shape = np.asarray(node.getShape(), dtype=float)
        if len(shape) >= 3 and node.getType() != "dead_end":
            junctions.append(shape)

    signals: dict[str, tuple[tuple[int, str, tuple[float, float]], ...]] = {}
    for tls in net.getTrafficLights():
        seen: dict[str, tuple[int, str, tuple[float, float]]] = {}
        for in_lane, _out_lane, index in tls.getConnections():
            lid = in_lane.getID()
            if lid in seen or not in_lane.allows("passenger"):
                continue
            end = lane_shapes[lid][-1]
            seen[lid] = (int(index), lid, (float(end[0]), float(end[1])))
        signals[tls.getID()] = tuple(seen.values())

    if not any(driving.values()):
        raise SimulatorError(
            f"town {town}: the network {net_path} has no lane a car may drive on (OpenStreetMap extracts "
            "keep only the connected roads open to cars)"
        )
    xmin, ymin, xmax, ymax = net.getBoundary()
    pad = 10.0
    bounds = (float(xmin) - pad, float(ymin) - pad, float(xmax) + pad, float(ymax) + pad)
    geometry = MapGeometry(
        name=f"sumo:{town}",
        lanes=tuple(lanes),
        sidewalks=tuple(sidewalks),
        crossings=tuple(crossings),
        junctions=tuple(junctions),
        bounds=bounds,
    )
    raster = _invasion_raster(lanes, sidewalks, junctions, walkingareas, bounds)
    return TownData(
        name=town,
        net_path=net_path,
        map=geometry,
        lane_shapes=lane_shapes,
        lane_widths=lane_widths,
        driving_lanes=driving,
        edge_nodes=edge_nodes,
        edge_lengths=edge_lengths,
        successors={k: tuple(v) for k, v in successors.items()},
        connections={k: tuple(v) for k, v in connections.items()},
        opposite=opposite,
        crossings=tuple(crossing_info),
        sidewalk_edges=tuple(sidewalk_edges),
        signals=signals,
        raster=raster,
        raster_origin=(bounds[0], bounds[1]),
        edge_centres=edge_centres,
        max_lane_speed=max_speed,
    )


def _to_px(points: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    px = (np.asarray(points, dtype=float) - [bounds[0], bounds[1]]) / RASTER_RESOLUTION
    return np.round(px).astype(np.int32).reshape(-1, 1, 2)


def _invasion_raster(
    lanes: list[Lane],
    sidewalks: list[Strip],
    junctions: list[np.ndarray],
    walkingareas: list[np.ndarray],
    bounds: tuple[float, float, float, float],
) -> np.ndarray:
    """Rasterise where the ego may not put a wheel: sidewalks and lanes by driving direction.

    Junction areas are cleared (lanes of every direction cross there); walking areas at the corners
    count as sidewalk. Row index is y, column index is x.
    """
    w = math.ceil((bounds[2] - bounds[0]) / RASTER_RESOLUTION) + 1
    h = math.ceil((bounds[3] - bounds[1]) / RASTER_RESOLUTION) + 1
    raster = np.zeros((h, w), dtype=np.uint8)
    for strip in sidewalks:
        thickness = max(round(strip.width / RASTER_RESOLUTION), 1)
        cv2.polylines(raster, [_to_px(strip.centerline, bounds)], False, 1, thickness)
    for lane in lanes:
        pts = lane.centerline
        heads = polyline_headings(pts)
        thickness = max(round(lane.width / RASTER_RESOLUTION), 1)
        for i in range(len(pts) - 1):
            k = round((heads[i] % (2 * math.pi)) / (2 * math.pi) * HEADING_BINS) % HEADING_BINS
            seg = _to_px(pts[i : i + 2], bounds)
            cv2.polylines(raster, [seg], False, 2 + k, thickness)
    for poly in junctions:
        cv2.fillPoly(raster, [_to_px(poly, bounds)], 0)
    for poly in walkingareas:
        if len(poly) >= 3:
            cv2.fillPoly(raster, [_to_px(poly, bounds)], 1)
    return raster


def build_route(town: TownData, edges: tuple[str, ...], depart_lane: int | None = None) -> RoutePlan:
    """Dense (~1 m) waypoints along the ego's lanes, through the internal junction lanes.

    On each edge the ego enters on the lane the previous connection leads to and leaves on the lane
    the next connection starts from; when they differ, the path blends between the two lane centres
    over the middle of the edge (a lane change).
    """
    if not edges:
        raise ValueError("route: no edges")
    chosen: list[Connection] = []
    entry = depart_lane if depart_lane is not None else town.driving_lanes[edges[0]][0]
    first_lane = entry
    for a, b in itertools.pairwise(edges):
        options = town.connections.get((a, b))
        if not options:
            raise ValueError(f"route: edge {a} does not lead to {b}")
        same = [c for c in options if c.from_lane == entry]
        conn = same[0] if same else min(options, key=lambda c: abs(c.from_lane - entry))
        chosen.append(conn)
        entry = conn.to_lane
    pieces: list[np.ndarray] = []
    ids: list[str] = []
    kinds: list[tuple[str, str]] = []
    enter = first_lane
    for i, edge in enumerate(edges):
        leave = chosen[i].from_lane if i < len(chosen) else enter
        a = resample_polyline(town.lane_shapes[town.lane_id(edge, enter)], 1.0)
        if leave != enter:
            b = resample_polyline(town.lane_shapes[town.lane_id(edge, leave)], 1.0)
            n = min(len(a), len(b))
            a, b = a[:n], b[:n]
            t = np.linspace(0.0, 1.0, n)
            ramp = np.clip((t - 0.3) / 0.4, 0.0, 1.0)
            ramp = ramp * ramp * (3 - 2 * ramp)
            a = a * (1 - ramp[:, None]) + b * ramp[:, None]
        lane_ids = [town.lane_id(edge, enter)] * len(a)
        if leave != enter:
            half = len(a) // 2
            lane_ids[half:] = [town.lane_id(edge, leave)] * (len(a) - half)
        pieces.append(a)
        ids.extend(lane_ids)
        kinds.extend([("edge", edge)] * len(a))
        if i < len(chosen):
            node = town.edge_nodes[edge][1]
            for via_id, via in zip(chosen[i].via_ids, chosen[i].via_shapes, strict=True):
                v = resample_polyline(via, 1.0)
                pieces.append(v)
                ids.extend([via_id] * len(v))
                kinds.extend([("junction", node)] * len(v))
            enter = chosen[i].to_lane
    pts = np.concatenate(pieces)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 0.05])
    pts = pts[keep]
    ids = [x for x, k in zip(ids, keep, strict=True) if k]
    kinds = [x for x, k in zip(kinds, keep, strict=True) if k]
    cumulative = polyline_lengths(pts)
    segments: list[Segment] = []
    start = 0
    for j in range(1, len(kinds) + 1):
        if j == len(kinds) or kinds[j] != kinds[start]:
            segments.append(
                Segment(kinds[start][0], kinds[start][1], float(cumulative[start]), float(cumulative[j - 1]))
            )
            start = j
    route = Route(pts, polyline_headings(pts), tuple(ids))
    return RoutePlan(tuple(edges), route, cumulative, tuple(segments), first_lane)


def random_edges(
    town: TownData, rng: np.random.Generator, min_edges: int = 4, max_edges: int = 6, turn: bool = True
) -> tuple[str, ...]:
    """A random walk over driving edges that turns at junctions now and then (never a U-turn); with
    `turn=False` (a motorway) it may follow the road straight on."""
    starts = sorted(town.successors)
    for _ in range(200):
        edges = [starts[int(rng.integers(len(starts)))]]
        target = int(rng.integers(min_edges, max_edges + 1))
        while len(edges) < target:
            nxt = [e for e in town.successors[edges[-1]] if e != town.opposite.get(edges[-1])]
            if not nxt:
                break
            edges.append(nxt[int(rng.integers(len(nxt)))])
        if len(edges) < min(min_edges, 3):
            continue
        turns = sum(
            1
            for a, b in itertools.pairwise(edges)
            if any(c.direction in ("l", "r", "L", "R") for c in town.connections[(a, b)])
        )
        if turns >= 1 or not turn:
            return tuple(edges)
    raise SimulatorError(
        f"town {town.name}: could not draw a route of at least 3 roads with a turn in "
        "200 random walks; the network is too small or has no junction to turn at"
    )

"""Scripted safety-critical events, staged relative to the ego's route so they really happen ahead of it.

Staging is pure geometry (no SUMO calls): it returns `ScriptedActor`s with a path, a speed and the ego
route position at which they start. The backend pushes their poses into SUMO so traffic reacts to them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from drivevlm.sim.geometry import polyline_lengths, project_point, resample_polyline
from drivevlm.sim.scenarios import STAGING
from drivevlm.sim.sumo.mapdata import RoutePlan, TownData
from drivevlm.sim.world import ActorKind

PEDESTRIAN_SIZE = (0.5, 0.6, 1.75)
TRUCK_SIZE = (12.0, 2.5, 3.5)
BICYCLE_SIZE = (1.8, 0.7, 1.7)
PARKED_CAR_SIZE = (4.5, 1.85, 1.5)
# A pallet crate fallen off a lorry, and a folded-out warning triangle (length, width, height).
CARGO_SIZE = (1.2, 1.0, 0.8)
TRIANGLE_SIZE = (0.2, 0.45, 0.45)


@dataclass(eq=False)
class ScriptedActor:
    id: str
    kind: ActorKind
    path: np.ndarray
    speed: float
    size: tuple[float, float, float]
    event: str | None
    # The actor starts moving once the ego's route progress passes this arc length.
    trigger_s: float
    parked: bool = False
    started: bool = False
    travelled: float = 0.0
    cumulative: np.ndarray | None = None
    # Once this far along its path it brakes at `decel_mps2` to a stop (None: constant speed).
    brake_after_m: float | None = None
    decel_mps2: float = 0.0
    current_speed: float = 0.0

    def __post_init__(self) -> None:
        self.cumulative = polyline_lengths(self.path)
        self.current_speed = self.speed

    def advance(self, dt: float) -> None:
        """Move along the path for `dt` seconds, braking once past `brake_after_m`."""
        if self.brake_after_m is not None and self.travelled >= self.brake_after_m:
            self.current_speed = max(self.current_speed - self.decel_mps2 * dt, 0.0)
        self.travelled += self.current_speed * dt

    def pose(self) -> tuple[float, float, float]:
        """Box centre and yaw at the current travelled distance (the path end once it is reached)."""
        s = self.cumulative  # type: ignore[assignment]
        d = min(self.travelled, float(s[-1]))
        i = int(np.searchsorted(s, d, side="right")) - 1
        i = min(max(i, 0), len(self.path) - 2)
        seg = self.path[i + 1] - self.path[i]
        length = float(s[i + 1] - s[i]) or 1.0
        t = (d - float(s[i])) / length
        p = self.path[i] + seg * t
        return float(p[0]), float(p[1]), math.atan2(float(seg[1]), float(seg[0]))

    @property
    def moving(self) -> bool:
        return self.started and not self.parked and self.travelled < float(self.cumulative[-1])  # type: ignore[index]


def _at(plan: RoutePlan, s: float, lateral: float = 0.0) -> np.ndarray:
    wp, cum = plan.route.waypoints, plan.cumulative
    x = float(np.interp(s, cum, wp[:, 0]))
    y = float(np.interp(s, cum, wp[:, 1]))
    i = min(int(np.searchsorted(cum, s)), len(wp) - 1)
    h = float(plan.route.headings[max(i - 1, 0)])
    return np.array([x - lateral * math.sin(h), y + lateral * math.cos(h)])


def _heading_at(plan: RoutePlan, s: float) -> float:
    i = min(int(np.searchsorted(plan.cumulative, s)), len(plan.cumulative) - 1)
    return float(plan.route.headings[max(i - 1, 0)])


def _lane_at(plan: RoutePlan, s: float) -> str:
    i = min(int(np.searchsorted(plan.cumulative, s)), len(plan.cumulative) - 1)
    return plan.route.lane_ids[i]


def _straight_spot(
    town: TownData, plan: RoutePlan, min_s: float, before_end: float
) -> tuple[float, str] | None:
    """First arc length >= min_s on a normal edge, in its rightmost lane, `before_end` m before its end."""
    for seg in plan.segments:
        if seg.kind != "edge":
            continue
        s = max(seg.start + 20.0, min_s)
        if s <= seg.end - before_end and _lane_at(plan, s) == town.lane_id(
            seg.id, town.driving_lanes[seg.id][0]
        ):
            return s, seg.id
    return None


def _pedestrian_crossing(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    spec = STAGING["pedestrian_crossing"]
    wp = plan.route.waypoints
    best: tuple[float, np.ndarray] | None = None
    for _cid, line, _width, _node in town.crossings:
        pts = resample_polyline(line, 0.5)
        d = np.linalg.norm(pts[:, None, :] - wp[None, :, :], axis=2)
        j = int(np.argmin(d.min(axis=0)))
        if d[:, j].min() > 1.0:
            continue
        s = float(plan.cumulative[j])
        if spec.at_m <= s <= plan.route.length - 10.0 and (best is None or s < best[0]):
            best = (s, line)
    if best is None:
        return None
    s, line = best
    a, b = np.asarray(line[0]), np.asarray(line[-1])
    h = _heading_at(plan, s)
    normal = np.array([-math.sin(h), math.cos(h)])
    # Walk from the right-hand kerb (seen from the ego) to the left one, onto each sidewalk.
    if float(np.dot(a - b, normal)) > 0:
        a, b = b, a
    direction = (b - a) / (np.linalg.norm(b - a) or 1.0)
    path = np.stack([a - spec.walker_out_m * direction, b + spec.walker_across_m * direction])
    ped = ScriptedActor(
        "scripted_ped",
        ActorKind.PEDESTRIAN,
        path,
        spec.speed_mps,
        PEDESTRIAN_SIZE,
        "pedestrian_crossing",
        s - spec.lead_m,
    )
    return [ped]


def _occluded_pedestrian(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    spec = STAGING["occluded_pedestrian"]
    spot = _straight_spot(town, plan, spec.at_m, 20.0)
    if spot is None:
        return None
    s, edge = spot
    half = town.lane_widths[town.lane_id(edge, town.driving_lanes[edge][0])] / 2
    h = _heading_at(plan, s)
    car_centre = _at(plan, s - spec.parked_back_m, -(half + spec.parked_out_m))
    parked = ScriptedActor(
        "scripted_parked",
        ActorKind.CAR,
        np.stack([car_centre, car_centre + np.array([math.cos(h), math.sin(h)])]),
        0.0,
        PARKED_CAR_SIZE,
        None,
        0.0,
        parked=True,
    )
    start = _at(plan, s + spec.walker_ahead_m, -(half + spec.walker_out_m))
    end = _at(plan, s + spec.walker_ahead_m, half + spec.walker_across_m)
    ped = ScriptedActor(
        "scripted_ped",
        ActorKind.PEDESTRIAN,
        np.stack([start, end]),
        spec.speed_mps,
        PEDESTRIAN_SIZE,
        "occluded_pedestrian",
        s - spec.lead_m,
    )
    return [parked, ped]


def _slow_cyclist(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    spec = STAGING["slow_cyclist"]
    if plan.route.length < 150.0:
        return None
    arcs = np.arange(spec.at_m, plan.route.length, 1.0)
    path = np.stack([_at(plan, float(a), spec.lane_offset_m) for a in arcs])
    bike = ScriptedActor(
        "scripted_bike",
        ActorKind.BICYCLE,
        path,
        spec.speed_mps,
        BICYCLE_SIZE,
        "slow_cyclist",
        spec.at_m - spec.lead_m,
    )
    return [bike]


def _joining_path(
    town: TownData, plan: RoutePlan, min_s: float, before_m: int, after_m: int
) -> tuple[float, np.ndarray] | None:
    """The first junction of the route at least `min_s` on where a road off the route joins it: (the
    junction's route position, a path over the last `before_m` metres of that road, through the junction
    and `after_m` metres along the route's next road)."""
    edges = plan.edges
    for seg in plan.segments:
        if seg.kind != "junction" or seg.start < min_s:
            continue
        idx = [i for i in range(len(edges) - 1) if town.edge_nodes[edges[i]][1] == seg.id]
        if not idx:
            continue
        route_in, route_out = edges[idx[0]], edges[idx[0] + 1]
        sides = sorted(
            e
            for e, (_a, b) in town.edge_nodes.items()
            if b == seg.id
            and e not in (route_in, town.opposite.get(route_out))
            and (e, route_out) in town.connections
        )
        if not sides:
            continue
        side = sides[0]
        conn = sorted(town.connections[(side, route_out)], key=lambda c: c.from_lane)[0]
        lane_in = town.lane_shapes[town.lane_id(side, conn.from_lane)]
        lane_in = resample_polyline(lane_in, 1.0)
        lane_in = lane_in[max(len(lane_in) - before_m, 0) :]
        lane_out = town.lane_shapes[town.lane_id(route_out, conn.to_lane)]
        lane_out = resample_polyline(lane_out, 1.0)[:after_m]
        path = np.concatenate([lane_in, *[resample_polyline(v, 1.0) for v in conn.via_shapes], lane_out])
        return seg.start, path
    return None


def _joining(
    scenario: str, kind: ActorKind, size: tuple[float, float, float], before_m: int, after_m: int
) -> Callable[[TownData, RoutePlan], list[ScriptedActor] | None]:
    """A stager for an actor that joins the route from a road off it (`_joining_path`)."""
    actor_id = "scripted_bike" if kind is ActorKind.BICYCLE else "scripted_car"

    def stage(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
        spec = STAGING[scenario]
        found = _joining_path(town, plan, spec.at_m, before_m, after_m)
        if found is None:
            return None
        at, path = found
        return [ScriptedActor(actor_id, kind, path, spec.speed_mps, size, scenario, at - spec.lead_m)]

    return stage


_cyclist_merge = _joining("cyclist_merge", ActorKind.BICYCLE, BICYCLE_SIZE, 16, 45)
_ramp_merge = _joining("ramp_merge", ActorKind.CAR, PARKED_CAR_SIZE, 80, 150)


def _oncoming_cyclist(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    spec = STAGING["oncoming_cyclist"]
    for seg in plan.segments:
        if seg.kind != "edge" or seg.id not in town.opposite:
            continue
        s = max(seg.start + 25.0, spec.at_m)
        if s > seg.end - 15.0 or _lane_at(plan, s) != town.lane_id(seg.id, town.driving_lanes[seg.id][0]):
            continue
        h = _heading_at(plan, s)
        centre = _at(plan, s)
        parked = ScriptedActor(
            "scripted_parked",
            ActorKind.CAR,
            np.stack([centre, centre + np.array([math.cos(h), math.sin(h)])]),
            0.0,
            PARKED_CAR_SIZE,
            None,
            0.0,
            parked=True,
        )
        opp = town.opposite[seg.id]
        inner = town.lane_shapes[town.lane_id(opp, town.driving_lanes[opp][-1])]
        inner = resample_polyline(inner, 1.0)
        ahead = _at(plan, min(s + spec.oncoming_ahead_m, seg.end))
        start = project_point(inner, float(ahead[0]), float(ahead[1])).arc_length
        cum = polyline_lengths(inner)
        path = inner[cum >= start]
        if len(path) < 10:
            continue
        bike = ScriptedActor(
            "scripted_bike",
            ActorKind.BICYCLE,
            path,
            spec.speed_mps,
            BICYCLE_SIZE,
            "oncoming_cyclist",
            s - spec.lead_m,
        )
        return [parked, bike]
    return None


def _car_following(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    """The lead car is driven by SUMO (it obeys the signals); here we only check the route suits it."""
    at_m = STAGING["car_following"].at_m
    signalised = [
        s for s in plan.segments if s.kind == "junction" and s.id in town.signals and s.start > at_m
    ]
    return [] if signalised else None


def _motorway_spot(town: TownData, plan: RoutePlan, min_s: float) -> tuple[float, int, int, float] | None:
    """The first route position >= min_s on a road of several lanes, 30 m clear of its end: (position,
    the ego's lane index there, the road's lane count, its lane width)."""
    for seg in plan.segments:
        lanes = town.driving_lanes.get(seg.id, ()) if seg.kind == "edge" else ()
        s = max(seg.start + 10.0, min_s)
        if len(lanes) < 2 or s > seg.end - 30.0:
            continue
        lane = _lane_at(plan, s)
        return s, int(lane.rsplit("_", 1)[1]), len(lanes), town.lane_widths[lane]
    return None


def _route_path(plan: RoutePlan, start: float, lateral: Callable[[float], float]) -> np.ndarray:
    """Points every metre along the route from `start` to its end, `lateral(arc)` metres to the left."""
    arcs = np.arange(start, plan.route.length, 1.0)
    return np.stack([_at(plan, float(a), lateral(float(a))) for a in arcs])


def _standing(
    plan: RoutePlan,
    name: str,
    kind: ActorKind,
    size: tuple[float, float, float],
    s: float,
    lateral: float = 0.0,
) -> ScriptedActor:
    """Something standing still on the route at arc length `s`, `lateral` metres left of the lane centre."""
    h = _heading_at(plan, s)
    centre = _at(plan, s, lateral)
    path = np.stack([centre, centre + np.array([math.cos(h), math.sin(h)])])
    return ScriptedActor(name, kind, path, 0.0, size, None, 0.0, parked=True)


def _standing_in_lane(
    scenario: str, name: str, kind: ActorKind, size: tuple[float, float, float]
) -> Callable[[TownData, RoutePlan], list[ScriptedActor] | None]:
    """A stager for one thing standing in the ego's lane at the scenario's place on a motorway."""

    def stage(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
        spot = _motorway_spot(town, plan, STAGING[scenario].at_m)
        return None if spot is None else [_standing(plan, name, kind, size, spot[0])]

    return stage


def _broken_down_vehicle_triangle(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    spec = STAGING["broken_down_vehicle_triangle"]
    spot = _motorway_spot(town, plan, spec.at_m)
    if spot is None:
        return None
    s = spot[0]
    triangle = _standing(
        plan,
        "scripted_triangle",
        ActorKind.WARNING_TRIANGLE,
        TRIANGLE_SIZE,
        s - spec.parked_back_m,
        spec.lane_offset_m,
    )
    return [triangle, _standing(plan, "scripted_car", ActorKind.CAR, PARKED_CAR_SIZE, s)]


def _slow_truck(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    spec = STAGING["slow_truck"]
    spot = _motorway_spot(town, plan, spec.at_m)
    if spot is None or plan.route.length - spot[0] < 100.0:
        return None
    path = _route_path(plan, spot[0], lambda _arc: 0.0)
    return [ScriptedActor("scripted_car", ActorKind.CAR, path, spec.speed_mps, TRUCK_SIZE, "slow_truck", 0.0)]


def _cut_in(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    spec = STAGING["cut_in"]
    spot = _motorway_spot(town, plan, spec.at_m)
    if spot is None or plan.route.length - spot[0] < spec.change_after_m + spec.change_over_m + 50.0:
        return None
    s, index, lanes, width = spot
    # From the lane on the ego's left, or on its right where the ego drives in the leftmost lane.
    side = width if index < lanes - 1 else -width
    begin = s + spec.change_after_m

    def lateral(arc: float) -> float:
        return side * float(np.clip(1.0 - (arc - begin) / spec.change_over_m, 0.0, 1.0))

    path = _route_path(plan, s, lateral)
    return [
        ScriptedActor("scripted_car", ActorKind.CAR, path, spec.speed_mps, PARKED_CAR_SIZE, "cut_in", 0.0)
    ]


def _hard_braking(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    """Two cars ahead in the ego's lane; the far one brakes hard, the near one after it, to a stop just
    behind it: the ego sees only the near one brake."""
    spec = STAGING["hard_braking"]
    spot = _motorway_spot(town, plan, spec.at_m)
    if spot is None:
        return None
    near_start = spot[0]
    far_start = near_start + spec.lead_car_m
    if plan.route.length - far_start < spec.brake_after_m + 150.0:
        return None
    v = spec.speed_mps
    far_stop = far_start + spec.brake_after_m + v * v / (2.0 * spec.decel_mps2)
    near_decel = 0.75 * spec.decel_mps2
    near_brake = far_stop - spec.stop_gap_m - near_start - v * v / (2.0 * near_decel)
    cars = []
    for name, start, brake, decel in (
        ("scripted_car", near_start, near_brake, near_decel),
        ("scripted_car2", far_start, spec.brake_after_m, spec.decel_mps2),
    ):
        path = _route_path(plan, start, lambda _arc: 0.0)
        car = ScriptedActor(name, ActorKind.CAR, path, v, PARKED_CAR_SIZE, "hard_braking", 0.0)
        car.brake_after_m, car.decel_mps2 = brake, decel
        cars.append(car)
    return cars


def _person_on_shoulder(town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    spec = STAGING["person_on_shoulder"]
    spot = _motorway_spot(town, plan, spec.at_m)
    if spot is None:
        return None
    s, index, _lanes, width = spot
    # Beyond the rightmost lane's edge, whatever lane the ego drives in.
    where = _at(plan, s, -(index * width + 0.5 * width + spec.walker_out_m))
    path = np.stack([where, where + 0.1])
    return [
        ScriptedActor(
            "scripted_ped", ActorKind.PEDESTRIAN, path, 0.0, PEDESTRIAN_SIZE, None, 0.0, parked=True
        )
    ]


STAGERS = {
    "pedestrian_crossing": _pedestrian_crossing,
    "occluded_pedestrian": _occluded_pedestrian,
    "slow_cyclist": _slow_cyclist,
    "cyclist_merge": _cyclist_merge,
    "oncoming_cyclist": _oncoming_cyclist,
    "car_following": _car_following,
    "broken_down_vehicle": _standing_in_lane(
        "broken_down_vehicle", "scripted_car", ActorKind.CAR, PARKED_CAR_SIZE
    ),
    "broken_down_vehicle_triangle": _broken_down_vehicle_triangle,
    "lost_cargo": _standing_in_lane("lost_cargo", "scripted_cargo", ActorKind.OBSTACLE, CARGO_SIZE),
    "slow_truck": _slow_truck,
    "cut_in": _cut_in,
    "ramp_merge": _ramp_merge,
    "hard_braking": _hard_braking,
    "person_on_shoulder": _person_on_shoulder,
}


def stage(scenario: str, town: TownData, plan: RoutePlan) -> list[ScriptedActor] | None:
    """Scripted actors for `scenario` on this route, or None when the route does not suit it."""
    if scenario == "random":
        return []
    return STAGERS[scenario](town, plan)

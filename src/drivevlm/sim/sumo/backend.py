"""The SUMO backend: libsumo traffic around our own kinematic-bicycle ego, with scripted events.

libsumo runs one simulation per process, so only one live `SumoBackend` may exist per process
(parallel envs need subprocesses). Each reset restarts SUMO with the episode seed, so an episode is a
pure function of (spec, seed). Lane invasion means an ego box corner on a sidewalk (or a walking area
at a junction corner) or on a lane whose driving direction is opposite to the ego's heading; junction
areas never count.
"""

from __future__ import annotations

import contextlib
import math
import weakref
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from drivevlm.sim.base import EpisodeSpec, SimulatorError
from drivevlm.sim.ego_dynamics import BicycleParams, BicycleState, check_control, step_bicycle
from drivevlm.sim.geometry import box_corners, boxes_overlap, project_point
from drivevlm.sim.scenarios import SCENARIOS, STAGING, TOWNS, Density, check_choice, check_town
from drivevlm.sim.sumo import scripted
from drivevlm.sim.sumo.mapdata import (
    HEADING_BINS,
    RASTER_RESOLUTION,
    RoutePlan,
    TownData,
    build_route,
    load_town,
    random_edges,
)
from drivevlm.sim.world import (
    Actor,
    ActorKind,
    Collision,
    Control,
    EgoState,
    Pose,
    StepEvents,
    TrafficLight,
    WorldState,
)

EGO_ID = "ego"
LEAD_ID = "scripted_lead"
EVAL_ROUTES_PER_TOWN = 10
TOP_UP_EVERY = 15
SPAWN_RADIUS = 150.0

# SUMO vehicle type -> (kind, length, width, height, vClass, max speed).
_TYPES: dict[str, tuple[ActorKind, float, float, float, str, float]] = {
    "npc_car": (ActorKind.CAR, 4.5, 1.8, 1.5, "passenger", 13.9),
    "npc_moto": (ActorKind.MOTORCYCLE, 2.2, 0.8, 1.5, "motorcycle", 13.9),
    "npc_bike": (ActorKind.BICYCLE, 1.8, 0.7, 1.7, "bicycle", 5.0),
    "lead_car": (ActorKind.CAR, 4.5, 1.8, 1.5, "passenger", STAGING["car_following"].speed_mps),
    "scripted_car": (ActorKind.CAR, *scripted.PARKED_CAR_SIZE, "passenger", 13.9),
    "scripted_bike": (ActorKind.BICYCLE, *scripted.BICYCLE_SIZE, "bicycle", 5.0),
}
_PED_TYPES: dict[str, tuple[ActorKind, float, float, float]] = {
    "npc_ped": (ActorKind.PEDESTRIAN, *scripted.PEDESTRIAN_SIZE),
    "scripted_ped": (ActorKind.PEDESTRIAN, *scripted.PEDESTRIAN_SIZE),
}
_LIGHT = {"G": "g", "g": "g", "y": "y", "Y": "y", "u": "y", "r": "r", "R": "r", "s": "r", "o": "g", "O": "g"}

_live: weakref.ref[SumoBackend] | None = None


def _sumo_angle(yaw: float) -> float:
    return (90.0 - math.degrees(yaw)) % 360.0


def _yaw(angle: float) -> float:
    return (math.radians(90.0 - angle) + math.pi) % (2.0 * math.pi) - math.pi


def _turning_routes(town: str) -> bool:
    """Urban routes must turn somewhere; on a motorway they follow the carriageway."""
    return TOWNS[town].kind != "highway" if town in TOWNS else True


@lru_cache(maxsize=64)
def _routes_for(town: str, scenario: str, cache_key: str | None) -> tuple[tuple[str, ...], ...]:
    data = load_town(town, cache_key)
    rng = np.random.default_rng(zlib.crc32(f"{town}:{scenario}".encode()))
    found: list[tuple[str, ...]] = []
    for _ in range(2000):
        edges = random_edges(data, rng, turn=_turning_routes(town))
        if edges in found:
            continue
        plan = build_route(data, edges)
        if plan.route.length >= 150.0 and scripted.stage(scenario, data, plan) is not None:
            found.append(edges)
        if len(found) == EVAL_ROUTES_PER_TOWN:
            return tuple(found)
    raise SimulatorError(
        f"town {town}: only {len(found)} of the {EVAL_ROUTES_PER_TOWN} evaluation routes for scenario "
        f"{scenario} found in 2000 random routes (each at least 150 m long, with room to stage {scenario}); "
        "the network is too small or lacks what it needs (sidewalks, crossings, side roads, signals)"
    )


def evaluation_routes(
    town: str, scenario: str = "random", cache_dir: str | Path | None = None
) -> tuple[tuple[str, ...], ...]:
    """The town's fixed evaluation routes (edge lists) for a scenario; deterministic across runs."""
    check_town(town)
    check_choice("scenario", scenario, SCENARIOS)
    return _routes_for(town, scenario, None if cache_dir is None else str(cache_dir))


class SumoBackend:
    """Simulator backend on libsumo. `cache_dir` holds generated towns (default ~/.cache/drivevlm)."""

    def __init__(self, cache_dir: str | Path | None = None, context_radius: float = 60.0) -> None:
        global _live
        other = _live() if _live is not None else None
        if other is not None and other is not self and not other._closed:
            raise SimulatorError(
                "libsumo runs one simulation per process and another SumoBackend is still open: "
                "close() it first, or run each environment in its own subprocess"
            )
        _live = weakref.ref(self)
        self._cache_dir = None if cache_dir is None else str(cache_dir)
        self._radius = float(context_radius)
        self._closed = False
        self._running = False
        self._params = BicycleParams()
        self._town: TownData | None = None
        self._plan: RoutePlan | None = None
        self._scripted: list[scripted.ScriptedActor] = []
        self._lights: tuple[TrafficLight, ...] = ()
        self._light_states: dict[str, str] = {}

    # ---- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop SUMO; safe to call any number of times."""
        global _live
        self._stop()
        self._closed = True
        if _live is not None and _live() is self:
            _live = None

    def _stop(self) -> None:
        import libsumo

        if self._running:
            self._running = False
            with contextlib.suppress(Exception):
                libsumo.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    # ---- reset -----------------------------------------------------------------------------------

    def reset(self, spec: EpisodeSpec, seed: int) -> WorldState:
        if self._closed:
            raise SimulatorError("this SumoBackend was closed; build a new one")
        check_town(spec.town)
        check_choice("scenario", spec.scenario, SCENARIOS)
        density = Density(check_choice("density", spec.density, [d.value for d in Density]))
        if not (isinstance(spec.dt, float | int) and 0 < spec.dt <= 1.0):
            raise ValueError(f"dt: must be in (0, 1] seconds, got {spec.dt!r}")
        self._spec = spec
        self._dt = float(spec.dt)
        self._density = density
        self._rng = np.random.default_rng(seed)
        town = load_town(spec.town, self._cache_dir)
        self._town = town
        self._plan, self._scripted = self._choose_route(spec)
        self._stop()
        try:
            self._start(seed)
            return self._observe(())
        except SimulatorError:
            self._stop()
            raise
        except Exception as error:
            self._stop()
            raise SimulatorError(
                f"SUMO failed during reset of {spec.town}/{spec.scenario}: {error}"
            ) from error

    def _choose_route(self, spec: EpisodeSpec) -> tuple[RoutePlan, list[scripted.ScriptedActor]]:
        town = self._town
        assert town is not None
        if spec.route_index is not None:
            routes = evaluation_routes(spec.town, spec.scenario, self._cache_dir)
            if not 0 <= spec.route_index < len(routes):
                raise ValueError(f"route_index: must be in [0, {len(routes) - 1}], got {spec.route_index}")
            plan = build_route(town, routes[spec.route_index])
            actors = scripted.stage(spec.scenario, town, plan)
            assert actors is not None
            return plan, actors
        for _ in range(500):
            plan = build_route(town, random_edges(town, self._rng, turn=_turning_routes(self._spec.town)))
            if plan.route.length < 150.0:
                continue
            actors = scripted.stage(spec.scenario, town, plan)
            if actors is not None:
                return plan, actors
        raise SimulatorError(
            f"town {spec.town}: none of 500 random routes suits scenario {spec.scenario} (at least 150 m "
            "long, with room to stage it); the network is too small or lacks what the scenario needs"
        )

    def _start(self, seed: int) -> None:
        import libsumo
        import sumolib
        from libsumo import constants as tc

        town, plan = self._town, self._plan
        assert town is not None and plan is not None
        libsumo.start(
            [
                sumolib.checkBinary("sumo"),
                "-n", str(town.net_path),
                "--step-length", repr(self._dt),
                "--seed", str(int(seed) % 2**31),
                "--collision.action", "none",
                "--time-to-teleport", "-1",
                "--xml-validation", "never",
                "--no-step-log", "true",
                "--no-warnings", "true",
                "--duration-log.disable", "true",
                "--pedestrian.model", "striping",
            ]
        )  # fmt: skip
        self._running = True
        for name, (_kind, length, width, height, vclass, vmax) in _TYPES.items():
            base = "DEFAULT_BIKETYPE" if vclass == "bicycle" else "DEFAULT_VEHTYPE"
            libsumo.vehicletype.copy(base, name)
            libsumo.vehicletype.setVehicleClass(name, vclass)
            libsumo.vehicletype.setLength(name, length)
            libsumo.vehicletype.setWidth(name, width)
            libsumo.vehicletype.setHeight(name, height)
            # Background cars and motorcycles may reach the town's fastest limit (a motorway's 120 km/h).
            fast = vclass != "bicycle" and name.startswith("npc_")
            libsumo.vehicletype.setMaxSpeed(name, max(vmax, town.max_lane_speed) if fast else vmax)
        for name, (_kind, length, width, height) in _PED_TYPES.items():
            libsumo.vehicletype.copy("DEFAULT_PEDTYPE", name)
            libsumo.vehicletype.setLength(name, length)
            libsumo.vehicletype.setWidth(name, width)
            libsumo.vehicletype.setHeight(name, height)
        libsumo.vehicletype.copy("DEFAULT_VEHTYPE", "ego")
        libsumo.vehicletype.setLength("ego", 4.6)
        libsumo.vehicletype.setWidth("ego", 1.9)
        self._counter = 0
        self._step = 0
        self._time = 0.0
        self._progress_index = 0
        self._lead_seen = False
        self._triggered_pending: list[str] = []
        libsumo.route.add("ego_route", list(plan.edges))
        libsumo.vehicle.add(
            EGO_ID, "ego_route", typeID="ego", departLane=str(plan.depart_lane), departPos="0"
        )
        if self._spec.scenario == "car_following":
            libsumo.vehicle.add(
                LEAD_ID, "ego_route", typeID="lead_car", departLane=str(plan.depart_lane),
                departPos=f"{STAGING['car_following'].lead_car_m:g}", departSpeed="0",
            )  # fmt: skip
        libsumo.simulationStep()
        libsumo.vehicle.setSpeedMode(EGO_ID, 0)
        libsumo.vehicle.setLaneChangeMode(EGO_ID, 0)
        wp, head = plan.route.waypoints, plan.route.headings
        start = wp[min(3, len(wp) - 1)]
        self._ego = BicycleState(
            Pose(float(start[0]), float(start[1]), float(head[min(3, len(wp) - 1)])), 0.0
        )
        self._push_ego()
        vars_ = [tc.VAR_POSITION, tc.VAR_ANGLE, tc.VAR_SPEED, tc.VAR_TYPE]
        libsumo.vehicle.subscribeContext(EGO_ID, tc.CMD_GET_VEHICLE_VARIABLE, self._radius, vars_)
        libsumo.vehicle.subscribeContext(EGO_ID, tc.CMD_GET_PERSON_VARIABLE, self._radius, vars_)
        for tls in town.signals:
            libsumo.trafficlight.subscribe(tls, [tc.TL_RED_YELLOW_GREEN_STATE])
        for actor in self._scripted:
            if self._in_sumo(actor):
                self._add_scripted(actor)
        self._top_up(initial=True)
        libsumo.simulationStep()
        self._time = libsumo.simulation.getTime()

    # ---- background traffic ----------------------------------------------------------------------

    def _near_edges(self) -> list[str]:
        town = self._town
        assert town is not None
        x, y = self._ego.pose.x, self._ego.pose.y
        near = [
            e
            for e, (cx, cy) in town.edge_centres.items()
            if (cx - x) ** 2 + (cy - y) ** 2 < SPAWN_RADIUS**2 and e in town.successors
        ]
        return sorted(near) or sorted(town.successors)

    def _top_up(self, initial: bool = False) -> None:
        """Keep the density's counts of cars, bicycles and pedestrians alive around the ego."""
        import libsumo

        town = self._town
        assert town is not None
        ids = libsumo.vehicle.getIDList()
        pending = libsumo.simulation.getPendingVehicles()
        vehicles = sum(1 for v in (*ids, *pending) if v.startswith(("car_", "moto_")))
        bikes = sum(1 for v in (*ids, *pending) if v.startswith("bike_"))
        # No people or bicycles where there are no sidewalks (a motorway).
        vrus = self._spec.scenario != "car_following" and bool(town.sidewalk_edges)
        want_vehicles = self._density.vehicles
        want_bikes = self._density.bicycles if vrus else 0
        want_peds = self._density.pedestrians if vrus else 0
        edges = self._near_edges()
        rng = self._rng
        for _ in range(max(want_vehicles - vehicles, 0)):
            moto = rng.random() < 0.15
            self._add_vehicle("moto" if moto else "car", "npc_moto" if moto else "npc_car", edges, initial)
        for _ in range(max(want_bikes - bikes, 0)):
            self._add_vehicle("bike", "npc_bike", edges, initial)
        if want_peds:
            peds = sum(1 for p in libsumo.person.getIDList() if p.startswith("ped_"))
            walk_edges = [e for e in edges if e in set(town.sidewalk_edges)] or list(town.sidewalk_edges)
            for _ in range(max(want_peds - peds, 0)):
                self._add_person(walk_edges)

    def _add_vehicle(self, prefix: str, vtype: str, edges: list[str], initial: bool) -> None:
        import libsumo

        town = self._town
        assert town is not None
        start = edges[int(self._rng.integers(len(edges)))]
        walk = [start]
        for _ in range(int(self._rng.integers(3, 7))):
            nxt = [e for e in town.successors.get(walk[-1], ()) if e != town.opposite.get(walk[-1])]
            if not nxt:
                break
            walk.append(nxt[int(self._rng.integers(len(nxt)))])
        self._counter += 1
        vid = f"{prefix}_{self._counter}"
        libsumo.route.add(f"r_{vid}", walk)
        libsumo.vehicle.add(
            vid, f"r_{vid}", typeID=vtype, departPos="random_free" if initial else "random",
            departLane="best" if prefix != "bike" else "first", departSpeed="desired" if initial else "0",
        )  # fmt: skip

    def _add_person(self, edges: list[str]) -> None:
        import libsumo

        town = self._town
        assert town is not None
        a = edges[int(self._rng.integers(len(edges)))]
        b = town.sidewalk_edges[int(self._rng.integers(len(town.sidewalk_edges)))]
        if a == b:
            return
        found = libsumo.simulation.findRoute(a, b, vType="npc_ped")
        walk = [e for e in found.edges if not e.startswith(":")]
        if len(walk) < 1:
            return
        self._counter += 1
        pid = f"ped_{self._counter}"
        pos = float(self._rng.uniform(0.0, town.edge_lengths[a]))
        libsumo.person.add(pid, a, pos, typeID="npc_ped")
        libsumo.person.appendWalkingStage(pid, walk, float(self._rng.uniform(0.0, town.edge_lengths[b])))

    def _in_sumo(self, actor: scripted.ScriptedActor) -> bool:
        """A scripted person needs a sidewalk to exist in SUMO; on a motorway they are ours alone (our
        renderers and collision check see them, background traffic does not). So is a warning triangle,
        too small for SUMO's traffic to stop for; lost cargo stands in SUMO as a stopped car would."""
        town = self._town
        assert town is not None
        if actor.kind is ActorKind.WARNING_TRIANGLE:
            return False
        return actor.kind is not ActorKind.PEDESTRIAN or bool(town.sidewalk_edges)

    def _add_scripted(self, actor: scripted.ScriptedActor) -> None:
        import libsumo

        x, y, _ = actor.pose()
        if actor.kind is ActorKind.PEDESTRIAN:
            edge = min(self._town.sidewalk_edges, key=lambda e: _dist2(self._town.edge_centres[e], x, y))  # type: ignore[union-attr]
            libsumo.person.add(actor.id, edge, 0.0, typeID="scripted_ped")
            libsumo.person.appendWaitingStage(actor.id, 1e6)
        else:
            vtype = "scripted_bike" if actor.kind.is_vulnerable else "scripted_car"
            libsumo.vehicle.add(actor.id, "ego_route", typeID=vtype, departPos="0", departLane="free")
            libsumo.vehicle.setSpeedMode(actor.id, 0)

    def _push_scripted(self, actor: scripted.ScriptedActor) -> None:
        """Move a scripted actor in SUMO so background traffic sees it (vehicles only once inserted)."""
        import libsumo

        x, y, yaw = actor.pose()
        half = 0.5 * actor.size[0]
        fx, fy = x + half * math.cos(yaw), y + half * math.sin(yaw)
        if actor.kind is ActorKind.PEDESTRIAN:
            libsumo.person.moveToXY(actor.id, "", fx, fy, _sumo_angle(yaw), keepRoute=2)
        else:
            libsumo.vehicle.moveToXY(actor.id, "", -1, fx, fy, _sumo_angle(yaw), keepRoute=2)

    # ---- step ------------------------------------------------------------------------------------

    def _push_ego(self) -> None:
        import libsumo

        p = self._ego.pose
        fx = p.x + 2.3 * math.cos(p.yaw)
        fy = p.y + 2.3 * math.sin(p.yaw)
        try:
            libsumo.vehicle.moveToXY(EGO_ID, "", -1, fx, fy, _sumo_angle(p.yaw), keepRoute=2)
        except libsumo.TraCIException as error:
            if "not known" in str(error):
                raise
            # Far off every lane SUMO cannot map the ego; our model keeps driving it regardless.

    def step(self, control: Control) -> WorldState:
        if not self._running:
            raise SimulatorError("SUMO is not running: call reset() first (after close() or a failure too)")
        control = check_control(control)
        import libsumo

        try:
            self._ego = step_bicycle(self._ego, control, self._dt, self._params)
            self._push_ego()
            progress = self._progress()
            triggered = []
            for actor in self._scripted:
                if not actor.started and progress >= actor.trigger_s:
                    actor.started = True
                    if actor.event:
                        triggered.append(actor.event)
                if actor.moving:
                    actor.advance(self._dt)
                if (not actor.parked or self._step < 2) and self._in_sumo(actor):
                    self._push_scripted(actor)
            self._step += 1
            if self._step % TOP_UP_EVERY == 0:
                self._top_up()
            libsumo.simulationStep()
            self._time = libsumo.simulation.getTime()
            return self._observe(tuple(triggered))
        except SimulatorError:
            self._stop()
            raise
        except Exception as error:
            self._stop()
            raise SimulatorError(f"SUMO failed at step {self._step}: {error}") from error

    def _progress(self) -> float:
        """Arc length of the ego along its route, searched near the previous match (cheap)."""
        plan = self._plan
        assert plan is not None
        lo = max(self._progress_index - 5, 0)
        hi = min(self._progress_index + 40, len(plan.route.waypoints))
        proj = project_point(plan.route.waypoints[lo:hi], self._ego.pose.x, self._ego.pose.y)
        self._progress_index = lo + proj.segment
        return float(plan.cumulative[lo]) + proj.arc_length

    def _observe(self, triggered: tuple[str, ...]) -> WorldState:
        import libsumo

        ego = self._ego
        results = libsumo.vehicle.getContextSubscriptionResults(EGO_ID)
        actors: list[Actor] = []
        scripted_ids = {a.id for a in self._scripted}
        for aid, values in results.items():
            if aid == EGO_ID or aid in scripted_ids:
                continue
            vtype = values[79]
            info = _TYPES.get(vtype) or _PED_TYPES.get(vtype)
            if info is None:
                continue
            kind, length, width, height = info[0], info[1], info[2], info[3]
            yaw = _yaw(values[67])
            fx, fy = values[66]
            half = 0.5 * length
            pose = Pose(fx - half * math.cos(yaw), fy - half * math.sin(yaw), yaw)
            is_lead = aid == LEAD_ID
            if is_lead and not self._lead_seen and self._step > 0:
                self._lead_seen = True
                triggered = (*triggered, "car_following")
            actors.append(Actor(aid, kind, pose, values[64], length, width, height, scripted=is_lead))
        for actor in self._scripted:
            x, y, yaw = actor.pose()
            length, width, height = actor.size
            speed = actor.current_speed if actor.moving else 0.0
            actors.append(
                Actor(
                    actor.id,
                    actor.kind,
                    Pose(x, y, yaw),
                    speed,
                    length,
                    width,
                    height,
                    scripted=True,
                    parked=actor.parked,
                )
            )
        ego_state = EgoState(ego.pose, ego.speed, ego.steer, ego.throttle)
        events = StepEvents(self._collisions(ego_state, actors), self._lane_invasion(ego_state), triggered)
        plan = self._plan
        assert plan is not None
        return WorldState(
            time=self._time,
            step=self._step,
            ego=ego_state,
            actors=tuple(actors),
            map=self._town.map,  # type: ignore[union-attr]
            route=plan.route,
            events=events,
            traffic_lights=self._traffic_lights(),
        )

    def _collisions(self, ego: EgoState, actors: list[Actor]) -> tuple[Collision, ...]:
        p = ego.pose
        box = (p.x, p.y, p.yaw, ego.length, ego.width)
        evx, evy = ego.speed * math.cos(p.yaw), ego.speed * math.sin(p.yaw)
        hits = []
        for a in actors:
            dx, dy = a.pose.x - p.x, a.pose.y - p.y
            if dx * dx + dy * dy > 64.0:
                continue
            if boxes_overlap(box, (a.pose.x, a.pose.y, a.pose.yaw, a.length, a.width)):
                avx, avy = a.speed * math.cos(a.pose.yaw), a.speed * math.sin(a.pose.yaw)
                rel = math.hypot(evx - avx, evy - avy) * 3.6
                hits.append(Collision(a.id, a.kind, ego.speed * 3.6, rel))
        return tuple(hits)

    def _lane_invasion(self, ego: EgoState) -> bool:
        town = self._town
        assert town is not None
        raster = town.raster
        ox, oy = town.raster_origin
        p = ego.pose
        for cx, cy in box_corners(p.x, p.y, p.yaw, ego.length, ego.width):
            col = round((cx - ox) / RASTER_RESOLUTION)
            row = round((cy - oy) / RASTER_RESOLUTION)
            if not (0 <= row < raster.shape[0] and 0 <= col < raster.shape[1]):
                continue
            code = int(raster[row, col])
            if code == 1:
                return True
            if code >= 2:
                lane_heading = (code - 2) * 2.0 * math.pi / HEADING_BINS
                if math.cos(lane_heading - p.yaw) < -0.5:
                    return True
        return False

    def _traffic_lights(self) -> tuple[TrafficLight, ...]:
        """Signal heads per incoming lane; rebuilt only when some signal changed state."""
        import libsumo

        town = self._town
        assert town is not None
        states = libsumo.trafficlight.getAllSubscriptionResults()
        changed = False
        for tls, values in states.items():
            state = values[0x5B] if 0x5B in values else next(iter(values.values()))
            if self._light_states.get(tls) != state:
                self._light_states[tls] = state
                changed = True
        if changed or not self._lights:
            lights = []
            for tls, links in town.signals.items():
                state = self._light_states.get(tls, "")
                for index, lane, pos in links:
                    char = state[index] if index < len(state) else "r"
                    lights.append(TrafficLight(f"{tls}:{lane}", pos, _LIGHT.get(char, "r")))
            self._lights = tuple(lights)
        return self._lights

    @property
    def route_plan(self) -> RoutePlan | None:
        """The current episode's route with its edge list and arc-length segments (for tests and tools)."""
        return self._plan


def _dist2(c: tuple[float, float], x: float, y: float) -> float:
    return (c[0] - x) ** 2 + (c[1] - y) ** 2

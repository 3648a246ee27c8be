"""Scene descriptions in plain English, read from the simulator state.

They are the text side of the bundled image-text model's training pairs: what is where around the ego,
how it moves, and whether a collision happened or is about to. The BEV text covers all directions;
the front text covers only what the front camera can see.
"""

from __future__ import annotations

import math

import numpy as np

from drivevlm.data.risk import HALF_FOV_DEG, describe_risk
from drivevlm.sim.geometry import world_to_ego
from drivevlm.sim.world import ActorKind, WorldState

# Actors farther than this are left out of the BEV text (the BEV picture covers a few tens of metres).
BEV_RANGE_M = 30.0
MAX_LISTED = 3

_NOUN = {
    ActorKind.CAR: "a car",
    ActorKind.PEDESTRIAN: "a pedestrian",
    ActorKind.BICYCLE: "a cyclist",
    ActorKind.MOTORCYCLE: "a motorcyclist",
    ActorKind.OBSTACLE: "a crate of lost cargo",
    ActorKind.WARNING_TRIANGLE: "a warning triangle",
}


def _direction(x: float, y: float) -> str:
    bearing = math.degrees(math.atan2(y, x))
    if abs(bearing) <= 30:
        return "ahead"
    if abs(bearing) >= 150:
        return "behind"
    if bearing > 0:
        return "ahead on the left" if bearing < 75 else "on the left"
    return "ahead on the right" if bearing > -75 else "on the right"


def _motion(speed: float, parked: bool, relative_yaw: float) -> str:
    if parked or speed < 0.3:
        return "standing still"
    rel = (relative_yaw + math.pi) % (2 * math.pi) - math.pi
    if abs(rel) < math.radians(35):
        return "moving the same way"
    if abs(rel) > math.radians(145):
        return "coming towards us"
    return "crossing"


def collision_sentence(collided: bool, collision_soon: bool) -> str:
    """The safety verdict every description ends with."""
    if collided:
        return "A collision has happened: the ego car crashed."
    if collision_soon:
        return "A collision is about to happen within two seconds."
    return "There is no collision."


def describe_bev(state: WorldState, collision_soon: bool = False) -> str:
    """A top-down account: ego speed, the nearest actors around with distance, direction and motion."""
    ego = state.ego
    parts = [f"Top-down view: the ego car drives at {ego.speed * 3.6:.0f} km/h."]
    if state.actors:
        local = world_to_ego(np.array([(a.pose.x, a.pose.y) for a in state.actors]), *_ego_xyyaw(state))
        distance = np.hypot(local[:, 0], local[:, 1])
        order = [int(i) for i in np.argsort(distance) if distance[i] < BEV_RANGE_M][:MAX_LISTED]
        for i in order:
            actor = state.actors[i]
            motion = _motion(actor.speed, actor.parked, actor.pose.yaw - ego.pose.yaw)
            where = _direction(float(local[i, 0]), float(local[i, 1]))
            parts.append(f"{_NOUN[actor.kind].capitalize()} is {distance[i]:.0f} m {where}, {motion}.")
        if not order:
            parts.append("No other road users are nearby.")
    else:
        parts.append("No other road users are nearby.")
    parts.append(collision_sentence(bool(state.events.collisions), collision_soon))
    return " ".join(parts)


def describe_front(state: WorldState, collision_soon: bool = False) -> str:
    """The front camera's account: the most relevant visible actor (risk.py's sentence) and the verdict."""
    risk = describe_risk(state)
    count = _visible_count(state)
    extra = f" {count} road users are in view." if count > 1 else ""
    return f"{risk.description}{extra} {collision_sentence(bool(state.events.collisions), collision_soon)}"


def _ego_xyyaw(state: WorldState) -> tuple[float, float, float]:
    pose = state.ego.pose
    return pose.x, pose.y, pose.yaw


def _visible_count(state: WorldState, max_m: float = 40.0) -> int:
    if not state.actors:
        return 0
    local = world_to_ego(np.array([(a.pose.x, a.pose.y) for a in state.actors]), *_ego_xyyaw(state))
    distance = np.hypot(local[:, 0], local[:, 1])
    bearing = np.degrees(np.arctan2(local[:, 1], local[:, 0]))
    return int(np.count_nonzero((local[:, 0] > 1.0) & (np.abs(bearing) < HALF_FOV_DEG) & (distance < max_m)))

"""Ground-truth risk of a driving moment, read from the simulator state, in words and as a category.

This is what a perfect dynamic-pathway VLM would say about the front camera's view. It labels the
training data of the bundled small models and scores any VLM's answers (`category_of_description`).
Categories: none, or the most relevant actor's kind (vehicle / pedestrian / cyclist / obstacle: debris
or a warning triangle on a motorway) and whether it is near or far. With `path_half_width_m`, only actors
in the ego's path or about to enter it count: a person on the sidewalk walking along the road is no risk,
and the answer is the clear-road sentence.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from drivevlm.sim.geometry import world_to_ego
from drivevlm.sim.world import Actor, ActorKind, WorldState

NEAR_M = 15.0
FAR_M = 40.0
# Half the front camera's horizontal field of view (the renderer's default is 90 degrees).
HALF_FOV_DEG = 45.0
# The ego's path: a corridor this wide either side of its heading line (as the reward fidelity's ground
# truth), and how soon an actor moving towards it must reach it to count as entering it.
PATH_HALF_WIDTH_M = 2.5
PATH_HORIZON_S = 2.0

RISK_KINDS = ("vehicle", "pedestrian", "cyclist", "obstacle")
RISK_CATEGORIES = ("none", *(f"{kind}_{band}" for kind in RISK_KINDS for band in ("near", "far")))

_KIND_OF_ACTOR = {
    ActorKind.CAR: "vehicle",
    ActorKind.PEDESTRIAN: "pedestrian",
    ActorKind.BICYCLE: "cyclist",
    ActorKind.MOTORCYCLE: "cyclist",
    ActorKind.OBSTACLE: "obstacle",
    ActorKind.WARNING_TRIANGLE: "obstacle",
}
# Vulnerable road users outrank vehicles at the same band: they are what the dynamic pathway is for; an
# object lying in the lane comes next (it does not move out of the way).
_PRIORITY = {"pedestrian": 0, "cyclist": 1, "obstacle": 2, "vehicle": 3}

CLEAR_DESCRIPTION = "The road ahead is clear with no obstacles."


@dataclass(frozen=True, slots=True)
class Risk:
    category: str
    description: str
    actor_id: str | None = None
    distance_m: float = math.inf


def _motion(actor: Actor, ego_yaw: float) -> str:
    """How the actor moves relative to the ego's heading: crossing, oncoming, ahead (same way) or still."""
    if actor.speed < 0.3 or actor.parked:
        return "still"
    relative = (actor.pose.yaw - ego_yaw + math.pi) % (2 * math.pi) - math.pi
    if abs(relative) < math.radians(35):
        return "same"
    if abs(relative) > math.radians(145):
        return "oncoming"
    return "crossing"


_PHRASES = {
    ("pedestrian", "crossing"): "A pedestrian is crossing the road",
    ("pedestrian", "still"): "A pedestrian is standing by the road",
    ("pedestrian", "same"): "A pedestrian is walking along the road",
    ("pedestrian", "oncoming"): "A pedestrian is walking towards the car",
    ("cyclist", "crossing"): "A cyclist is crossing the road",
    ("cyclist", "still"): "A cyclist is stopped on the road",
    ("cyclist", "same"): "A cyclist is riding in the lane",
    ("cyclist", "oncoming"): "A cyclist is riding towards the car",
    ("vehicle", "crossing"): "A car is crossing the road",
    ("vehicle", "still"): "A car is stopped on the road",
    ("vehicle", "same"): "A car is driving in the lane",
    ("vehicle", "oncoming"): "A car is coming towards the car",
}
# Objects on the road never move: their sentence says what they are.
_HAZARD_PHRASES = {
    ActorKind.OBSTACLE: "Debris is lying on the road",
    ActorKind.WARNING_TRIANGLE: "A warning triangle stands on the road",
}


def in_or_entering_path(
    state: WorldState, half_width_m: float = PATH_HALF_WIDTH_M, horizon_s: float = PATH_HORIZON_S
) -> np.ndarray:
    """Per actor: in the corridor `half_width_m` either side of the ego's heading line, or moving towards
    it fast enough to reach it within `horizon_s`."""
    if not state.actors:
        return np.zeros(0, dtype=bool)
    ego = state.ego.pose
    local = world_to_ego(np.array([(a.pose.x, a.pose.y) for a in state.actors]), ego.x, ego.y, ego.yaw)
    lateral = local[:, 1]
    # The actors' velocity across the ego's heading (positive to the ego's left).
    across = np.array([a.speed * math.sin(a.pose.yaw - ego.yaw) for a in state.actors])
    gap = np.abs(lateral) - half_width_m
    closing = -np.sign(lateral) * across
    entering = (closing > 0.0) & (gap <= horizon_s * np.maximum(closing, 0.0))
    return (gap <= 0.0) | entering


def describe_risk(
    state: WorldState,
    near_m: float = NEAR_M,
    far_m: float = FAR_M,
    seen: Collection[str] | None = None,
    path_half_width_m: float | None = None,
) -> Risk:
    """The most relevant actor visible ahead, as a category and a short sentence.

    `seen`: ids of the actors the front camera actually shows (`drivevlm.data.boxes.seen_actor_ids`);
    None counts every actor in the field of view, hidden behind others or not. `path_half_width_m`: only
    actors in or entering the ego's path count (`in_or_entering_path`); None counts every visible one.
    """
    ego = state.ego.pose
    if not state.actors:
        return Risk("none", CLEAR_DESCRIPTION)
    local = world_to_ego(np.array([(a.pose.x, a.pose.y) for a in state.actors]), ego.x, ego.y, ego.yaw)
    distance = np.hypot(local[:, 0], local[:, 1])
    bearing = np.degrees(np.arctan2(local[:, 1], local[:, 0]))
    visible = (local[:, 0] > 1.0) & (np.abs(bearing) < HALF_FOV_DEG) & (distance < far_m)
    if seen is not None:
        visible &= np.array([a.id in seen for a in state.actors])
    if path_half_width_m is not None:
        visible &= in_or_entering_path(state, path_half_width_m)
    best: tuple[int, float, int] | None = None
    for index in np.flatnonzero(visible):
        key = (int(distance[index] >= near_m), _PRIORITY[_KIND_OF_ACTOR[state.actors[index].kind]], index)
        if (
            best is None
            or key[:2] < best[:2]
            or (key[:2] == best[:2] and distance[index] < distance[best[2]])
        ):
            best = key
    if best is None:
        return Risk("none", CLEAR_DESCRIPTION)
    actor = state.actors[best[2]]
    kind = _KIND_OF_ACTOR[actor.kind]
    band = "near" if best[0] == 0 else "far"
    place = "close ahead" if band == "near" else "in the distance"
    phrase = _HAZARD_PHRASES.get(actor.kind) or _PHRASES[(kind, _motion(actor, ego.yaw))]
    sentence = f"{phrase} {place}."
    return Risk(f"{kind}_{band}", sentence, actor.id, float(distance[best[2]]))


_KIND_WORDS = {
    "pedestrian": ("pedestrian", "person", "people", "walker", "child"),
    "cyclist": ("cyclist", "bicycle", "bike", "rider", "motorcycl", "scooter"),
    "vehicle": ("car", "vehicle", "truck", "bus", "van"),
    "obstacle": ("debris", "warning triangle", "cargo", "crate", "object on the road", "object in the lane"),
}
_NEAR_WORDS = ("close", "near", "just ahead", "immediately", "right in front", "stepping", "imminent")
_FAR_WORDS = ("distance", "far", "further ahead", "down the road")
_CLEAR_WORDS = ("clear", "no obstacle", "nothing", "empty")


def category_of_description(text: str) -> str:
    """Read a risk category back out of free text (ours or a real VLM's); unknown text reads as 'none'."""
    lowered = text.lower()
    found = [
        (lowered.find(w), -len(w), kind) for kind, words in _KIND_WORDS.items() for w in words if w in lowered
    ]
    if not found:
        return "none"
    # "towards the car" names the ego, not a risk: the first kind mentioned wins, and of words that start
    # at the same place the longest ("cargo", not "car").
    kind = min(found)[2]
    if any(w in lowered for w in _FAR_WORDS):
        return f"{kind}_far"
    if any(w in lowered for w in _NEAR_WORDS):
        return f"{kind}_near"
    return "none" if any(w in lowered for w in _CLEAR_WORDS) else f"{kind}_near"

"""Ground-truth boxes hug what the front camera paints; descriptions say what is where and any collision."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drivevlm.data.boxes import front_boxes, seen_actor_ids
from drivevlm.data.describe import describe_bev, describe_front
from drivevlm.env import DriveEnv
from drivevlm.render.front_camera import FrontCameraRenderer
from drivevlm.sim.world import Actor, ActorKind, Collision, Pose, StepEvents, WorldState


@pytest.fixture(scope="module")
def street_state() -> WorldState:
    env = DriveEnv({"town": "grid", "scenario": "car_following", "density": "empty"})
    env.reset(seed=5)
    state = env.world_state
    env.close()
    assert state is not None
    return state


def _ahead(state: WorldState, kind: ActorKind, forward: float, left: float, ident: str) -> Actor:
    pose = state.ego.pose
    c, s = np.cos(pose.yaw), np.sin(pose.yaw)
    x, y = pose.x + forward * c - left * s, pose.y + forward * s + left * c
    sizes = {
        ActorKind.PEDESTRIAN: (0.5, 0.5, 1.8),
        ActorKind.BICYCLE: (1.8, 0.6, 1.7),
        ActorKind.CAR: (4.5, 1.9, 1.5),
    }
    length, width, height = sizes[kind]
    return Actor(ident, kind, Pose(x, y, pose.yaw + np.pi / 2), 1.2, length, width, height)


def test_boxes_cover_exactly_the_painted_actors(street_state: WorldState) -> None:
    actors = (
        _ahead(street_state, ActorKind.PEDESTRIAN, 12.0, 1.0, "ped"),
        _ahead(street_state, ActorKind.BICYCLE, 25.0, -2.0, "bike"),
        _ahead(street_state, ActorKind.CAR, 40.0, 3.0, "car"),
        _ahead(street_state, ActorKind.CAR, -10.0, 0.0, "behind"),
    )
    state = dataclasses.replace(street_state, actors=actors, traffic_lights=())
    camera = FrontCameraRenderer(width=160, height=160)
    change = np.abs(camera.render(state).astype(int) - camera.render(dataclasses.replace(state, actors=())))
    # Anti-aliased edges blend faintly into the next pixel; count clearly painted pixels only.
    painted = change.max(axis=2) > 40
    boxes = front_boxes(camera, state)
    assert sorted(b.actor_id for b in boxes) == ["bike", "car", "ped"]
    assert {b.actor_id: b.label for b in boxes} == {"ped": "person", "bike": "bicycle", "car": "car"}
    inside = np.zeros_like(painted)
    for box in boxes:
        x1, y1, x2, y2 = box.box
        xa, ya, xb, yb = (
            int(np.floor(x1)) - 1,
            int(np.floor(y1)) - 1,
            int(np.ceil(x2)) + 1,
            int(np.ceil(y2)) + 1,
        )
        region = painted[max(ya, 0) : yb, max(xa, 0) : xb]
        assert region.any(), box
        # Tight: the painted pixels reach close to every side of the box.
        rows, cols = np.nonzero(region)
        assert cols.min() <= 2 and rows.min() <= 2
        inside[max(ya, 0) : yb, max(xa, 0) : xb] = True
    assert not (painted & ~inside).any()
    assert boxes[0].actor_id == "ped" and boxes[0].visible == 1.0


def test_an_actor_hidden_behind_a_nearer_one_is_not_seen(street_state: WorldState) -> None:
    from drivevlm.data.risk import describe_risk

    bus = dataclasses.replace(_ahead(street_state, ActorKind.CAR, 8.0, 0.0, "bus"), height=3.5, length=3.0)
    hidden = _ahead(street_state, ActorKind.PEDESTRIAN, 11.0, 0.0, "hidden")
    beside = _ahead(street_state, ActorKind.PEDESTRIAN, 12.0, -5.0, "beside")
    state = dataclasses.replace(street_state, actors=(bus, hidden, beside), traffic_lights=())
    camera = FrontCameraRenderer(width=160, height=160)
    assert {b.actor_id for b in front_boxes(camera, state)} == {"bus", "hidden", "beside"}
    seen = seen_actor_ids(camera, state)
    assert seen == {"bus", "beside"}
    # By field of view alone the nearer, hidden pedestrian is the answer; by the camera, the one it shows.
    assert describe_risk(state).actor_id == "hidden"
    assert describe_risk(state, seen=seen).actor_id == "beside"


def test_descriptions_name_actors_and_collisions(street_state: WorldState) -> None:
    ped = _ahead(street_state, ActorKind.PEDESTRIAN, 8.0, 0.0, "ped")
    state = dataclasses.replace(street_state, actors=(ped,))
    bev = describe_bev(state)
    assert "A pedestrian is 8 m ahead, crossing." in bev
    assert bev.endswith("There is no collision.")
    assert "pedestrian is crossing the road close ahead" in describe_front(state, collision_soon=True)
    assert describe_front(state, collision_soon=True).endswith("about to happen within two seconds.")
    crashed = dataclasses.replace(
        state, events=StepEvents(collisions=(Collision("ped", ActorKind.PEDESTRIAN, 20.0, 20.0),))
    )
    assert "A collision has happened" in describe_bev(crashed)
    empty = dataclasses.replace(street_state, actors=())
    assert "No other road users are nearby." in describe_bev(empty)
    assert describe_front(empty).startswith("The road ahead is clear")

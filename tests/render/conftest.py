"""Fixtures of the renderer tests; the scenes themselves live in render_support.py."""

from __future__ import annotations

import numpy as np
import pytest
from render_support import TOWN, actor, ego_frame_point, make_state

from drivevlm.sim.world import ActorKind, MapGeometry, TrafficLight, WorldState


@pytest.fixture
def town() -> MapGeometry:
    return TOWN


@pytest.fixture
def scene() -> WorldState:
    """One actor of each kind at known ego-frame spots, plus two signals at stop lines."""
    return make_state(
        actors=[
            actor(ActorKind.CAR, *ego_frame_point(15.0, 0.0)),
            actor(ActorKind.BICYCLE, *ego_frame_point(8.0, -2.6)),
            actor(ActorKind.MOTORCYCLE, *ego_frame_point(6.0, 3.2), yaw=np.pi),
            actor(ActorKind.PEDESTRIAN, *ego_frame_point(20.0, -5.8), yaw=np.pi / 2),
        ],
        lights=[TrafficLight("tl_e", (-9.0, -3.2), "r"), TrafficLight("tl_n", (1.75, -9.0), "g")],
    )

"""Real SUMO frames through the renderers: the backend's world lands where the renderers say it does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from render_support import bev_pixel, colour_matches

from drivevlm.render import BevMaskRenderer, BevRgbRenderer, FrontCameraRenderer, StaticLayerCache, palette
from drivevlm.sim.base import EpisodeSpec, make_backend
from drivevlm.sim.geometry import world_to_ego
from drivevlm.sim.world import ActorKind, Control, WorldState

pytestmark = pytest.mark.slow
GROUP = {ActorKind.CAR: 0, ActorKind.BICYCLE: 1, ActorKind.MOTORCYCLE: 1, ActorKind.PEDESTRIAN: 2}


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WorldState]]:
    sim = make_backend("sumo", cache_dir=Path(tmp_path_factory.mktemp("sumo-render")))
    try:
        states = [sim.reset(EpisodeSpec(town="grid", scenario="random", density="dense"), seed=11)]
        for _ in range(40):
            states.append(sim.step(Control(0.0, 0.5)))
        yield states
    finally:
        sim.close()


def test_masks_of_a_sumo_frame(frames: list[WorldState]) -> None:
    r = BevMaskRenderer(history=1, cache=StaticLayerCache())
    state = frames[-1]
    masks = r.render(state, [frames[-2].actors])
    ego_row, ego_col = bev_pixel(96, 3.0, 0.25, 0.0, 0.0)
    assert masks[0, ego_row - 1 : ego_row + 2, ego_col - 1 : ego_col + 2].all()  # the ego drives on road
    assert masks[2, ego_row - 15 : ego_row - 5].any()  # the route goes on ahead
    assert masks[1].any()
    checked = 0
    pose = state.ego.pose
    for a in state.actors:
        ahead, left = world_to_ego(np.array([[a.pose.x, a.pose.y]]), pose.x, pose.y, pose.yaw)[0]
        row, col = bev_pixel(96, 3.0, 0.25, ahead, left)
        if 2 <= row < 94 and 2 <= col < 94:
            channel = 3 + 3 + GROUP[a.kind]  # the t0 group of its kind
            assert masks[channel, row - 1 : row + 2, col - 1 : col + 2].any(), a
            checked += 1
    assert checked > 0


def test_rgb_images_of_a_sumo_frame(frames: list[WorldState]) -> None:
    cache = StaticLayerCache()
    bev = BevRgbRenderer(cache=cache).render(frames[-1])
    camera = FrontCameraRenderer(cache=cache).render(frames[-1])
    assert cache.builds == 1
    assert (bev == np.array(palette.EGO, dtype=np.uint8)).all(axis=2).sum() > 50
    assert colour_matches(bev, palette.ROAD, 6.0).mean() > 0.1
    assert camera.std() > 15
    assert colour_matches(camera[130:], palette.ROAD, 10.0).mean() > 0.3  # road ahead of the bumper

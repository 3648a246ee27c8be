"""Static map layers: drawn once per map and reused, with markings derived from the lane layout."""

from __future__ import annotations

import dataclasses

import numpy as np
from render_support import TOWN, actor, ego_frame_point, make_state

from drivevlm.render import BevMaskRenderer, BevRgbRenderer, FrontCameraRenderer, StaticLayerCache, palette
from drivevlm.render.static import dash_pieces, lane_markings, offset_polyline
from drivevlm.sim.world import ActorKind, Pose


def test_second_render_reuses_the_cached_layers() -> None:
    cache = StaticLayerCache()
    masks, bev, camera = (
        BevMaskRenderer(cache=cache),
        BevRgbRenderer(cache=cache),
        FrontCameraRenderer(cache=cache),
    )
    first = make_state([actor(ActorKind.CAR, *ego_frame_point(10.0, 0.0))])
    masks.render(first)
    bev.render(first)
    camera.render(first)
    # One mask raster and one RGB raster, the latter shared by the BEV picture and the camera.
    assert cache.builds == 2 and len(cache) == 2
    moved = make_state(pose=Pose(-10.0, -1.6, 0.3))
    for _ in range(3):
        masks.render(moved)
        bev.render(moved)
        camera.render(moved)
    assert cache.builds == 2
    other_map = dataclasses.replace(TOWN, name="test:other")
    bev.render(make_state(world_map=other_map))
    assert cache.builds == 3


def test_cache_evicts_the_least_recently_used_map() -> None:
    cache = StaticLayerCache(max_entries=1)
    first = cache.rgb(TOWN, 4.0)
    assert cache.rgb(TOWN, 4.0) is first
    cache.rgb(dataclasses.replace(TOWN, name="test:other"), 4.0)
    assert len(cache) == 1
    assert cache.rgb(TOWN, 4.0) is not first
    assert cache.builds == 3


def test_layers_are_read_only() -> None:
    layer = StaticLayerCache().masks(TOWN, 3.0)
    assert not layer.image.flags.writeable
    assert layer.image.shape[2] == 2


def test_markings_of_the_crossroads() -> None:
    marks = lane_markings(TOWN)
    styles = [m.style for m in marks]
    # Two opposing pairs per road axis share a yellow centre line: 4 in all, each drawn once.
    assert styles.count("centre") == 4
    # One dashed divider on each two-lane east-west road, none on the one-lane north-south roads.
    assert styles.count("dashed") == 4
    # A stop line at the end of every lane that enters the junction: 2 + 2 + 1 + 1.
    assert styles.count("stop") == 6
    centres = [m.points for m in marks if m.style == "centre"]
    assert any(np.allclose(c[:, 1], 0.0, atol=1e-6) for c in centres)


def test_rgb_layer_draws_the_legend() -> None:
    layer = StaticLayerCache().rgb(TOWN, 8.0)

    def at(x: float, y: float) -> np.ndarray:
        col, row = np.round(layer.frame.to_pixels(np.array([[x, y]]))[0]).astype(int)
        return layer.image[row, col].astype(int)

    assert np.abs(at(-30.0, 0.0) - palette.CENTRE_LINE).sum() < 20
    assert np.abs(at(-30.0, -1.6) - palette.ROAD).sum() < 10
    assert np.abs(at(-30.0, -7.4) - palette.SIDEWALK).sum() < 10
    assert np.abs(at(-30.0, -20.0) - palette.TERRAIN).sum() == 0
    assert np.abs(at(0.0, 0.0) - palette.JUNCTION).sum() < 10


def test_geometry_helpers() -> None:
    line = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    assert np.allclose(offset_polyline(line, 1.5)[:, 1], 1.5)
    assert np.allclose(offset_polyline(line, -1.0)[:, 1], -1.0)
    pieces = dash_pieces(line, 3.0, 5.0)
    assert len(pieces) == 3
    assert all(np.linalg.norm(p[-1] - p[0]) <= 3.0 + 1e-9 for p in pieces)

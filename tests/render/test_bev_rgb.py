"""BEV RGB: the legend colours at the right places, heading-up, ego, signals, route off by default."""

from __future__ import annotations

import numpy as np
import pytest
from render_support import actor, bev_pixel, colour_matches, ego_frame_point, make_state

from drivevlm.render import BevRgbRenderer, StaticLayerCache, palette
from drivevlm.sim.world import ActorKind, Pose, TrafficLight


def _renderer(**kwargs: object) -> BevRgbRenderer:
    return BevRgbRenderer(cache=StaticLayerCache(), **kwargs)  # type: ignore[arg-type]


def _near(image: np.ndarray, r: BevRgbRenderer, ahead: float, left: float, radius: int = 1) -> np.ndarray:
    row, col = bev_pixel(r.size, r.pixels_per_meter, r.ego_from_bottom, ahead, left)
    return image[row - radius : row + radius + 1, col - radius : col + radius + 1].reshape(-1, 3)


def _has(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((pixels == np.array(colour, dtype=np.uint8)).all(axis=1).any())


def test_shape_dtype_and_scale() -> None:
    r = _renderer()
    image = r.render(make_state())
    assert image.shape == (224, 224, 3) == r.shape
    assert image.dtype == np.uint8
    assert r.pixels_per_meter == pytest.approx(224 / 40.0)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 8


@pytest.mark.parametrize("kind", list(ActorKind))
@pytest.mark.parametrize("yaw", [0.0, 1.2, -2.5])
def test_each_kind_in_its_legend_colour_where_it_is(kind: ActorKind, yaw: float) -> None:
    pose = Pose(-30.0, -1.6, yaw)
    r = _renderer()
    image = r.render(make_state([actor(kind, *ego_frame_point(10.0, -3.0, pose))], pose=pose))
    colour = palette.BEV_ACTOR_COLOURS[kind]
    assert _has(_near(image, r, 10.0, -3.0), colour)
    # Drawn once, as a compact blob around that spot.
    rows, cols = np.nonzero((image == np.array(colour, dtype=np.uint8)).all(axis=2))
    row, col = bev_pixel(224, r.pixels_per_meter, 0.25, 10.0, -3.0)
    assert np.abs(rows - row).max() <= 14 and np.abs(cols - col).max() <= 14
    for other in ActorKind:
        if palette.BEV_ACTOR_COLOURS[other] != colour:
            assert not colour_matches(image, palette.BEV_ACTOR_COLOURS[other], tolerance=4.0).any(), other


def test_people_and_riders_are_drawn_larger_than_life_in_a_colour_no_signal_has() -> None:
    def area(renderer: BevRgbRenderer, kind: ActorKind) -> int:
        image = renderer.render(make_state([actor(kind, *ego_frame_point(10.0, -3.0))]))
        colour = np.array(palette.BEV_ACTOR_COLOURS[kind], dtype=np.uint8)
        return int((image == colour).all(axis=2).sum())

    true_size = BevRgbRenderer(size=224, vru_scale=1.0)
    for kind in (ActorKind.PEDESTRIAN, ActorKind.BICYCLE):
        assert area(_renderer(), kind) >= 3 * area(true_size, kind) > 0, kind
    car = area(_renderer(), ActorKind.CAR)
    assert car == area(true_size, ActorKind.CAR)  # vehicles keep their size
    lights = palette.LIGHT_COLOURS.values()
    assert all(np.abs(np.subtract(palette.BEV_PEDESTRIAN, c)).sum() > 200 for c in lights)
    with pytest.raises(ValueError, match="vru_scale"):
        BevRgbRenderer(vru_scale=0.5)


def test_ego_is_drawn_at_its_fixed_spot() -> None:
    r = _renderer()
    image = r.render(make_state())
    assert _has(_near(image, r, 0.0, 0.0), palette.EGO)
    assert _has(_near(image, r, 2.0, 0.0), palette.EGO)
    assert not _has(_near(image, r, 4.0, 0.0, radius=0), palette.EGO)


def test_left_is_left_and_ahead_is_up() -> None:
    r = _renderer()
    image = r.render(
        make_state(
            [
                actor(ActorKind.BICYCLE, *ego_frame_point(0.0, 5.0)),
                actor(ActorKind.PEDESTRIAN, *ego_frame_point(10.0, 0.0)),
            ]
        )
    )
    ego_row, ego_col = bev_pixel(224, r.pixels_per_meter, 0.25, 0.0, 0.0)
    _, bike_cols = np.nonzero((image == np.array(palette.BICYCLE, dtype=np.uint8)).all(axis=2))
    walk_rows, _ = np.nonzero((image == np.array(palette.BEV_PEDESTRIAN, dtype=np.uint8)).all(axis=2))
    assert bike_cols.mean() < ego_col - 20
    assert walk_rows.mean() < ego_row - 40


def test_map_layers_use_the_legend() -> None:
    r = _renderer()
    image = r.render(make_state())
    assert _has(_near(image, r, 8.0, -3.2, radius=2), palette.ROAD)
    assert _has(_near(image, r, 8.0, -5.8, radius=2), palette.SIDEWALK)  # world y = -7.4
    assert _has(_near(image, r, 8.0, -14.0, radius=2), palette.TERRAIN)
    # The centre line (1.6 m left of the ego) is yellow; the line between same-direction lanes is white.
    assert colour_matches(_near(image, r, 8.0, 1.6, radius=1)[None], palette.CENTRE_LINE, 30.0).any()
    assert colour_matches(_near(image, r, 6.0, -1.6, radius=1)[None], palette.LANE_MARKING, 30.0).any()
    # Zebra: stripes and gaps alternate along the northern crossing (30 m ahead of the ego at x = 0).
    row, _ = bev_pixel(224, r.pixels_per_meter, 0.25, 30.0, 0.0)
    line = image[row, :, :]
    white = (np.abs(line.astype(int) - np.array(palette.CROSSING_STRIPE)).sum(axis=1) < 30).astype(int)
    assert np.count_nonzero(np.diff(white)) >= 6


def test_traffic_lights_are_dots_of_their_state() -> None:
    r = _renderer()
    lights = [
        TrafficLight("a", ego_frame_point(12.0, 0.0), "r"),
        TrafficLight("b", ego_frame_point(12.0, -6.0), "g"),
    ]
    image = r.render(make_state(lights=lights))
    assert _has(_near(image, r, 12.0, 0.0), palette.LIGHT_RED)
    assert _has(_near(image, r, 12.0, -6.0), palette.LIGHT_GREEN)
    assert not _has(_near(image, r, 12.0, -6.0), palette.LIGHT_RED)
    hidden = _renderer(show_traffic_lights=False).render(make_state(lights=lights))
    assert not _has(_near(hidden, r, 12.0, 0.0), palette.LIGHT_RED)


def test_route_is_off_by_default() -> None:
    state = make_state()
    plain = _renderer().render(state)
    assert not (plain == np.array(palette.ROUTE, dtype=np.uint8)).all(axis=2).any()
    shown = _renderer(show_route=True)
    annotated = shown.render(state)
    assert _has(_near(annotated, shown, 10.0, 0.0), palette.ROUTE)


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"view_m": 0.0}, "view_m"), ({"raster_ppm": -2.0}, "raster_ppm")]
)
def test_bad_settings_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BevRgbRenderer(**kwargs)  # type: ignore[arg-type]

"""Front camera: a believable frame (sky above, road below), actors where and how they should be."""

from __future__ import annotations

import numpy as np
import pytest
from render_support import EGO_POSE, actor, colour_matches, ego_frame_point, make_state

from drivevlm.render import FrontCameraRenderer, StaticLayerCache, palette
from drivevlm.sim.world import Actor, ActorKind, Pose

# Colours a kind shows on the camera (riders wear the kind's colour, motorcyclists its helmet).
KIND_COLOUR = palette.ACTOR_COLOURS


def _renderer(**kwargs: object) -> FrontCameraRenderer:
    return FrontCameraRenderer(cache=StaticLayerCache(), **kwargs)  # type: ignore[arg-type]


def _changed(r: FrontCameraRenderer, actors: list[Actor], pose: Pose = EGO_POSE) -> np.ndarray:
    """Pixels that differ from the same frame without the actors."""
    empty = r.render(make_state(pose=pose)).astype(int)
    full = r.render(make_state(actors, pose=pose)).astype(int)
    return np.abs(full - empty).sum(axis=2) > 0


def test_frame_is_a_scene_not_a_blank() -> None:
    r = _renderer()
    image = r.render(make_state())
    assert image.shape == (224, 224, 3) == r.shape
    assert image.dtype == np.uint8
    assert image.mean() > 40 and image.std() > 15
    top = image[:20].reshape(-1, 3).astype(int)
    assert (top[:, 2] > top[:, 0] + 40).all()  # blue sky
    bottom = image[-20:, 100:124].reshape(-1, 3).astype(int)
    assert np.abs(bottom - np.array(palette.ROAD)).sum(axis=1).mean() < 30  # road ahead of the bumper
    assert r.horizon_row < 112  # pitched down: the horizon sits above the image centre


@pytest.mark.parametrize("kind", list(ActorKind))
def test_actor_ahead_is_in_the_centre_in_its_colour(kind: ActorKind) -> None:
    r = _renderer()
    image = r.render(make_state([actor(kind, *ego_frame_point(10.0, 0.0))]))
    centre = image[60:200, 80:144]
    assert colour_matches(centre, KIND_COLOUR[kind]).sum() >= 12
    for other, colour in KIND_COLOUR.items():
        if colour != KIND_COLOUR[kind]:
            assert colour_matches(image, colour).sum() == 0, other
    # Its colour is in the centre, not off to a side.
    _, cols = np.nonzero(colour_matches(image, KIND_COLOUR[kind]))
    assert abs(cols.mean() - 111.5) < 12


def test_left_is_left_and_nearer_is_bigger() -> None:
    r = _renderer()
    left = _changed(r, [actor(ActorKind.CAR, *ego_frame_point(12.0, 4.0))])
    right = _changed(r, [actor(ActorKind.CAR, *ego_frame_point(12.0, -4.0))])
    assert np.nonzero(left)[1].mean() < 100 < 124 < np.nonzero(right)[1].mean()
    near = _changed(r, [actor(ActorKind.CAR, *ego_frame_point(8.0, 0.0))])
    far = _changed(r, [actor(ActorKind.CAR, *ego_frame_point(30.0, 0.0))])
    assert near.sum() > 4 * far.sum() > 0
    assert np.nonzero(far)[0].max() < np.nonzero(near)[0].max()  # farther means closer to the horizon


def test_actor_behind_the_camera_is_not_drawn() -> None:
    r = _renderer()
    for kind in ActorKind:
        assert not _changed(r, [actor(kind, *ego_frame_point(-8.0, 0.0))]).any(), kind


def test_pedestrian_is_taller_than_wide() -> None:
    r = _renderer()
    rows, cols = np.nonzero(_changed(r, [actor(ActorKind.PEDESTRIAN, *ego_frame_point(8.0, 1.0))]))
    assert np.ptp(rows) > 2.5 * np.ptp(cols) > 0


def test_car_has_a_darker_glass_cabin_above_its_body() -> None:
    r = _renderer()
    image = r.render(make_state([actor(ActorKind.CAR, *ego_frame_point(8.0, 0.0))]))
    body_rows, _ = np.nonzero(colour_matches(image, palette.CAR))
    glass_rows, _ = np.nonzero(colour_matches(image, palette.WINDOW, tolerance=10.0))
    assert len(glass_rows) > 20 and len(body_rows) > 20
    assert np.median(glass_rows) < np.median(body_rows)


def test_nearer_actor_hides_the_one_behind_whatever_the_list_order() -> None:
    r = _renderer()
    car = actor(ActorKind.CAR, *ego_frame_point(8.0, 0.0), name="car")
    low = Actor("bike", ActorKind.BICYCLE, Pose(*ego_frame_point(22.0, 0.0), 0.0), 3.0, 1.7, 0.6, 1.2)
    for actors in ([car, low], [low, car]):
        image = r.render(make_state(actors))
        assert colour_matches(image, palette.BICYCLE).sum() == 0
        assert colour_matches(image, palette.CAR).sum() > 50
    alone = r.render(make_state([low]))
    assert colour_matches(alone, palette.BICYCLE).sum() > 0


def test_actor_across_the_near_plane_is_clipped_not_dropped() -> None:
    """A car alongside, reaching from behind the camera to in front of it, fills the left edge."""
    r = _renderer()
    beside = actor(ActorKind.CAR, *ego_frame_point(2.3 + 0.5, 2.4))
    changed = _changed(r, [beside])
    assert changed[:, :20].mean() > 0.3
    assert not changed[:, 150:].any()


def test_traffic_light_head_shows_its_state() -> None:
    from drivevlm.sim.world import TrafficLight

    r = _renderer()
    red = r.render(make_state(lights=[TrafficLight("a", ego_frame_point(20.0, 0.0), "r")]))
    assert colour_matches(red[: int(r.horizon_row)], palette.LIGHT_RED).sum() > 0
    assert colour_matches(red, palette.LIGHT_GREEN).sum() == 0


def test_project_matches_the_pinhole_model() -> None:
    r = _renderer(pitch_deg=0.0)
    state = make_state()
    ahead = np.array([[*ego_frame_point(2.3 + 10.0, 0.0), 1.5], [*ego_frame_point(2.3 + 10.0, -10.0), 1.5]])
    uvz = r.project(state, ahead)
    assert uvz[0] == pytest.approx([111.5, 111.5, 10.0])
    assert uvz[1, 0] == pytest.approx(111.5 + r.focal)  # 45 degrees right: the right edge at 90 deg HFOV
    behind = r.project(state, np.array([[*ego_frame_point(-5.0, 0.0), 1.0]]))
    assert behind[0, 2] < 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"width": 2}, "width"),
        ({"hfov_deg": 200.0}, "hfov_deg"),
        ({"camera_height_m": 0.0}, "camera_height_m"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FrontCameraRenderer(**kwargs)  # type: ignore[arg-type]

"""Policy masks: each actor kind in its channel at the right pixel, heading-up, history, static layers."""

from __future__ import annotations

import numpy as np
import pytest
from render_support import EGO_POSE, actor, bev_pixel, ego_frame_point, make_state

from drivevlm.render import BevMaskRenderer, StaticLayerCache
from drivevlm.sim.world import ActorKind, Pose, TrafficLight

GROUP = {
    ActorKind.CAR: "vehicles",
    ActorKind.BICYCLE: "cyclists",
    ActorKind.MOTORCYCLE: "cyclists",
    ActorKind.PEDESTRIAN: "pedestrians",
    ActorKind.OBSTACLE: "vehicles",
    ActorKind.WARNING_TRIANGLE: "vehicles",
}


def _renderer(**kwargs: object) -> BevMaskRenderer:
    return BevMaskRenderer(cache=StaticLayerCache(), **kwargs)  # type: ignore[arg-type]


def _at(masks: np.ndarray, r: BevMaskRenderer, name: str, ahead: float, left: float) -> int:
    row, col = bev_pixel(r.size, r.pixels_per_meter, r.ego_from_bottom, ahead, left)
    return int(masks[r.channels.index(name), row, col])


def test_channels_shape_and_values() -> None:
    r = _renderer(history=2)
    assert r.channels[:3] == ["road", "lane_markings", "route"]
    assert r.channels[3:6] == ["vehicles_t-2", "cyclists_t-2", "pedestrians_t-2"]
    assert r.channels[-3:] == ["vehicles_t0", "cyclists_t0", "pedestrians_t0"]
    masks = r.render(make_state([actor(ActorKind.CAR, *ego_frame_point(10.0, 0.0))]))
    assert masks.dtype == np.uint8
    assert masks.shape == (12, 96, 96) == r.shape
    assert set(np.unique(masks)) <= {0, 255}


def test_stop_lights_channel_marks_red_and_amber_stop_lines_only() -> None:
    r = _renderer(history=1, traffic_lights=True)
    assert r.channels[:4] == ["road", "lane_markings", "route", "stop_lights"]
    assert r.shape == (10, 96, 96)
    lights = [
        TrafficLight("red", ego_frame_point(12.0, 0.0), "r"),
        TrafficLight("amber", ego_frame_point(20.0, -6.0), "y"),
        TrafficLight("green", ego_frame_point(12.0, 8.0), "g"),
    ]
    car = actor(ActorKind.CAR, *ego_frame_point(-5.0, 0.0))
    masks = r.render(make_state([car], lights=lights))
    assert _at(masks, r, "stop_lights", 12.0, 0.0) == 255
    assert _at(masks, r, "stop_lights", 20.0, -6.0) == 255
    assert _at(masks, r, "stop_lights", 12.0, 8.0) == 0
    # A disc about a lane's half width across, nothing else in the channel.
    assert (masks[r.channels.index("stop_lights")] > 0).sum() == pytest.approx(
        2 * np.pi * (1.6 * 3.0) ** 2, rel=0.35
    )
    # The actor channels moved up by one and still hold the car.
    assert _at(masks, r, "vehicles_t0", -5.0, 0.0) == 255
    assert _at(masks, r, "stop_lights", -5.0, 0.0) == 0
    plain = _renderer(history=1).render(make_state([car], lights=lights))
    assert np.array_equal(plain, np.delete(masks, 3, axis=0))


@pytest.mark.parametrize("kind", list(ActorKind))
def test_each_kind_lands_in_its_channel_only(kind: ActorKind) -> None:
    r = _renderer(history=0)
    masks = r.render(make_state([actor(kind, *ego_frame_point(10.0, -2.0))]))
    for group in ("vehicles", "cyclists", "pedestrians"):
        expected = 255 if group == GROUP[kind] else 0
        assert _at(masks, r, f"{group}_t0", 10.0, -2.0) == expected, group
    # Nothing of it anywhere else: one small blob in one channel.
    channel = masks[r.channels.index(f"{GROUP[kind]}_t0")]
    rows, cols = np.nonzero(channel)
    row, col = bev_pixel(96, 3.0, 0.25, 10.0, -2.0)
    assert np.abs(rows - row).max() <= 8 and np.abs(cols - col).max() <= 8


@pytest.mark.parametrize("yaw", [0.0, np.pi / 2, 2.3, -1.0, np.pi])
def test_heading_up_ahead_is_above_and_left_is_left(yaw: float) -> None:
    pose = Pose(-30.0, -1.6, yaw)
    ahead_car = actor(ActorKind.CAR, *ego_frame_point(10.0, 0.0, pose), yaw=yaw)
    left_walker = actor(ActorKind.PEDESTRIAN, *ego_frame_point(0.0, 5.0, pose))
    r = _renderer(history=0)
    masks = r.render(make_state([ahead_car, left_walker], pose=pose))
    cars = masks[r.channels.index("vehicles_t0")]
    walkers = masks[r.channels.index("pedestrians_t0")]
    ego_row, ego_col = bev_pixel(96, 3.0, 0.25, 0.0, 0.0)
    car_rows, car_cols = np.nonzero(cars)
    assert car_rows.mean() == pytest.approx(ego_row - 30, abs=1.0)
    assert car_cols.mean() == pytest.approx(ego_col, abs=1.0)
    # The car's long side runs up the image when it faces the ego's way.
    assert np.ptp(car_rows) > np.ptp(car_cols)
    walk_rows, walk_cols = np.nonzero(walkers)
    assert walk_cols.mean() == pytest.approx(ego_col - 15, abs=1.0)
    assert walk_rows.mean() == pytest.approx(ego_row, abs=1.0)


def test_history_frames_land_in_their_channels() -> None:
    r = _renderer(history=2)
    positions = [4.0, 7.0, 10.0]  # oldest first
    frames = [(actor(ActorKind.BICYCLE, *ego_frame_point(a, 0.0), name="bike"),) for a in positions]
    masks = r.render(make_state(frames[-1]), past_actors=frames[:-1])
    for offset, ahead in zip(("t-2", "t-1", "t0"), positions, strict=True):
        for other in positions:
            expected = 255 if other == ahead else 0
            assert _at(masks, r, f"cyclists_{offset}", other, 0.0) == expected, (offset, other)


def test_history_uses_only_the_latest_frames_and_pads_with_the_oldest() -> None:
    r = _renderer(history=2)
    frames = [(actor(ActorKind.CAR, *ego_frame_point(a, 0.0), name="c"),) for a in (-6.0, 0.0, 10.0, 20.0)]
    masks = r.render(make_state(frames[-1]), past_actors=frames[:-1])
    assert _at(masks, r, "vehicles_t-2", 0.0, 0.0) == 255
    assert _at(masks, r, "vehicles_t-1", 10.0, 0.0) == 255
    assert not masks[r.channels.index("vehicles_t-2")][bev_pixel(96, 3.0, 0.25, -6.0, 0.0)].any()
    short = r.render(make_state(frames[-1]), past_actors=frames[2:3])
    assert np.array_equal(short[r.channels.index("vehicles_t-2")], short[r.channels.index("vehicles_t-1")])
    assert _at(short, r, "vehicles_t-2", 10.0, 0.0) == 255
    fresh = r.render(make_state(frames[-1]))
    assert _at(fresh, r, "vehicles_t-2", 20.0, 0.0) == 255


def test_past_actors_are_drawn_in_the_current_ego_frame() -> None:
    """A parked car stays put in the world; as the ego moves 5 m on, every frame shows it 5 m closer."""
    r = _renderer(history=1)
    parked = (actor(ActorKind.CAR, *ego_frame_point(15.0, 0.0), name="p"),)
    moved = Pose(EGO_POSE.x + 5.0, EGO_POSE.y, 0.0)
    masks = r.render(make_state(parked, pose=moved), past_actors=[parked])
    for name in ("vehicles_t-1", "vehicles_t0"):
        assert _at(masks, r, name, 10.0, 0.0) == 255
        assert _at(masks, r, name, 15.0, 0.0) == 0


def test_static_channels_follow_the_map() -> None:
    r = _renderer(history=0)
    masks = r.render(make_state())
    assert _at(masks, r, "road", 5.0, 0.0) == 255
    assert _at(masks, r, "road", 5.0, -12.0) == 0  # beyond the sidewalk
    assert _at(masks, r, "route", 10.0, 0.0) == 255
    assert _at(masks, r, "route", -6.0, 0.0) == 0  # only the remaining route
    row, col = bev_pixel(96, 3.0, 0.25, 5.0, 1.6)  # the centre line, 1.6 m left of the ego
    assert masks[r.channels.index("lane_markings"), row, col - 1 : col + 2].any()
    assert not masks[r.channels.index("lane_markings"), row, col - 4]  # the middle of the opposite lane


def test_offset_and_size_are_configurable() -> None:
    r = _renderer(size=64, pixels_per_meter=2.0, ego_from_bottom=0.5, history=0)
    masks = r.render(make_state([actor(ActorKind.PEDESTRIAN, *ego_frame_point(6.0, 3.0))]))
    assert masks.shape == (6, 64, 64)
    assert _at(masks, r, "pedestrians_t0", 6.0, 3.0) == 255


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"size": 0}, "size"), ({"pixels_per_meter": -1.0}, "pixels_per_meter"), ({"history": -1}, "history")],
)
def test_bad_settings_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BevMaskRenderer(**kwargs)  # type: ignore[arg-type]

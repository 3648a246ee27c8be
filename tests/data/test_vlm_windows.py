"""Windows for the small VLM: K+1 real env frames with the ground-truth risk, biased towards gated ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivevlm.data.risk import RISK_CATEGORIES, category_of_description
from drivevlm.data.vlm_windows import (
    HELD_OUT_TOWNS,
    VlmWindows,
    generate_windows,
    held_out_windows,
    is_gated,
    shrink_frame,
)
from drivevlm.sim.world import Actor, ActorKind, EgoState, Lane, MapGeometry, Pose, Route, WorldState

_MAP = MapGeometry(name="test:gate", lanes=(Lane("l0", np.array([[0.0, 0.0], [100.0, 0.0]]), 3.2),))
_ROUTE = Route(waypoints=np.array([[0.0, 0.0], [100.0, 0.0]]), headings=np.zeros(2))


def _state(*actors: Actor) -> WorldState:
    ego = EgoState(pose=Pose(0.0, 0.0, 0.0), speed=5.0, steer=0.0, throttle=0.0)
    return WorldState(time=0.0, step=0, ego=ego, actors=actors, map=_MAP, route=_ROUTE)


def _actor(kind: ActorKind, x: float, y: float) -> Actor:
    return Actor(f"{kind.value}-{x}-{y}", kind, Pose(x, y, 0.0), 1.0, 0.6, 0.6, 1.7)


@pytest.fixture(scope="module")
def windows() -> VlmWindows:
    return generate_windows(12, seed=5, gated_fraction=0.75, frame_size=64, render_size=96)


def test_gate_needs_a_vulnerable_road_user_in_view() -> None:
    assert is_gated(_state(_actor(ActorKind.PEDESTRIAN, 10.0, 1.0)))
    assert is_gated(_state(_actor(ActorKind.BICYCLE, 30.0, -3.0)))
    assert is_gated(_state(_actor(ActorKind.MOTORCYCLE, 5.0, 0.0)))
    assert not is_gated(_state(_actor(ActorKind.CAR, 10.0, 0.0)))
    assert not is_gated(_state(_actor(ActorKind.PEDESTRIAN, -10.0, 0.0)))  # behind
    assert not is_gated(_state(_actor(ActorKind.PEDESTRIAN, 3.0, 10.0)))  # outside the field of view
    assert not is_gated(_state(_actor(ActorKind.PEDESTRIAN, 60.0, 0.0)))  # too far
    assert not is_gated(_state())
    pedestrian = _actor(ActorKind.PEDESTRIAN, 10.0, 1.0)
    assert not is_gated(_state(pedestrian), seen=set())  # hidden behind something nearer
    assert is_gated(_state(pedestrian), seen={pedestrian.id})


def test_motorway_gate_opens_for_anything_in_the_path_only() -> None:
    stopped_car, debris = _actor(ActorKind.CAR, 30.0, 0.5), _actor(ActorKind.OBSTACLE, 20.0, -1.0)
    assert is_gated(_state(stopped_car), motorway=True) and not is_gated(_state(stopped_car))
    assert is_gated(_state(debris), motorway=True)
    # A car two lanes over and a person on the shoulder beside the path stay out.
    assert not is_gated(_state(_actor(ActorKind.CAR, 20.0, 7.0)), motorway=True)
    assert not is_gated(_state(_actor(ActorKind.PEDESTRIAN, 20.0, 6.0)), motorway=True)
    assert not is_gated(_state(_actor(ActorKind.CAR, 60.0, 0.0)), motorway=True)  # too far


def test_motorway_hazards_are_staged_on_the_highway_and_labelled() -> None:
    hazards = generate_windows(
        8, seed=2, scenarios=["lost_cargo"], frame_size=64, render_size=96, keep_categories=["obstacle_near"]
    )
    assert set(hazards.towns) == {"highway"}
    assert "obstacle_near" in hazards.categories
    assert "Debris is lying on the road close ahead." in hazards.descriptions


def test_windows_hold_consecutive_real_frames_and_their_labels(windows: VlmWindows) -> None:
    assert len(windows) == 12 and windows.frames_per_window == 4
    assert int(windows.gated.sum()) == 9
    assert windows.frames.dtype == np.uint8 and windows.frames.shape[1:] == (64, 64, 3)
    for i in range(len(windows)):
        frames = windows.window(i)
        assert frames.shape == (4, 64, 64, 3)
        # Rows are appended as frames are first rendered, so a window's frames are in time order.
        assert np.all(np.diff(windows.index[i]) > 0)
        assert frames.std() > 5.0  # a rendered scene, not a blank image
        assert windows.categories[i] in RISK_CATEGORIES
        assert category_of_description(windows.descriptions[i]) == windows.categories[i]
        # A gated window has a vulnerable road user within the labelled range, so it is never "clear".
        if windows.gated[i]:
            assert windows.categories[i] != "none"
    assert set(windows.towns) == {"grid"}


def test_path_labels_are_the_camera_labels_less_what_stays_out_of_the_path(windows: VlmWindows) -> None:
    path = generate_windows(12, seed=5, gated_fraction=0.75, frame_size=64, render_size=96, labels="path")
    # The same windows (the gate and the sampling do not depend on the labels), labelled more sparingly.
    assert np.array_equal(path.frames, windows.frames) and np.array_equal(path.gated, windows.gated)
    assert path.categories.count("none") >= windows.categories.count("none")
    for description, category in zip(path.descriptions, path.categories, strict=True):
        assert category_of_description(description) == category


def test_kept_categories_are_taken_at_every_step() -> None:
    # Seed 5's second episode follows a car from step 22 on; with a 1 % draw for anything else, windows of
    # the kept category come from consecutive steps (each adds one new frame to the last).
    kept = generate_windows(
        5,
        seed=5,
        gated_fraction=0.0,
        accept_probability=0.01,
        keep_categories=["vehicle_far"],
        frame_size=64,
        render_size=96,
        labels="path",
    )
    assert set(kept.categories) == {"vehicle_far"} and len(set(kept.seeds.tolist())) == 1
    assert np.array_equal(np.diff(kept.index[:, 0]), np.ones(4, dtype=np.int64))


def test_sets_concatenate_with_their_frames(windows: VlmWindows) -> None:
    both = VlmWindows.concatenate([windows, windows.subset([3, 1])])
    assert len(both) == len(windows) + 2 and len(both.frames) == 2 * len(windows.frames)
    assert np.array_equal(both.window(len(windows)), windows.window(3))
    assert both.categories[-1] == windows.categories[1] and both.seeds[-1] == windows.seeds[1]
    smaller = VlmWindows(windows.frames[:, :32, :32], *_fields(windows))
    with pytest.raises(ValueError, match="frame size"):
        VlmWindows.concatenate([windows, smaller])


def test_same_seed_same_windows(windows: VlmWindows) -> None:
    again = generate_windows(12, seed=5, gated_fraction=0.75, frame_size=64, render_size=96)
    assert again.descriptions == windows.descriptions
    assert np.array_equal(again.frames, windows.frames)


def test_held_out_uses_unseen_towns_and_disjoint_seeds(windows: VlmWindows) -> None:
    held = held_out_windows(4, frame_size=64, render_size=96, gated_fraction=1.0)
    assert set(held.towns) <= set(HELD_OUT_TOWNS) and held.gated.all()
    assert not set(held.seeds.tolist()) & set(windows.seeds.tolist())


def test_save_load_round_trip(windows: VlmWindows, tmp_path: Path) -> None:
    path = windows.save(tmp_path / "sub" / "windows.npz")
    loaded = VlmWindows.load(path)
    assert np.array_equal(loaded.frames, windows.frames) and np.array_equal(loaded.index, windows.index)
    assert loaded.descriptions == windows.descriptions and loaded.categories == windows.categories
    assert np.array_equal(loaded.gated, windows.gated) and loaded.towns == windows.towns
    assert [p.name for p in path.parent.iterdir()] == ["windows.npz"]  # no temporary file left
    subset = windows.subset([2, 0])
    assert subset.descriptions == [windows.descriptions[2], windows.descriptions[0]]
    assert np.array_equal(subset.window(0), windows.window(2))


def test_several_saved_sets_load_as_their_concatenation(windows: VlmWindows, tmp_path: Path) -> None:
    second = windows.subset([3, 1])
    paths = [windows.save(tmp_path / "a.npz"), second.save(tmp_path / "b.npz")]
    joined, expected = VlmWindows.load_many(paths), VlmWindows.concatenate([windows, second])
    assert np.array_equal(joined.frames, expected.frames) and np.array_equal(joined.index, expected.index)
    assert joined.categories == expected.categories and np.array_equal(joined.seeds, expected.seeds)
    VlmWindows(windows.frames[:, :32, :32].copy(), *_fields(windows)).save(tmp_path / "small.npz")
    with pytest.raises(ValueError, match="frame size"):
        VlmWindows.load_many([paths[0], tmp_path / "small.npz"])
    fields = list(_fields(windows))
    fields[0] = windows.index[:, 1:]  # three frames per window
    VlmWindows(windows.frames, *fields).save(tmp_path / "short.npz")
    with pytest.raises(ValueError, match="frames per window"):
        VlmWindows.load_many([paths[0], tmp_path / "short.npz"])
    with pytest.raises(FileNotFoundError, match=r"nothing\.npz"):
        VlmWindows.load_many([paths[0], tmp_path / "nothing.npz"])


def _fields(windows: VlmWindows) -> tuple:
    """Every field but the frames."""
    w = windows
    return w.index, w.descriptions, w.categories, w.gated, w.towns, w.seeds


def test_shrink_matches_requested_size() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    assert shrink_frame(frame, 64).shape == (64, 64, 3)
    assert shrink_frame(frame, 96) is frame


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"count": 0}, "count"),
        ({"count": 2, "towns": ["mars"]}, "towns"),
        ({"count": 2, "scenarios": ["parade"]}, "scenarios"),
        ({"count": 2, "densities": ["packed"]}, "densities"),
        ({"count": 2, "gated_fraction": 1.5}, "gated_fraction"),
        ({"count": 2, "frame_size": 256, "render_size": 128}, "frame_size"),
        ({"count": 2, "frames_per_window": 0}, "frames_per_window"),
        ({"count": 2, "labels": "omniscient"}, "labels"),
        ({"count": 2, "keep_categories": ["unicorn_near"]}, "keep_categories"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        generate_windows(**kwargs)  # type: ignore[arg-type]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.npz"):
        VlmWindows.load(tmp_path / "nothing.npz")

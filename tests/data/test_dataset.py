"""Readers: whole or evenly thinned splits, and windows of consecutive front frames for the VLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivevlm.data.dataset import iter_front_windows, load_split
from drivevlm.data.generate import generate_dataset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "set"
    generate_dataset(
        root,
        30,
        seed=1,
        towns=("grid",),
        scenarios=("slow_cyclist",),
        size=48,
        max_episode_steps=15,
        shard_frames=8,
    )
    return root


def test_load_split_whole_and_thinned(tiny_data: Path) -> None:
    whole = load_split(tiny_data, "train")
    assert len(whole) == 30 and whole.front.shape == (30, 48, 48, 3)
    thin = load_split(tiny_data, "train", limit=5)
    assert len(thin) == 5
    # Spread over the split: both episodes are represented.
    assert len({r["episode"] for r in thin.records}) == 2
    picked = [(r["episode"], r["step"]) for r in thin.records]
    for image, key in zip(thin.front, picked, strict=True):
        index = [(r["episode"], r["step"]) for r in whole.records].index(key)
        assert np.array_equal(image, whole.front[index])


def test_windows_are_consecutive_steps_of_one_episode(tiny_data: Path) -> None:
    whole = load_split(tiny_data, "train")
    by_key = {(r["episode"], r["step"]): i for i, r in enumerate(whole.records)}
    windows = list(iter_front_windows(tiny_data, "train", k=3))
    # Two episodes of 15 steps each: 12 windows each, across shard boundaries too.
    assert len(windows) == 24
    for frames, record in windows:
        assert frames.shape == (4, 48, 48, 3)
        for offset in range(4):
            index = by_key[(record["episode"], record["step"] - 3 + offset)]
            assert np.array_equal(frames[offset], whole.front[index])


def test_bad_split_and_missing_set(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        load_split(tiny_data, "validation")
    with pytest.raises(FileNotFoundError, match=r"dataset\.json"):
        load_split(tmp_path, "train")

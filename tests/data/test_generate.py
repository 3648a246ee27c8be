"""Data generation: layout, split by town and seed, labels, atomic files, and errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drivevlm.data.generate import HELDOUT_SEED_OFFSET, collision_ahead, generate_dataset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "set"
    generate_dataset(
        root, 40, seed=3, scenarios=("pedestrian_crossing", "car_following"), size=64, max_episode_steps=12
    )
    return root


def test_manifest_and_shards_agree(tiny_data: Path) -> None:
    manifest = json.loads((tiny_data / "dataset.json").read_text())
    assert manifest["frames"] == 40
    assert manifest["splits"]["train"]["frames"] == 24
    assert manifest["splits"]["heldout"]["frames"] == 16
    for split in ("train", "heldout"):
        for npz in sorted((tiny_data / split).glob("shard_*.npz")):
            with np.load(npz) as arrays:
                assert arrays["bev"].dtype == np.uint8 and arrays["bev"].shape[1:] == (64, 64, 3)
                assert arrays["front"].shape == arrays["bev"].shape
                count = len(arrays["front"])
            assert len(npz.with_suffix(".jsonl").read_text().splitlines()) == count
    assert not list(tiny_data.rglob("*.tmp"))


def test_split_is_by_town_and_seed(tiny_data: Path) -> None:
    records = {
        split: [
            json.loads(line)
            for p in (tiny_data / split).glob("*.jsonl")
            for line in p.read_text().splitlines()
        ]
        for split in ("train", "heldout")
    }
    assert {r["town"] for r in records["train"]} == {"grid"}
    assert {r["town"] for r in records["heldout"]} == {"tee", "irregular"}
    assert max(r["seed"] for r in records["train"]) < HELDOUT_SEED_OFFSET
    assert min(r["seed"] for r in records["heldout"]) >= HELDOUT_SEED_OFFSET
    for record in records["train"] + records["heldout"]:
        assert record["unsafe"] == (record["collision_within_2s"] or record["vru_within_10m"])
        assert record["bev_description"].startswith("Top-down view")
        assert record["risk_category"] in {"none"} | {
            f"{k}_{b}" for k in ("vehicle", "pedestrian", "cyclist") for b in ("near", "far")
        }
        for box in record["boxes"]:
            x1, y1, x2, y2 = box["box"]
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64


def test_collision_label_looks_ahead() -> None:
    steps = list(range(1, 41))
    labels = collision_ahead(steps, collision_step=40, horizon_steps=30)
    assert labels[:9] == [False] * 9 and all(labels[9:])
    assert collision_ahead(steps, None, 30) == [False] * 40


def test_existing_folder_is_refused(tiny_data: Path) -> None:
    with pytest.raises(FileExistsError, match="out_dir"):
        generate_dataset(tiny_data, 4)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"frames": 0}, "frames"),
        ({"frames": 4, "towns": ["atlantis"]}, "towns"),
        ({"frames": 4, "step_stride": 0}, "step_stride"),
    ],
)
def test_bad_arguments_name_the_field(tmp_path: Path, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        generate_dataset(tmp_path / "x", **kwargs)  # type: ignore[arg-type]

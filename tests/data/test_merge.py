"""Merging data sets: urban frames and motorway hazards in one set that the trainers read as generated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drivevlm.data.dataset import load_split, read_manifest
from drivevlm.data.generate import generate_dataset
from drivevlm.data.merge import merge_datasets


def _set(root: Path, towns: tuple[str, ...], scenarios: tuple[str, ...], size: int = 48) -> Path:
    generate_dataset(
        root, 20, seed=1, towns=towns, scenarios=scenarios, size=size, max_episode_steps=12, shard_frames=8
    )
    return root


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("sources")
    urban = _set(base / "urban", ("grid", "tee"), ("slow_cyclist",))
    motorway = _set(base / "motorway", ("highway",), ("lost_cargo",))
    return urban, motorway


def test_merged_set_holds_every_frame_of_both(sources: tuple[Path, Path], tmp_path: Path) -> None:
    urban, motorway = sources
    manifest = merge_datasets(tmp_path / "both", [urban, motorway])
    assert read_manifest(tmp_path / "both") == json.loads(json.dumps(manifest))
    for split in ("train", "heldout"):
        parts = [
            load_split(s, split) for s in (urban, motorway) if read_manifest(s)["splits"][split]["frames"]
        ]
        merged = load_split(tmp_path / "both", split)
        assert np.array_equal(merged.front, np.concatenate([p.front for p in parts]))
        assert [r["town"] for r in merged.records] == [r["town"] for p in parts for r in p.records]
        # Each record names the shard it now lives in, so exported file names stay unique.
        names = {(r["shard"], r["index"]) for r in merged.records}
        assert len(names) == len(merged.records)
    assert manifest["frames"] == read_manifest(urban)["frames"] + read_manifest(motorway)["frames"]
    assert set(manifest["towns"]) == {"grid", "tee", "highway"}
    assert manifest["scenarios"] == ["slow_cyclist", "lost_cargo"]


def test_sources_that_differ_or_overlap_are_refused(sources: tuple[Path, Path], tmp_path: Path) -> None:
    urban, _ = sources
    small = _set(tmp_path / "small", ("grid",), ("slow_cyclist",), size=32)
    with pytest.raises(ValueError, match="size differs"):
        merge_datasets(tmp_path / "a", [urban, small])
    with pytest.raises(ValueError, match="appear in more than one set"):
        merge_datasets(tmp_path / "b", [urban, urban])
    with pytest.raises(ValueError, match="at least two"):
        merge_datasets(tmp_path / "c", [urban])
    assert not (tmp_path / "a" / "dataset.json").exists() and not (tmp_path / "b").exists()
    with pytest.raises(FileExistsError, match="already holds a data set"):
        merge_datasets(urban, [urban, small])

"""Readers for data sets written by `generate.py`, shared by every training and evaluation script."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class FrameSet:
    """All frames of a split in memory: images (N, S, S, 3) uint8 and one record per frame."""

    bev: np.ndarray
    front: np.ndarray
    records: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.records)

    def labels(self, key: str) -> np.ndarray:
        return np.array([bool(r[key]) for r in self.records])


def read_manifest(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"data set: no dataset.json in {Path(root).resolve()}; create one with `drivevlm data generate`"
        )
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def shard_paths(root: str | Path, split: str) -> list[Path]:
    if split not in SPLITS:
        raise ValueError(f"split: unknown value {split!r}; allowed: {', '.join(SPLITS)}")
    read_manifest(root)
    return sorted((Path(root) / split).glob("shard_*.npz"))


def iter_shards(
    root: str | Path, split: str
) -> Iterator[tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]]:
    """(bev, front, records) of each shard in order; one shard in memory at a time."""
    for npz_path in shard_paths(root, split):
        with np.load(npz_path) as arrays:
            bev, front = arrays["bev"], arrays["front"]
        lines = npz_path.with_suffix(".jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines if line]
        if len(records) != len(bev):
            raise ValueError(f"{npz_path}: {len(bev)} frames but {len(records)} index records")
        yield bev, front, records


def load_split(root: str | Path, split: str, limit: int | None = None) -> FrameSet:
    """A whole split in memory, or `limit` frames spread evenly over it (every episode contributes)."""
    paths = shard_paths(root, split)
    counts = [sum(1 for line in p.with_suffix(".jsonl").read_text().splitlines() if line) for p in paths]
    total = sum(counts)
    if total == 0:
        raise ValueError(f"split: {split!r} of {Path(root).resolve()} holds no frames")
    if limit is not None and limit < 1:
        raise ValueError(f"limit: must be positive, got {limit!r}")
    chosen = np.arange(total) if limit is None or limit >= total else np.linspace(0, total - 1, limit).round()
    wanted = set(chosen.astype(int).tolist())
    bevs, fronts, records = [], [], []
    start = 0
    for (bev, front, recs), count in zip(iter_shards(root, split), counts, strict=True):
        local = [i - start for i in range(start, start + count) if i in wanted]
        bevs.append(bev[local])
        fronts.append(front[local])
        records.extend(recs[i] for i in local)
        start += count
    return FrameSet(np.concatenate(bevs), np.concatenate(fronts), records)


def iter_front_windows(
    root: str | Path, split: str, k: int, step_gap: int | None = None
) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """Windows of K+1 consecutive front frames of one episode, oldest first, with the last frame's record.

    Consecutive means stored steps `step_gap` apart (default: the data set's step stride). Windows
    overlap (one per stored frame that has K predecessors), may span shard boundaries, and never span
    two episodes or a missing step.
    """
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k: must be a non-negative integer, got {k!r}")
    gap = step_gap if step_gap is not None else int(read_manifest(root).get("step_stride", 1))
    if gap < 1:
        raise ValueError(f"step_gap: must be positive, got {gap!r}")
    frames: list[np.ndarray] = []
    last: dict[str, Any] | None = None
    for _, front, records in iter_shards(root, split):
        for image, record in zip(front, records, strict=True):
            follows = (
                last is not None
                and record["episode"] == last["episode"]
                and record["step"] - last["step"] == gap
            )
            frames = [*frames[-k:], image] if follows and k > 0 else [image]
            last = record
            if len(frames) == k + 1:
                yield np.stack(frames), record

"""One data set from several generated ones: e.g. urban frames and the highway's hazards for one detector.

`generate_dataset` drives one family of towns and scenarios per call; a model that must keep what it knows
(people in town) while it learns something new (motorway hazards) trains on both. The merged set has the
layout of a generated one: shards renumbered per split (their records name the new shard), every source's
episodes, and a manifest whose frame counts add up. Frames are hard-linked where the file system allows,
copied otherwise; dataset.json is written last, so an interrupted merge leaves no data set behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivevlm.atomic import write_atomic
from drivevlm.data.dataset import SPLITS, read_manifest, shard_paths

# Manifest fields that say how frames were made: sources must agree on them to be trained on together.
MUST_MATCH = ("format_version", "size", "step_stride", "collision_horizon_s", "vru_near_m")


def merge_datasets(out_dir: str | Path, sources: Sequence[str | Path]) -> dict[str, Any]:
    """Merge `sources` (folders holding a dataset.json) into `out_dir`; returns the new manifest."""
    root = Path(out_dir)
    if len(sources) < 2:
        raise ValueError(f"sources: expected at least two data sets to merge, got {len(sources)}")
    if (root / "dataset.json").exists():
        raise FileExistsError(f"out_dir: {root} already holds a data set (dataset.json); choose a new folder")
    manifests = [read_manifest(source) for source in sources]
    for key in MUST_MATCH:
        values = {json.dumps(m.get(key)) for m in manifests}
        if len(values) > 1:
            found = ", ".join(f"{source}: {m.get(key)}" for source, m in zip(sources, manifests, strict=True))
            raise ValueError(f"sources: their {key} differs ({found}); generate them alike")
    counts = Counter(e["episode"] for m in manifests for e in m["episodes"])
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        raise ValueError(f"sources: episodes {repeated[:5]} appear in more than one set (same town and seed)")

    splits: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        shards = frames = 0
        for source in sources:
            for npz in shard_paths(source, split):
                name = f"shard_{shards:05d}"
                _link_or_copy(npz, folder / f"{name}.npz")
                records = [
                    json.loads(line) for line in npz.with_suffix(".jsonl").read_text().splitlines() if line
                ]
                lines = "".join(json.dumps({**r, "shard": name}) + "\n" for r in records)
                write_atomic(folder / f"{name}.jsonl", lines.encode())
                shards += 1
                frames += len(records)
        splits[split] = {"frames": frames, "shards": shards}

    first = manifests[0]
    manifest = {
        **{key: first.get(key) for key in MUST_MATCH},
        "frames": sum(s["frames"] for s in splits.values()),
        "splits": splits,
        "seed": [m.get("seed") for m in manifests],
        "towns": _union(m.get("towns", []) for m in manifests),
        "scenarios": _union(m.get("scenarios", []) for m in manifests),
        "seconds": round(sum(float(m.get("seconds", 0.0)) for m in manifests), 1),
        "merged_from": [str(Path(source).resolve()) for source in sources],
        "episodes": [e for m in manifests for e in m["episodes"]],
    }
    write_atomic(root / "dataset.json", json.dumps(manifest, indent=1).encode())
    return manifest


def _link_or_copy(source: Path, target: Path) -> None:
    temporary = target.with_name(target.name + ".part")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    temporary.replace(target)


def _union(lists: Any) -> list[str]:
    seen: dict[str, None] = {}
    for items in lists:
        seen.update(dict.fromkeys(items))
    return list(seen)

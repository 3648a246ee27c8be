"""`train_models`: the one call that trains the bundled image-text model and detector (CLI `models train`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from drivevlm.data.dataset import read_manifest
from drivevlm.model_training.evaluate import BUNDLED_ROOT


def train_models(
    data_dir: str | Path,
    out_root: str | Path | None = None,
    frames: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    models: tuple[str, ...] = ("aligned_clip", "tiny_detector"),
    clip_epochs: int | None = None,
    detector_epochs: int | None = None,
    log: Any = print,
    clip_config: Any = None,
    detector_config: Any = None,
) -> dict[str, Any]:
    """Train the bundled models into `out_root/<model>/` (default: the package's bundled folder).

    With `frames` and no data set at `data_dir` yet, one is generated first (`generate_dataset`).
    `clip_config` / `detector_config` (ClipTrainConfig / DetectorTrainConfig) replace the defaults;
    seed, threads and the epoch counts given here still apply on top.
    """
    from drivevlm.data.generate import generate_dataset
    from drivevlm.model_training.train_aligned_clip import ClipTrainConfig, train_aligned_clip
    from drivevlm.model_training.train_detector import DetectorTrainConfig, train_detector

    unknown = set(models) - {"aligned_clip", "tiny_detector"}
    if unknown:
        raise ValueError(f"models: unknown names {sorted(unknown)}; allowed: aligned_clip, tiny_detector")
    root = Path(out_root) if out_root is not None else BUNDLED_ROOT
    if frames is not None and not (Path(data_dir) / "dataset.json").exists():
        log(f"generating {frames} frames into {data_dir}")
        generate_dataset(data_dir, frames, seed=seed, step_stride=2)
    read_manifest(data_dir)
    summary: dict[str, Any] = {}
    if "aligned_clip" in models:
        clip_cfg = replace(clip_config or ClipTrainConfig(), seed=seed, threads=threads)
        if clip_epochs is not None:
            clip_cfg = replace(clip_cfg, epochs=clip_epochs)
        summary["aligned_clip"] = train_aligned_clip(data_dir, root / "aligned_clip", clip_cfg, log=log)
    if "tiny_detector" in models:
        det_cfg = replace(detector_config or DetectorTrainConfig(), seed=seed, threads=threads)
        if detector_epochs is not None:
            det_cfg = replace(det_cfg, epochs=detector_epochs)
        summary["tiny_detector"] = train_detector(data_dir, root / "tiny_detector", det_cfg, log=log)
    return summary

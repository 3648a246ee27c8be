"""Preset mappings and YAML files pointing the models at the tiny random real models of tests/conftest.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from drivevlm.models.detectors.coco import COCO_CLASSES

# The chat server's scripted answer: what the dynamic goal should become.
GOAL = "A pedestrian is crossing the road ahead"


def tiny_preset(
    clip_dir: Path,
    rtdetr_dir: Path,
    cache_dir: Path,
    lvlm: dict[str, Any],
    preset: str = "drivevlm_rl",
) -> dict[str, Any]:
    """Small frames for speed; random detector weights, so every COCO class is critical at threshold 0."""
    return {
        "env": {"rgb_size": 96, "density": "regular"},
        "reward": {"preset": preset, "gate": {"classes": list(COCO_CLASSES), "threshold": 0.0}},
        "models": {
            "clip": {"backend": "transformers", "model": str(clip_dir)},
            "detector": {"backend": "rtdetr", "model": str(rtdetr_dir), "threshold": 0.0},
            "lvlm": lvlm,
            "cache": {"path": str(cache_dir / "cache.sqlite")},
        },
    }


def server_lvlm(base_url: str) -> dict[str, Any]:
    return {"backend": "openai", "base_url": base_url, "model": "stand-in", "retries": 0, "timeout_s": 10}


def write_preset(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path

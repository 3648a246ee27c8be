"""Small helpers shared by the training scripts: seeding, threads, atomic weight files, ROC-AUC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivevlm.atomic import atomic_output, write_atomic


def set_seed_and_threads(seed: int, threads: int | None) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)


def save_weights(folder: Path, state: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """model.safetensors (float16 to keep the package small) and config.json, each written atomically."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    half = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in state.items()}
    with atomic_output(folder / "model.safetensors") as tmp:
        save_file(half, str(tmp))
    write_json(folder / "config.json", config)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1))

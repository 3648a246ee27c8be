"""Checkpoints that are never half-written: each one is built in a temporary folder, renamed into place,
and only then named in `latest.json` (itself replaced atomically). A kill at any moment leaves the previous
checkpoint intact.

A checkpoint holds the SB3 model (policy, optimisers, entropy coefficient, step counter), the replay buffer
arrays (annotated transitions only: the backlog is drained first), the RNG states (python, numpy, torch,
the action space) and the trainer's counters.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from drivevlm.atomic import write_atomic

LATEST = "latest.json"
KEEP = 2


def rng_state(model: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": th.get_rng_state(),
        "action_space": model.action_space.np_random.bit_generator.state,
    }
    if th.cuda.is_available():
        state["cuda"] = th.cuda.get_rng_state_all()
    return state


def restore_rng(model: Any, state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    th.set_rng_state(state["torch"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    if "cuda" in state and th.cuda.is_available():
        th.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    folder: Path, model: Any, trainer_state: dict[str, Any], buffer_arrays: dict[str, np.ndarray] | None
) -> Path:
    """Write checkpoint `step-<n>` under `folder`; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{model.num_timesteps:010d}"
    final = folder / name
    tmp = folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(tmp / "model.zip")
    if buffer_arrays is not None:
        with (tmp / "replay_buffer.npz").open("wb") as handle:
            np.savez(handle, **buffer_arrays)
            handle.flush()
            os.fsync(handle.fileno())
    (tmp / "rng.pkl").write_bytes(pickle.dumps(rng_state(model)))
    (tmp / "state.json").write_text(json.dumps(trainer_state, indent=2, default=float))
    if final.exists():
        shutil.rmtree(final)
    tmp.replace(final)
    write_atomic(
        folder / LATEST, json.dumps({"checkpoint": name, "num_timesteps": model.num_timesteps}).encode()
    )
    for old in sorted(p for p in folder.glob("step-*") if p.is_dir())[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    pointer = folder / LATEST
    if not pointer.is_file():
        return None
    path = folder / json.loads(pointer.read_text())["checkpoint"]
    return path if (path / "model.zip").is_file() else None


def load_buffer_arrays(path: Path) -> dict[str, np.ndarray] | None:
    file = path / "replay_buffer.npz"
    if not file.is_file():
        return None
    with np.load(file) as data:
        return {key: data[key] for key in data.files}


def load_rng(path: Path) -> dict[str, Any]:
    # Our own file, written by save_checkpoint in this run folder.
    return pickle.loads((path / "rng.pkl").read_bytes())


def load_trainer_state(path: Path) -> dict[str, Any]:
    return json.loads((path / "state.json").read_text())

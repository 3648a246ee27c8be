"""Model interfaces used by the reward pathways. Backends know nothing of driving.

Images are uint8 arrays of shape (H, W, 3), RGB. Embeddings are float32 and L2-normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


class ModelNotFoundError(FileNotFoundError):
    """Weights are missing. The message names the model and every place that was searched."""

    def __init__(self, model: str, searched: Sequence[str | Path], hint: str = "") -> None:
        places = "; ".join(str(p) for p in searched) or "(nowhere)"
        message = f"model {model!r} not found; looked in: {places}"
        if hint:
            message += f". {hint}"
        super().__init__(message)
        self.model = model
        self.searched = tuple(str(p) for p in searched)


def check_images(images: Sequence[np.ndarray] | np.ndarray, what: str = "images") -> np.ndarray:
    """Stack images into (N, H, W, 3) uint8, or raise a ValueError that says what is wrong."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = images[None]
    batch = np.asarray(images) if not isinstance(images, np.ndarray) else images
    if batch.dtype != np.uint8:
        raise ValueError(f"{what}: expected dtype uint8 RGB, got {batch.dtype}")
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"{what}: expected shape (N, H, W, 3) or (H, W, 3), got {batch.shape}")
    return batch


@runtime_checkable
class ImageTextEncoder(Protocol):
    """A CLIP-like model: images and texts in one embedding space."""

    name: str

    def encode_images(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    # (x1, y1, x2, y2) in pixels of the input image.
    box: tuple[float, float, float, float]


@runtime_checkable
class Detector(Protocol):
    """An object detector whose labels are COCO class names (person, bicycle, car, motorcycle, ...)."""

    name: str

    def detect(self, images: Sequence[np.ndarray] | np.ndarray) -> list[list[Detection]]: ...


@runtime_checkable
class VisionLanguageModel(Protocol):
    """A multi-frame VLM: several frames and a prompt in, free text out."""

    name: str

    def generate(self, frames: Sequence[np.ndarray], prompt: str) -> str: ...

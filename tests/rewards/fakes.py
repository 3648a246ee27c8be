"""Deterministic stand-ins for the exact-value tests of the pathways.

A real tiny CLIP and RT-DETR run here (tests/conftest.py), and the end-to-end tests use them; but their random
weights give arbitrary numbers and detections, so the formula and gate tests need models whose outputs are
known by construction. The LVLM is never faked: those tests use the real chat client and a 127.0.0.1 server.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drivevlm.models.base import Detection, check_images


class PixelEncoder:
    """Image embedding = the RGB of pixel (0, 0), L2-normalised; text embeddings from a fixed table."""

    name = "pixel-encoder"

    def __init__(self, texts: dict[str, Sequence[float]]) -> None:
        self.table = {text: np.asarray(v, np.float32) / np.linalg.norm(v) for text, v in texts.items()}
        self.image_calls = 0
        self.text_calls = 0

    def encode_images(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        batch = check_images(images)
        self.image_calls += 1
        rgb = batch[:, 0, 0, :].astype(np.float32)
        return rgb / np.maximum(np.linalg.norm(rgb, axis=1, keepdims=True), 1e-12)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += 1
        return np.stack([self.table[t] for t in texts])


# Pixel (1, 1, 0) of a front frame selects what the scripted detector "sees".
SCENES: dict[int, list[Detection]] = {
    0: [],
    1: [Detection("person", 0.9, (0, 0, 4, 4))],
    2: [Detection("person", 0.1, (0, 0, 4, 4))],
    3: [Detection("car", 0.95, (0, 0, 4, 4))],
    4: [Detection("motorbike", 0.5, (0, 0, 4, 4)), Detection("car", 0.9, (0, 0, 4, 4))],
}


class SceneDetector:
    name = "scene-detector"

    def detect(self, images: Sequence[np.ndarray] | np.ndarray) -> list[list[Detection]]:
        return [list(SCENES[int(image[1, 1, 0])]) for image in check_images(images)]


def frame(rgb: tuple[int, int, int], scene: int = 0, size: int = 8) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    image[0, 0] = rgb
    image[1, 1, 0] = scene
    return image

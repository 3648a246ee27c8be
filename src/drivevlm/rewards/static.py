"""Static pathway: CLIP scores a BEV frame against a fixed positive and negative language goal.

R_static = α·cos(I_bev, T_pos) − β·cos(I_bev, T_neg). The text embeddings are computed once, at construction;
only images are encoded per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drivevlm.models.base import ImageTextEncoder, check_images

DEFAULT_POSITIVE_GOAL = "The road is clear with no car accidents"
DEFAULT_NEGATIVE_GOAL = "Two cars have collided with each other on the road"


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise each row: encoders should already, this keeps the cosine right for one that does not."""
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


def cosine(images: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Cosine similarity of each image row with one text embedding (or row-wise with as many texts)."""
    image_rows = unit_rows(images)
    text_rows = unit_rows(text)
    if text_rows.shape[0] == 1:
        return image_rows @ text_rows[0]
    if text_rows.shape != image_rows.shape:
        raise ValueError(f"cosine: {image_rows.shape[0]} images but {text_rows.shape[0]} texts")
    return np.sum(image_rows * text_rows, axis=-1)


def contrast_score(
    image_embeddings: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> np.ndarray:
    """α·cos(I, T_pos) − β·cos(I, T_neg), per image; `negative` may hold one row per image."""
    return alpha * cosine(image_embeddings, positive) - beta * cosine(image_embeddings, negative)


@dataclass(frozen=True, slots=True)
class StaticScores:
    r_static: np.ndarray
    cos_positive: np.ndarray
    cos_negative: np.ndarray


class StaticPathway:
    """R_static over a batch of BEV frames with any `ImageTextEncoder`."""

    def __init__(
        self,
        encoder: ImageTextEncoder,
        positive_goal: str = DEFAULT_POSITIVE_GOAL,
        negative_goal: str = DEFAULT_NEGATIVE_GOAL,
        alpha: float = 1.0,
        beta: float = 1.0,
        batch_size: int = 64,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.encoder = encoder
        self.alpha = alpha
        self.beta = beta
        self.batch_size = batch_size
        texts = encoder.encode_texts([positive_goal, negative_goal])
        self.positive = np.asarray(texts[0])
        self.negative = np.asarray(texts[1])

    def encode(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        batch = check_images(images, "bev_rgb")
        chunks = [
            np.asarray(self.encoder.encode_images(batch[i : i + self.batch_size]))
            for i in range(0, len(batch), self.batch_size)
        ]
        return np.concatenate(chunks, axis=0)

    def __call__(self, images: Sequence[np.ndarray] | np.ndarray) -> StaticScores:
        embeddings = self.encode(images)
        cos_pos = cosine(embeddings, self.positive)
        cos_neg = cosine(embeddings, self.negative)
        return StaticScores(self.alpha * cos_pos - self.beta * cos_neg, cos_pos, cos_neg)

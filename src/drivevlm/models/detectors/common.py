"""What every detector backend shares: argument checks and turning raw outputs into Detections."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from drivevlm.models.base import Detection
from drivevlm.models.detectors.coco import canonical_class, check_class_names


def check_threshold(threshold: float) -> float:
    value = float(threshold)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold: expected a confidence in [0, 1], got {threshold!r}")
    return value


def check_classes(classes: Iterable[str] | None) -> frozenset[str] | None:
    """None keeps every class; otherwise only these COCO classes are reported."""
    return None if classes is None else frozenset(check_class_names(classes))


def to_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: Sequence[str],
    threshold: float,
    classes: frozenset[str] | None,
    image_shape: tuple[int, ...],
) -> list[Detection]:
    """Filter by confidence and class, clip boxes to the image, and sort by score (highest first)."""
    height, width = image_shape[0], image_shape[1]
    found = []
    for box, score, label in zip(boxes, scores, labels, strict=True):
        name = canonical_class(label)
        if float(score) < threshold or (classes is not None and name not in classes):
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        clipped = (
            min(max(x1, 0.0), width),
            min(max(y1, 0.0), height),
            min(max(x2, 0.0), width),
            min(max(y2, 0.0), height),
        )
        found.append(Detection(label=name, score=float(score), box=clipped))
    found.sort(key=lambda detection: -detection.score)
    return found

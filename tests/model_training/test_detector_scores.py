"""Detector scoring: recall and precision per class as well as for pedestrians and cyclists pooled."""

from __future__ import annotations

from drivevlm.model_training.evaluate import _score_detections
from drivevlm.models.base import Detection


def box(label: str, xyxy: tuple[float, float, float, float], distance_m: float, visible: float = 1.0) -> dict:
    return {"label": label, "box": list(xyxy), "distance_m": distance_m, "visible": visible}


def test_recall_and_precision_are_reported_per_class_hazards_included() -> None:
    classes = ("person", "bicycle", "obstacle", "warning triangle")
    pairs = [
        (
            [
                Detection("person", 0.9, (10, 10, 20, 30)),  # found
                Detection("obstacle", 0.8, (100, 100, 110, 110)),  # a false box
                Detection("obstacle", 0.1, (50, 50, 60, 60)),  # below the threshold: counts for neither
                Detection("warning triangle", 0.7, (70, 70, 74, 74)),  # found, though stored as a label alias
            ],
            {
                "boxes": [
                    box("person", (10, 10, 20, 30), 12.0),
                    box("person", (30, 10, 40, 30), 25.0),  # missed
                    box("person", (60, 10, 62, 14), 45.0),  # beyond 30 m: not in the recall set
                    box("obstacle", (50, 50, 60, 60), 20.0),  # missed at the threshold
                    box("warning_triangle", (70, 70, 74, 74), 28.0),
                ]
            },
        )
    ]
    scores = _score_detections(pairs, keep_at=0.25, classes=classes)
    per_class = scores["per_class"]
    assert per_class["person"] == {"within_30m": 2, "recall_30m": 0.5, "detections": 1, "precision": 1.0}
    assert per_class["obstacle"] == {"within_30m": 1, "recall_30m": 0.0, "detections": 1, "precision": 0.0}
    assert per_class["warning triangle"]["recall_30m"] == 1.0
    assert per_class["warning triangle"]["precision"] == 1.0
    assert per_class["bicycle"]["within_30m"] == 0 and per_class["bicycle"]["detections"] == 0
    # Pooled figures: pedestrians and cyclists only, precision over every class.
    assert scores["vru_within_30m"] == 2 and scores["vru_recall_30m"] == 0.5
    assert scores["vru_precision"] == 1.0
    assert scores["precision"] == round(2 / 3, 4)
    assert not scores["meets_bar"]

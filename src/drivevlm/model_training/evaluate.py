"""Held-out quality of the bundled models, and the one-call `evaluate_models` for the CLI.

Image-text model: R_static = cos(img, clear-road goal) - cos(img, collision goal) should rank "unsafe"
frames (a collision within 2 s, or a vulnerable road user within 10 m ahead) below clear-road frames (no
collision within 2 s, nothing within 15 m ahead in view): `r_static_auc`, the issue's bar. The stricter
`r_static_auc_all_frames` ranks unsafe frames against every other frame, near-but-safe ones included.
Also the accuracy of picking the nearer of the two goal texts (all frames).
Detector: mAP@0.5 over classes, precision at the shipped threshold, and recall of pedestrians and
cyclists within 30 m that are at least half visible; recall and precision per class as well.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drivevlm.data.boxes import MIN_VISIBLE, VRU_LABELS
from drivevlm.data.dataset import iter_shards, read_manifest
from drivevlm.eval.metrics import roc_auc
from drivevlm.models.detectors.coco import canonical_class
from drivevlm.models.detectors.tiny import CLASSES
from drivevlm.models.registry import BUNDLED_VLM_DIR

BUNDLED_ROOT = BUNDLED_VLM_DIR.parent  # drivevlm/models/bundled
CLIP_AUC_BAR = 0.9
VRU_RECALL_BAR = 0.9
PRECISION_BAR = 0.8
VLM_ACCURACY_BAR = 0.85
VRU_RANGE_M = 30.0
MIN_VISIBLE_FOR_RECALL = 0.5
IOU_MATCH = 0.5
THRESHOLD_GRID = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)


def is_clear_road(record: dict[str, Any]) -> bool:
    """A clear-road frame: no collision within 2 s, and no actor within 15 m ahead in the camera's view."""
    return not record["unsafe"] and not str(record["risk_category"]).endswith("_near")


def evaluate_aligned_clip(
    data_dir: str | Path, model: str | Path = "bundled", split: str = "heldout", limit: int | None = None
) -> dict[str, Any]:
    from drivevlm.model_training.train_aligned_clip import (
        NEGATIVE_GOAL,
        POSITIVE_GOAL,
        SAFE_GOALS,
        UNSAFE_GOALS,
    )
    from drivevlm.models.clip.aligned import AlignedClipEncoder

    encoder = AlignedClipEncoder(model)
    goals = encoder.encode_texts([POSITIVE_GOAL, NEGATIVE_GOAL])
    pools = encoder.encode_texts([*SAFE_GOALS, *UNSAFE_GOALS])
    embeddings: dict[str, list[np.ndarray]] = {"bev": [], "front": []}
    unsafe: list[bool] = []
    clear: list[bool] = []
    for bev, front, records in iter_shards(data_dir, split):
        take = len(records) if limit is None else min(len(records), limit - len(unsafe))
        embeddings["bev"].append(encoder.encode_images(bev[:take]))
        embeddings["front"].append(encoder.encode_images(front[:take]))
        unsafe.extend(bool(r["unsafe"]) for r in records[:take])
        clear.extend(is_clear_road(r) for r in records[:take])
        if limit is not None and len(unsafe) >= limit:
            break
    label = np.array(unsafe)
    against_clear = label | np.array(clear)
    result: dict[str, Any] = {
        "split": split,
        "frames": len(label),
        "unsafe_frames": int(label.sum()),
        "clear_road_frames": int(np.sum(clear)),
    }
    for view, parts in embeddings.items():
        image = np.concatenate(parts)
        r_static = image @ goals[0] - image @ goals[1]
        by_pool = (image @ pools[len(SAFE_GOALS) :].T).mean(1) > (image @ pools[: len(SAFE_GOALS)].T).mean(1)
        picked_unsafe = r_static < 0
        result[view] = {
            "r_static_auc": round(roc_auc(-r_static[against_clear], label[against_clear]), 4),
            "r_static_auc_all_frames": round(roc_auc(-r_static, label), 4),
            "retrieval_accuracy": round(float(np.mean(picked_unsafe == label)), 4),
            "retrieval_balanced_accuracy": round(
                0.5 * (float(np.mean(picked_unsafe[label])) + float(np.mean(~picked_unsafe[~label]))), 4
            ),
            "pool_retrieval_accuracy": round(float(np.mean(by_pool == label)), 4),
            "mean_r_static_safe": round(float(r_static[~label].mean()), 4),
            "mean_r_static_unsafe": round(float(r_static[label].mean()), 4),
        }
    result["meets_bar"] = bool(result["bev"]["r_static_auc"] >= CLIP_AUC_BAR)
    return result


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-9))


def _average_precision(scores: list[float], hits: list[bool], positives: int) -> float:
    if positives == 0:
        return float("nan")
    order = np.argsort(-np.array(scores))
    tp = np.cumsum(np.array(hits, dtype=float)[order])
    fp = np.cumsum(1.0 - np.array(hits, dtype=float)[order])
    recall = np.concatenate([[0.0], tp / positives, [1.0]])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1e-9), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * precision[1:]))


def _detector_outputs(
    model: str | Path,
    data_dir: str | Path,
    split: str,
    limit: int | None,
    episodes: Collection[str] | None,
    precision: str = "float32",
) -> tuple[dict[str, Any], list[tuple[list[Any], dict[str, Any]]]]:
    """Detections at a low score (0.05) for each frame, with its record: scored later at any threshold."""
    from drivevlm.models.detectors.tiny import TinyDetector

    detector = TinyDetector(model, threshold=0.05, precision=precision)
    pairs: list[tuple[list[Any], dict[str, Any]]] = []
    for _, front, records in iter_shards(data_dir, split):
        keep = [i for i, r in enumerate(records) if episodes is None or r["episode"] in episodes]
        if limit is not None:
            keep = keep[: max(limit - len(pairs), 0)]
        if keep:
            pairs.extend(zip(detector.detect(front[keep]), [records[i] for i in keep], strict=True))
        if limit is not None and len(pairs) >= limit:
            break
    return detector.config, pairs


def _precision(true_positives: int, false_positives: int) -> float:
    return round(true_positives / max(true_positives + false_positives, 1), 4)


def _score_detections(
    pairs: list[tuple[list[Any], dict[str, Any]]], keep_at: float, classes: Sequence[str] = CLASSES
) -> dict[str, Any]:
    """Greedy matching per class at IoU 0.5; boxes mostly hidden (visible < MIN_VISIBLE) count as neither.

    Recall and precision are also reported per class (`per_class`): the card's bars hold for each class a
    gate may name, hazards included, not only for pedestrians and cyclists pooled."""
    counts = ("positives", "within_30m", "found_30m", "kept_tp", "kept_fp")
    per_class: dict[str, dict[str, Any]] = {
        c: {"scores": [], "hits": [], **dict.fromkeys(counts, 0)} for c in classes
    }
    for detections, record in pairs:
        gts = record["boxes"]
        for cls in classes:
            tally = per_class[cls]
            mine = [g for g in gts if canonical_class(g["label"]) == cls]
            boxes = np.array([g["box"] for g in mine], dtype=float).reshape(-1, 4)
            countable = np.array([g["visible"] >= MIN_VISIBLE for g in mine], dtype=bool)
            recall_set = np.array(
                [g["distance_m"] <= VRU_RANGE_M and g["visible"] >= MIN_VISIBLE_FOR_RECALL for g in mine],
                dtype=bool,
            )
            tally["positives"] += int(countable.sum())
            used = np.zeros(len(mine), dtype=bool)
            strong = np.zeros(len(mine), dtype=bool)
            for det in sorted((d for d in detections if d.label == cls), key=lambda d: -d.score):
                hit = ignored = False
                if len(mine):
                    iou = _iou(np.array(det.box), boxes)
                    if det.score >= keep_at:
                        strong |= iou >= IOU_MATCH
                    iou[used] = 0.0
                    best = int(np.argmax(iou))
                    if iou[best] >= IOU_MATCH:
                        used[best] = True
                        hit, ignored = bool(countable[best]), not countable[best]
                if ignored:
                    continue
                tally["scores"].append(det.score)
                tally["hits"].append(hit)
                if det.score >= keep_at:
                    tally["kept_tp" if hit else "kept_fp"] += 1
            tally["within_30m"] += int(recall_set.sum())
            tally["found_30m"] += int((strong & recall_set).sum())
    ap = {c: _average_precision(v["scores"], v["hits"], v["positives"]) for c, v in per_class.items()}
    valid = [v for v in ap.values() if np.isfinite(v)]

    def summed(key: str, group: Collection[str]) -> int:
        return sum(v[key] for c, v in per_class.items() if c in group)

    vru = [c for c in classes if c in VRU_LABELS]
    vru_total = summed("within_30m", vru)
    result = {
        "frames": len(pairs),
        "threshold": keep_at,
        "ap50": {c: round(v, 4) for c, v in ap.items()},
        "map50": round(float(np.mean(valid)), 4) if valid else float("nan"),
        "vru_within_30m": vru_total,
        "vru_recall_30m": round(summed("found_30m", vru) / max(vru_total, 1), 4),
        "precision": _precision(summed("kept_tp", classes), summed("kept_fp", classes)),
        "vru_precision": _precision(summed("kept_tp", vru), summed("kept_fp", vru)),
        "per_class": {
            c: {
                "within_30m": v["within_30m"],
                "recall_30m": round(v["found_30m"] / max(v["within_30m"], 1), 4),
                "detections": v["kept_tp"] + v["kept_fp"],
                "precision": _precision(v["kept_tp"], v["kept_fp"]),
            }
            for c, v in per_class.items()
        },
    }
    result["meets_bar"] = bool(
        result["vru_recall_30m"] >= VRU_RECALL_BAR and result["vru_precision"] >= PRECISION_BAR
    )
    return result


def evaluate_detector(
    data_dir: str | Path,
    model: str | Path = "bundled",
    split: str = "heldout",
    limit: int | None = None,
    threshold: float | None = None,
    episodes: Collection[str] | None = None,
    precision: str = "float32",
) -> dict[str, Any]:
    """mAP@0.5, precision and VRU recall within 30 m at the model's own threshold (or `threshold`),
    computed in `precision` (float32, bfloat16 or auto)."""
    config, pairs = _detector_outputs(model, data_dir, split, limit, episodes, precision)
    keep_at = float(config.get("threshold", 0.3)) if threshold is None else threshold
    result = _score_detections(pairs, keep_at, tuple(config["classes"]))
    return {"split": split, "dtype": precision, **result}


def choose_threshold(
    data_dir: str | Path,
    model: str | Path,
    episodes: Collection[str],
    grid: Sequence[float] = THRESHOLD_GRID,
    split: str = "train",
) -> dict[str, Any]:
    """Score threshold chosen on validation episodes (never on held-out towns).

    The lowest threshold whose VRU precision reaches the bar (most recall at that precision); if none
    does, the one with the best F1 of VRU precision and recall.
    """
    config, pairs = _detector_outputs(model, data_dir, split, None, episodes)
    if not pairs:
        raise ValueError("episodes: no validation frames found for the given episode names")
    classes = tuple(config["classes"])
    sweep = [_score_detections(pairs, t, classes) for t in sorted(grid)]
    precise = [r for r in sweep if r["vru_precision"] >= PRECISION_BAR]

    def f1(r: dict[str, Any]) -> float:
        p, rc = r["vru_precision"], r["vru_recall_30m"]
        return 2 * p * rc / max(p + rc, 1e-9)

    best = precise[0] if precise else max(sweep, key=f1)
    keys = ("threshold", "vru_recall_30m", "vru_precision", "precision", "map50")
    return {
        "threshold": best["threshold"],
        "validation_frames": len(pairs),
        "validation": {k: best[k] for k in keys},
        "sweep": [{k: r[k] for k in keys[:3]} for r in sweep],
    }


def evaluate_models(
    data_dir: str | Path,
    root: str | Path | None = None,
    split: str = "heldout",
    limit: int | None = None,
) -> dict[str, Any]:
    """Re-measure both bundled models (or those under `root`) on a split; JSON-ready."""
    base = Path(root) if root is not None else BUNDLED_ROOT
    manifest = read_manifest(data_dir)
    return {
        "data": {"dir": str(data_dir), "frames": manifest["frames"], "split": split},
        "aligned_clip": evaluate_aligned_clip(data_dir, base / "aligned_clip", split, limit),
        "tiny_detector": evaluate_detector(data_dir, base / "tiny_detector", split, limit),
    }

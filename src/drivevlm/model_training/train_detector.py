"""Train the tiny CenterNet-style detector on front-camera frames with the simulator's ground-truth boxes.

Boxes mostly hidden behind nearer actors (visible share below `MIN_VISIBLE`) are neither positives nor
negatives: their heatmap cells are left out of the loss. Frames are flipped left-right at random.
Frames with a pedestrian or cyclist within 30 m are drawn `vru_boost` times as often as others, frames with
a motorway hazard the detector learns (an obstacle, a warning triangle) `hazard_boost` times. A share
of the training town's episodes (`val_every`: every n-th episode) is kept out of training and used to
choose the score threshold, so held-out towns are never used for tuning.
Also here: `export_yolo`, the same data in YOLO format for the optional ultralytics extra.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from drivevlm.atomic import write_atomic
from drivevlm.data.boxes import MIN_VISIBLE, VRU_LABELS
from drivevlm.data.dataset import iter_shards, load_split
from drivevlm.model_training.common import save_weights, set_seed_and_threads, write_json
from drivevlm.models.detectors.coco import HAZARD_CLASSES, canonical_class, check_class_names
from drivevlm.models.detectors.tiny import CLASSES, TinyCenterNet


@dataclass(frozen=True)
class DetectorTrainConfig:
    epochs: int = 5
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    stride: int = 4
    flip_test: bool = False
    threshold: float = 0.3
    seed: int = 0
    threads: int | None = None
    limit: int | None = 3000
    vru_boost: float = 1.0
    # Motorway hazards are rare in driving data (a few boxes in a hundred frames): drawn this much more often.
    hazard_boost: float = 1.0
    val_every: int = 0
    init: str | None = None
    # The operating point to ship (e.g. the gate threshold the presets run at); the validation
    # choice, if any, is still measured and recorded beside it.
    pin_threshold: float | None = None
    # What the model detects: COCO names and the motorway hazard classes ("obstacle", "warning triangle").
    # Boxes of other labels are background. With `init`, the classes both models share keep their heads.
    classes: tuple[str, ...] = CLASSES


def check_detector_classes(names: Sequence[str]) -> tuple[str, ...]:
    """Canonical names of what a detector is to learn: at least one, each once, COCO or a hazard class."""
    classes = check_class_names(names, "classes")
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes: need one or more distinct class names, got {list(names)}")
    return classes


def validation_episodes(records: list[dict[str, Any]], every: int) -> set[str]:
    """Every `every`-th episode of the split in order of appearance (none when `every` is 0)."""
    if every <= 0:
        return set()
    names = list(dict.fromkeys(r["episode"] for r in records))
    return set(names[every - 1 :: every])


def _has_near_vru(record: dict[str, Any]) -> bool:
    return any(
        g["label"] in VRU_LABELS and g["distance_m"] <= 30.0 and g["visible"] >= MIN_VISIBLE
        for g in record["boxes"]
    )


def _has_hazard(record: dict[str, Any], learnt: frozenset[str]) -> bool:
    return any(canonical_class(g["label"]) in learnt and g["visible"] >= MIN_VISIBLE for g in record["boxes"])


def draw_weights(
    records: list[dict[str, Any]], cfg: DetectorTrainConfig, classes: tuple[str, ...]
) -> np.ndarray:
    """How often each frame is drawn, relative to a frame with neither a near VRU nor a hazard."""
    hazards = frozenset(classes) & frozenset(HAZARD_CLASSES)
    vru = np.array([cfg.vru_boost if _has_near_vru(r) else 1.0 for r in records])
    hazard = np.array([cfg.hazard_boost if _has_hazard(r, hazards) else 1.0 for r in records])
    return vru * hazard


def targets(
    records: list[dict[str, Any]],
    size: int,
    flip: np.ndarray,
    stride: int = 4,
    classes: tuple[str, ...] = CLASSES,
) -> dict[str, torch.Tensor]:
    """Gaussian centre heatmaps, log sizes and offsets at the centre cells, masks of cells to learn from."""
    cells = size // stride
    n = len(records)
    heat = np.zeros((n, len(classes), cells, cells), np.float32)
    ignore = np.zeros((n, 1, cells, cells), bool)
    size_t = np.zeros((n, 2, cells, cells), np.float32)
    offset_t = np.zeros((n, 2, cells, cells), np.float32)
    centre = np.zeros((n, 1, cells, cells), bool)
    ys, xs = np.mgrid[0:cells, 0:cells]
    for i, record in enumerate(records):
        for gt in record["boxes"]:
            label = canonical_class(gt["label"])
            if label not in classes:
                continue  # e.g. a motorway obstacle: background to a detector without its class
            x1, y1, x2, y2 = gt["box"]
            if flip[i]:
                x1, x2 = size - x2, size - x1
            cx, cy = 0.5 * (x1 + x2) / stride, 0.5 * (y1 + y2) / stride
            ix, iy = min(int(cx), cells - 1), min(int(cy), cells - 1)
            if gt["visible"] < MIN_VISIBLE:
                ignore[i, 0, max(iy - 1, 0) : iy + 2, max(ix - 1, 0) : ix + 2] = True
                continue
            w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
            sigma = max(0.5, math.sqrt(w * h) / stride / 6.0)
            blob = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
            cls = classes.index(label)
            heat[i, cls] = np.maximum(heat[i, cls], blob)
            size_t[i, :, iy, ix] = (math.log(w), math.log(h))
            offset_t[i, :, iy, ix] = (cx - ix, cy - iy)
            centre[i, 0, iy, ix] = True
    ignore &= heat.max(axis=1, keepdims=True) < 1.0
    return {
        "heatmap": torch.from_numpy(heat),
        "ignore": torch.from_numpy(ignore),
        "size": torch.from_numpy(size_t),
        "offset": torch.from_numpy(offset_t),
        "centre": torch.from_numpy(centre),
    }


def detector_loss(outputs: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on the heatmap plus L1 on size and offset at centres."""
    pred = torch.sigmoid(outputs["heatmap"]).clamp(1e-4, 1 - 1e-4)
    gt = target["heatmap"]
    keep = (~target["ignore"]).float()
    positive = gt.eq(1.0).float()
    pos_loss = torch.log(pred) * (1 - pred) ** 2 * positive
    neg_loss = torch.log(1 - pred) * pred**2 * (1 - gt) ** 4 * (1 - positive) * keep
    count = positive.sum().clamp(min=1.0)
    focal = -(pos_loss.sum() + neg_loss.sum()) / count
    mask = target["centre"].float()
    size_loss = (functional.l1_loss(outputs["size"], target["size"], reduction="none") * mask).sum() / count
    offset_loss = (
        functional.l1_loss(outputs["offset"], target["offset"], reduction="none") * mask
    ).sum() / count
    return focal + size_loss + offset_loss


def _carry_class_heads(
    net: TinyCenterNet,
    start: dict[str, torch.Tensor],
    start_classes: tuple[str, ...],
    classes: tuple[str, ...],
) -> list[str]:
    """Copy the heatmap channels of the classes `net` shares with the model it starts from (a model
    extended by new classes keeps what it knew of the old ones); returns the classes carried over."""
    kept = [c for c in classes if c in start_classes]
    weight, bias = start.get("heatmap.weight"), start.get("heatmap.bias")
    if weight is None or bias is None or weight.shape[1:] != net.heatmap.weight.shape[1:]:
        return []
    with torch.no_grad():
        for name in kept:
            net.heatmap.weight[classes.index(name)] = weight[start_classes.index(name)]
            net.heatmap.bias[classes.index(name)] = bias[start_classes.index(name)]
    return kept


def train_detector(
    data_dir: str | Path, out_dir: str | Path, config: DetectorTrainConfig | None = None, log: Any = print
) -> dict[str, Any]:
    """Train on the `train` split's front frames; write model.safetensors + config.json to `out_dir`."""
    cfg = config or DetectorTrainConfig()
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError(f"epochs, batch_size: must be positive, got {cfg.epochs}, {cfg.batch_size}")
    if cfg.vru_boost <= 0 or cfg.hazard_boost <= 0 or cfg.val_every < 0:
        raise ValueError(
            "vru_boost, hazard_boost, val_every: need > 0, > 0 and >= 0, got "
            f"{cfg.vru_boost}, {cfg.hazard_boost}, {cfg.val_every}"
        )
    if cfg.pin_threshold is not None and not 0.0 <= cfg.pin_threshold <= 1.0:
        raise ValueError(f"pin_threshold: must lie in [0, 1], got {cfg.pin_threshold}")
    classes = check_detector_classes(cfg.classes)
    set_seed_and_threads(cfg.seed, cfg.threads)
    started = time.perf_counter()
    frames = load_split(data_dir, "train", cfg.limit)
    held_back = validation_episodes(frames.records, cfg.val_every)
    use = [i for i, r in enumerate(frames.records) if r["episode"] not in held_back]
    if not use:
        raise ValueError(f"val_every: {cfg.val_every} leaves no training episodes")
    images, records = frames.front[use], [frames.records[i] for i in use]
    del frames
    size = images.shape[1]
    if images.shape[1] != images.shape[2] or size % 16:
        raise ValueError(f"front frames: need square frames a multiple of 16 px, got {images.shape[1:3]}")
    net = TinyCenterNet(len(classes), width=cfg.width, stride=cfg.stride)
    if cfg.init is not None:
        from drivevlm.models.detectors.tiny import load_tiny_detector, resolve_detector_dir

        # Another output stride changes the top-down path and the heads: those start afresh.
        start_net, start_config = load_tiny_detector(resolve_detector_dir(cfg.init))
        start = start_net.state_dict()
        own = net.state_dict()
        shared = {k: v for k, v in start.items() if k in own and own[k].shape == v.shape}
        net.load_state_dict(shared, strict=False)
        kept = _carry_class_heads(net, start, tuple(start_config["classes"]), classes)
        log(f"tiny detector: {len(shared)} of {len(own)} tensors taken from {cfg.init}; class heads {kept}")
    weight = draw_weights(records, cfg, classes)
    draw = weight / weight.sum()
    steps_per_epoch = max(1, math.ceil(len(images) / cfg.batch_size))
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    rng = np.random.default_rng(cfg.seed)
    loss_value = float("nan")
    for epoch in range(cfg.epochs):
        net.train()
        order = (
            rng.choice(len(images), size=len(images), p=draw)
            if cfg.vru_boost != 1.0 or cfg.hazard_boost != 1.0
            else (rng.permutation(len(images)))
        )
        total = 0.0
        for step in range(steps_per_epoch):
            pick = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            flip = rng.random(len(pick)) < 0.5
            batch = images[pick].copy()
            batch[flip] = batch[flip, :, ::-1]
            tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
            target = targets([records[i] for i in pick], size, flip, cfg.stride, classes)
            loss = detector_loss(net(tensor), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item()
        loss_value = total / steps_per_epoch
        log(f"tiny detector: epoch {epoch + 1}/{cfg.epochs} loss {loss_value:.4f}")
    summary = {
        "train_images": len(images),
        "epochs": cfg.epochs,
        "final_loss": round(loss_value, 4),
        "train_seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
    }
    model_config = {
        "architecture": "drivevlm.models.detectors.tiny.TinyCenterNet",
        "classes": list(classes),
        "input_size": size,
        "width": cfg.width,
        "stride": cfg.stride,
        "flip_test": cfg.flip_test,
        "threshold": cfg.threshold if cfg.pin_threshold is None else cfg.pin_threshold,
        "training": {**cfg.__dict__, **summary, "data_dir": str(data_dir)},
    }
    save_weights(Path(out_dir), net.state_dict(), model_config)
    if held_back:
        from drivevlm.model_training.evaluate import choose_threshold

        chosen = choose_threshold(data_dir, out_dir, held_back)
        if cfg.pin_threshold is None:
            model_config["threshold"] = chosen["threshold"]
        model_config["threshold_choice"] = {**chosen, "validation_episodes": sorted(held_back)}
        write_json(Path(out_dir) / "config.json", model_config)
        summary["threshold"] = model_config["threshold"]
        summary["validation"] = chosen["validation"]
        log(f"tiny detector: threshold {chosen['threshold']} chosen on validation {chosen['validation']}")
        if cfg.pin_threshold is not None:
            log(f"tiny detector: shipping the pinned threshold {cfg.pin_threshold} instead")
    return summary


def export_yolo(
    data_dir: str | Path,
    out_dir: str | Path,
    min_visible: float = MIN_VISIBLE,
    classes: Sequence[str] = CLASSES,
) -> Path:
    """Write the data set's front frames and boxes in YOLO format; returns the path of its data.yaml.

    ``out_dir/images/{train,val}/*.png``, ``out_dir/labels/{train,val}/*.txt`` (class cx cy w h, normalised),
    with the held-out towns as `val`; `classes` (as `DetectorTrainConfig.classes`, the hazard classes too)
    are numbered in the order given. Train a YOLOv8n on it with the `yolo` extra:
    ``YOLO("yolov8n.yaml").train(data=<data.yaml>, imgsz=<frame size>)``.
    """
    from PIL import Image

    classes = check_detector_classes(classes)
    root = Path(out_dir)
    for split, yolo_split in (("train", "train"), ("heldout", "val")):
        for _, front, records in iter_shards(data_dir, split):
            for image, record in zip(front, records, strict=True):
                name = f"{record['shard']}_{record['index']:04d}"
                (root / "images" / yolo_split).mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / "images" / yolo_split / f"{name}.png")
                height, width = image.shape[:2]
                lines = []
                for gt in record["boxes"]:
                    # As in `targets`: the data's "warning_triangle" is the class "warning triangle".
                    label = canonical_class(gt["label"])
                    if gt["visible"] < min_visible or label not in classes:
                        continue
                    x1, y1, x2, y2 = gt["box"]
                    centre = (0.5 * (x1 + x2) / width, 0.5 * (y1 + y2) / height)
                    extent = ((x2 - x1) / width, (y2 - y1) / height)
                    lines.append(
                        f"{classes.index(label)} {centre[0]:.6f} {centre[1]:.6f} "
                        f"{extent[0]:.6f} {extent[1]:.6f}\n"
                    )
                write_atomic(root / "labels" / yolo_split / f"{name}.txt", "".join(lines).encode())
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(classes))
    data_yaml = root / "data.yaml"
    text = f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}"
    write_atomic(data_yaml, text.encode())
    return data_yaml

"""RT-DETR (Apache-2.0) through transformers: the default detector, needing no torchvision.

Works with any transformers object-detection checkpoint whose image processor has
``post_process_object_detection`` (RT-DETR, RT-DETRv2, DETR, ...). Real weights: e.g.
``PekingU/rtdetr_r18vd_coco_o365`` or ``PekingU/rtdetr_r50vd`` by model id or local folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from drivevlm.models.base import Detection, check_images
from drivevlm.models.detectors.common import check_classes, check_threshold, to_detections
from drivevlm.models.loading import resolve_device, resolve_dtype, resolve_model_dir


class TransformersDetector:
    """A transformers object detector reporting COCO class names above a confidence threshold."""

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        *,
        threshold: float = 0.25,
        classes: Iterable[str] | None = None,
        batch_size: int = 8,
        dtype: str | None = None,
        revision: str | None = None,
        allow_download: bool = False,
    ) -> None:
        from transformers import AutoImageProcessor, AutoModelForObjectDetection

        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.threshold = check_threshold(threshold)
        self.classes = check_classes(classes)
        self.batch_size = batch_size
        folder = resolve_model_dir(model, revision=revision, allow_download=allow_download)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.name = f"transformers-detector:{model}"
        self.model = AutoModelForObjectDetection.from_pretrained(
            folder, dtype=self.dtype, local_files_only=True
        )
        self.model.to(self.device).eval()
        self.image_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        self.id2label = {int(k): str(v) for k, v in self.model.config.id2label.items()}

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray] | np.ndarray) -> list[list[Detection]]:
        batch = check_images(images)
        results: list[list[Detection]] = []
        for start in range(0, len(batch), self.batch_size):
            part = batch[start : start + self.batch_size]
            inputs = self.image_processor(images=list(part), return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, self.dtype)
            outputs = self.model(pixel_values=pixels)
            sizes = [image.shape[:2] for image in part]
            found = self.image_processor.post_process_object_detection(
                outputs, threshold=self.threshold, target_sizes=sizes
            )
            for image, raw in zip(part, found, strict=True):
                labels = [self.id2label.get(int(i), f"LABEL_{int(i)}") for i in raw["labels"]]
                results.append(
                    to_detections(
                        raw["boxes"].float().cpu().numpy(),
                        raw["scores"].float().cpu().numpy(),
                        labels,
                        self.threshold,
                        self.classes,
                        image.shape,
                    )
                )
        return results

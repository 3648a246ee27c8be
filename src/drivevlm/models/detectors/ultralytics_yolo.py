"""Ultralytics YOLO (AGPL-3.0) detector; `yolo` extra. Imported only when this backend is selected.

``model`` is a local ``.pt`` checkpoint (e.g. ``yolov8n.pt``), looked up as given and in ultralytics'
weights folder, never downloaded; a ``.yaml`` architecture (``yolov8n.yaml``) builds an untrained model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from drivevlm.models.base import Detection, ModelNotFoundError, check_images
from drivevlm.models.detectors.coco import COCO_CLASSES
from drivevlm.models.detectors.common import check_classes, check_threshold, to_detections
from drivevlm.models.loading import resolve_device


class UltralyticsYoloDetector:
    """A YOLO detector reporting COCO class names above a confidence threshold."""

    def __init__(
        self,
        model: str = "yolov8n.pt",
        device: str = "cpu",
        *,
        threshold: float = 0.25,
        classes: Iterable[str] | None = None,
        image_size: int = 640,
        batch_size: int = 8,
    ) -> None:
        try:
            from ultralytics import YOLO
        except ImportError as error:
            raise ImportError(
                "the ultralytics detector needs the `yolo` extra (AGPL-3.0): pip install 'drivevlm[yolo]'"
            ) from error
        if batch_size < 1 or image_size < 32:
            raise ValueError(f"batch_size >= 1 and image_size >= 32 expected, got {batch_size}, {image_size}")
        self.threshold = check_threshold(threshold)
        self.classes = check_classes(classes)
        self.batch_size = batch_size
        self.image_size = image_size
        self.device = resolve_device(device)
        source = model if model.endswith((".yaml", ".yml")) else str(self._checkpoint(model))
        self.model = YOLO(source)
        self.name = f"ultralytics:{model}" + (":random-weights" if source.endswith((".yaml", ".yml")) else "")
        names = {int(k): str(v) for k, v in self.model.names.items()}
        # An architecture built from yaml numbers its 80 classes; those are COCO's, in YOLO's order.
        if len(names) == len(COCO_CLASSES) and all(v.isdigit() for v in names.values()):
            names = dict(enumerate(COCO_CLASSES))
        self.names = names

    @staticmethod
    def _checkpoint(model: str) -> Path:
        from ultralytics.utils import SETTINGS

        given = Path(model).expanduser()
        candidates = [given, Path(SETTINGS.get("weights_dir", "weights")) / given.name]
        for path in candidates:
            if path.is_file():
                return path
        raise ModelNotFoundError(
            model,
            [p.resolve() for p in candidates],
            hint="ultralytics checkpoints are not downloaded offline",
        )

    def detect(self, images: Sequence[np.ndarray] | np.ndarray) -> list[list[Detection]]:
        batch = check_images(images)
        results: list[list[Detection]] = []
        for start in range(0, len(batch), self.batch_size):
            part = batch[start : start + self.batch_size]
            # ultralytics treats numpy arrays as OpenCV BGR.
            bgr = [np.ascontiguousarray(image[..., ::-1]) for image in part]
            predictions = self.model.predict(
                bgr, conf=self.threshold, imgsz=self.image_size, device=str(self.device), verbose=False
            )
            for image, prediction in zip(part, predictions, strict=True):
                boxes = prediction.boxes
                labels = [self.names.get(int(c), str(int(c))) for c in boxes.cls.cpu().numpy()]
                results.append(
                    to_detections(
                        boxes.xyxy.cpu().numpy(),
                        boxes.conf.cpu().numpy(),
                        labels,
                        self.threshold,
                        self.classes,
                        image.shape,
                    )
                )
        return results

"""torchvision SSDlite320 / SSD300 / Faster R-CNN (BSD-3) detectors; needs the `vision` extra.

Weights: ``weights=None`` looks for torchvision's COCO checkpoint in the torch hub cache
(``$TORCH_HOME/hub/checkpoints``) and never downloads; a file path loads that state dict;
``"random"`` builds an untrained model (tests, training from scratch) and says so in its name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from drivevlm.models.base import Detection, ModelNotFoundError, check_images
from drivevlm.models.detectors.coco import CLASS_BY_CATEGORY_ID
from drivevlm.models.detectors.common import check_classes, check_threshold, to_detections
from drivevlm.models.loading import resolve_device

# torchvision numbers COCO classes by the original category ids 1..90, with 0 as background.
TORCHVISION_COCO_CLASS_COUNT = 91


class TorchvisionSsdDetector:
    """A torchvision detection model by architecture name, reporting COCO class names."""

    def __init__(
        self,
        model: str = "ssdlite320_mobilenet_v3_large",
        device: str = "cpu",
        *,
        weights: str | None = None,
        threshold: float = 0.25,
        classes: Iterable[str] | None = None,
        batch_size: int = 8,
    ) -> None:
        try:
            import torchvision
        except ImportError as error:
            raise ImportError(
                "the torchvision_ssd detector needs the `vision` extra: pip install 'drivevlm[vision]'"
            ) from error
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        if model not in torchvision.models.list_models(module=torchvision.models.detection):
            raise ValueError(
                f"model: {model!r} is not a torchvision detection model; expected one of "
                f"{torchvision.models.list_models(module=torchvision.models.detection)}"
            )
        self.threshold = check_threshold(threshold)
        self.classes = check_classes(classes)
        self.batch_size = batch_size
        self.device = resolve_device(device)
        network = torchvision.models.get_model(
            model, weights=None, weights_backbone=None, num_classes=TORCHVISION_COCO_CLASS_COUNT
        )
        if weights == "random":
            self.name = f"torchvision:{model}:random-weights"
        else:
            path = self._weights_file(torchvision, model, weights)
            network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            self.name = f"torchvision:{model}:{path.name}"
        self.model = network.to(self.device).eval()

    @staticmethod
    def _weights_file(torchvision: object, model: str, weights: str | None) -> Path:
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise ModelNotFoundError(
                    weights, [path.resolve()], hint="expected a torchvision state-dict file"
                )
            return path
        from torchvision.models import get_model_weights

        url = get_model_weights(model).DEFAULT.url  # type: ignore[attr-defined]
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        if not path.is_file():
            raise ModelNotFoundError(
                model,
                [path],
                hint=f"copy {url} there, pass weights=<file>, or weights='random' for an untrained model",
            )
        return path

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray] | np.ndarray) -> list[list[Detection]]:
        batch = check_images(images)
        results: list[list[Detection]] = []
        for start in range(0, len(batch), self.batch_size):
            part = batch[start : start + self.batch_size]
            tensors = [
                torch.from_numpy(image).permute(2, 0, 1).float().div(255).to(self.device) for image in part
            ]
            for image, raw in zip(part, self.model(tensors), strict=True):
                ids = raw["labels"].cpu().numpy()
                known = np.array([int(i) in CLASS_BY_CATEGORY_ID for i in ids], bool)
                results.append(
                    to_detections(
                        raw["boxes"].float().cpu().numpy()[known],
                        raw["scores"].float().cpu().numpy()[known],
                        [CLASS_BY_CATEGORY_ID[int(i)] for i in ids[known]],
                        self.threshold,
                        self.classes,
                        image.shape,
                    )
                )
        return results

"""A tiny CenterNet-style detector of our own (pure torch, Apache-2.0), trained on simulator front frames.

Per class a centre heatmap at stride 4 (or 2), plus box size (log pixels) and sub-cell offset heads on a
small CNN with a top-down path. Stride 2 adds one more merge level: far pedestrians a few pixels wide,
crowded near the vanishing point, then fall in separate heatmap cells. Decoding keeps local heatmap
maxima (3x3 max-pool) above a score threshold. Labels are COCO names (person, bicycle, car,
motorcycle), like every other detector backend, plus the motorway hazard classes where a model was
trained on them (its config.json lists its classes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torch.nn.utils.fusion import fuse_conv_bn_eval

from drivevlm.models.base import Detection, check_images
from drivevlm.models.detectors.coco import check_class_names
from drivevlm.models.loading import resolve_bundled_dir
from drivevlm.precision import autocast_dtype

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled" / "tiny_detector"
BUNDLED_NAMES = ("bundled", "drivevlm/tiny-detector")
STRIDES = (4, 2)
# The bundled model's classes; a model trained with others lists its own in config.json.
CLASSES = ("person", "bicycle", "car", "motorcycle")


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TinyCenterNet(nn.Module):
    """Backbone at strides 2..16, top-down merge back to `stride` (4 or 2), three 1x1 heads."""

    def __init__(self, num_classes: int = len(CLASSES), width: int = 16, stride: int = 4) -> None:
        super().__init__()
        if stride not in STRIDES:
            raise ValueError(f"stride: must be one of {STRIDES}, got {stride!r}")
        self.stride = stride
        w = width
        self.stage1 = nn.Sequential(_conv(3, w, 2), _conv(w, 2 * w, 2), _conv(2 * w, 2 * w))  # /4
        self.stage2 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # /8
        self.stage3 = nn.Sequential(_conv(4 * w, 6 * w, 2), _conv(6 * w, 6 * w))  # /16
        self.lateral3 = nn.Conv2d(6 * w, 4 * w, 1)
        self.merge2 = _conv(4 * w, 3 * w)
        self.lateral1 = nn.Conv2d(2 * w, 3 * w, 1)
        self.merge1 = _conv(3 * w, 3 * w)
        head = 3 * w
        if stride == 2:
            self.lateral0 = nn.Conv2d(w, 2 * w, 1)
            self.reduce1 = nn.Conv2d(3 * w, 2 * w, 1)
            self.merge0 = _conv(2 * w, 2 * w)
            head = 2 * w
        self.heatmap = nn.Conv2d(head, num_classes, 1)
        self.size = nn.Conv2d(head, 2, 1)
        self.offset = nn.Conv2d(head, 2, 1)
        nn.init.constant_(self.heatmap.bias, -2.19)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: (N, 3, H, W) in [0, 1], H and W multiples of 16. Heatmap logits, log sizes, offsets."""
        x = (images - 0.5) / 0.25
        c0 = self.stage1[0](x)
        c1 = self.stage1[1:](c0)
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        p2 = self.merge2(c2 + functional.interpolate(self.lateral3(c3), size=c2.shape[-2:], mode="nearest"))
        p1 = self.merge1(
            self.lateral1(c1)
            + functional.interpolate(p2, size=c1.shape[-2:], mode="bilinear", align_corners=False)
        )
        if self.stride == 2:
            p1 = self.merge0(
                self.lateral0(c0)
                + functional.interpolate(
                    self.reduce1(p1), size=c0.shape[-2:], mode="bilinear", align_corners=False
                )
            )
        return {"heatmap": self.heatmap(p1), "size": self.size(p1), "offset": self.offset(p1)}


def decode(
    outputs: dict[str, torch.Tensor],
    threshold: float,
    max_detections: int,
    scale: tuple[float, float],
    stride: int = 4,
    classes: Sequence[str] = CLASSES,
) -> list[list[Detection]]:
    """Local maxima of the heatmap above `threshold` as boxes, in pixels scaled by (sx, sy); heatmap
    channel i is `classes[i]`."""
    heat = torch.sigmoid(outputs["heatmap"])
    peaks = heat * (functional.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    n, channels, h, w = heat.shape
    if channels != len(classes):
        raise ValueError(f"classes: {len(classes)} names for a heatmap of {channels} channels")
    scores, flat = peaks.reshape(n, -1).topk(min(max_detections, channels * h * w))
    results: list[list[Detection]] = []
    for b in range(n):
        found = []
        for score, index in zip(scores[b].tolist(), flat[b].tolist(), strict=True):
            if score < threshold:
                break
            cls, cell = divmod(index, h * w)
            cy, cx = divmod(cell, w)
            ox, oy = outputs["offset"][b, :, cy, cx].tolist()
            bw, bh = torch.exp(outputs["size"][b, :, cy, cx]).tolist()
            x, y = (cx + ox) * stride, (cy + oy) * stride
            box = (
                (x - bw / 2) * scale[0],
                (y - bh / 2) * scale[1],
                (x + bw / 2) * scale[0],
                (y + bh / 2) * scale[1],
            )
            found.append(Detection(classes[cls], float(score), tuple(float(v) for v in box)))  # type: ignore[arg-type]
        results.append(found)
    return results


def with_mirror(
    net: Callable[[torch.Tensor], dict[str, torch.Tensor]], images: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Outputs averaged over the images and their left-right mirrors (test-time flip), as logits again.

    A mirrored cell's sub-cell x offset o becomes 1 - o: the centre sits at the same distance from the
    cell's other edge.
    """
    both = net(torch.cat([images, images.flip(-1)]))  # one pass over twice the batch: fewer, larger calls
    plain = {key: value[: len(images)] for key, value in both.items()}
    mirrored = {key: value[len(images) :] for key, value in both.items()}
    heat = 0.5 * (torch.sigmoid(plain["heatmap"]) + torch.sigmoid(mirrored["heatmap"]).flip(-1))
    offset = mirrored["offset"].flip(-1)
    offset = torch.stack([1.0 - offset[:, 0], offset[:, 1]], dim=1)
    return {
        "heatmap": torch.logit(heat, eps=1e-6),
        "size": 0.5 * (plain["size"] + mirrored["size"].flip(-1)),
        "offset": 0.5 * (plain["offset"] + offset),
    }


def resolve_detector_dir(model: str | Path) -> Path:
    return resolve_bundled_dir(model, BUNDLED_DIR, BUNDLED_NAMES)


def load_tiny_detector(folder: Path, device: str = "cpu") -> tuple[TinyCenterNet, dict[str, Any]]:
    """The model in eval mode and its config.json, whose `classes` are checked and made canonical names."""
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text())
    classes = check_class_names(config.get("classes", []), f"classes in {folder / 'config.json'}")
    if not classes:
        raise ValueError(f"classes: {folder / 'config.json'} lists none")
    config["classes"] = list(classes)
    net = TinyCenterNet(len(classes), width=int(config["width"]), stride=int(config.get("stride", 4)))
    net.load_state_dict({k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()})
    return net.to(device).eval(), config


def fuse_batch_norms(net: nn.Module) -> None:
    """Fold each eval-mode BatchNorm into the convolution before it (inference only: same outputs,
    one pass less over every feature map)."""
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            for index in range(len(module) - 1):
                conv, norm = module[index], module[index + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    module[index] = fuse_conv_bn_eval(conv, norm)
                    module[index + 1] = nn.Identity()


class TinyDetector:
    """`make_detector("tiny", "bundled", threshold=0.3)`: the bundled CenterNet-style detector.

    `threshold` and `flip_test` (average each frame with its mirror: fewer false boxes, two to three times
    the compute) default to the model's config.json. Images go through in batches of 8 (4 frames and their
    mirrors with the flip): larger batches cost more per frame on a CPU (2 threads, with the flip: 8.8 ms a
    frame in 4s, 13.2 ms in 16s).
    `precision` (float32, bfloat16, auto) is the convolutions' autocast type; `auto` picks bfloat16 only on
    a CPU that multiplies it natively (MODEL_CARD.md: its held-out figures beside float32's).
    """

    def __init__(
        self,
        model: str | Path = "bundled",
        device: str = "cpu",
        threshold: float | None = None,
        max_detections: int = 50,
        batch_size: int = 8,
        flip_test: bool | None = None,
        precision: str = "float32",
    ) -> None:
        folder = resolve_detector_dir(model)
        self.device = torch.device(device)
        self.net, self.config = load_tiny_detector(folder, device)
        self.classes = tuple(self.config["classes"])
        fuse_batch_norms(self.net)
        self.input_size = int(self.config["input_size"])
        chosen = float(self.config.get("threshold", 0.3)) if threshold is None else float(threshold)
        if not 0.0 <= chosen <= 1.0:
            raise ValueError(f"threshold: must lie in [0, 1], got {threshold!r}")
        self.threshold = chosen
        self.flip_test = bool(self.config.get("flip_test", False)) if flip_test is None else flip_test
        self.max_detections = max_detections
        self.batch_size = batch_size
        self.autocast = autocast_dtype(precision, self.device)
        self.name = f"tiny:{model}"

    def _forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network's outputs in float32, computed under the chosen autocast type."""
        if self.autocast is None:
            return self.net(images)  # type: ignore[no-any-return]
        with torch.autocast(self.device.type, dtype=self.autocast):
            outputs = self.net(images)
        return {key: value.float() for key, value in outputs.items()}

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray] | np.ndarray) -> list[list[Detection]]:
        batch = check_images(images)
        height, width = batch.shape[1:3]
        scale = (width / self.input_size, height / self.input_size)
        results: list[list[Detection]] = []
        # A frame and its mirror go through together: batch_size counts images per forward pass.
        step = max(self.batch_size // 2, 1) if self.flip_test else self.batch_size
        for start in range(0, len(batch), step):
            tensor = torch.from_numpy(np.ascontiguousarray(batch[start : start + step]))
            # HWC frames as an NCHW tensor with channels-last strides: oneDNN's fastest layout on a CPU.
            tensor = tensor.to(self.device).permute(0, 3, 1, 2).float() / 255.0
            if (height, width) != (self.input_size, self.input_size):
                tensor = functional.interpolate(
                    tensor, size=(self.input_size, self.input_size), mode="bilinear", antialias=True
                )
            outputs = with_mirror(self._forward, tensor) if self.flip_test else self._forward(tensor)
            results.extend(
                decode(outputs, self.threshold, self.max_detections, scale, self.net.stride, self.classes)
            )
        return results

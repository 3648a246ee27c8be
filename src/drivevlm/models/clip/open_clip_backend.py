"""OpenCLIP image-text encoder (needs the `vision` extra: open_clip_torch and torchvision).

Model names:
- ``"ViT-B-32:laion2b_s34b_b79k"`` (architecture:tag),
  or ``model="ViT-B-32", pretrained="laion2b_s34b_b79k"``: the tag's weights
  are looked up in the Hugging Face cache, never downloaded unless allowed;
- ``pretrained="/path/to/weights.safetensors"``: a local weights file for a built-in architecture;
- ``"hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"``: a Hub repo with ``open_clip_config.json``,
  read from the cache;
- a local folder (or ``"local-dir:/path"``) holding ``open_clip_config.json`` and the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivevlm.models.base import ModelNotFoundError, check_images
from drivevlm.models.clip.transformers_clip import check_texts, normalised
from drivevlm.models.loading import resolve_device, resolve_hf_file, resolve_model_dir

OPEN_CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class OpenClipEncoder:
    """An OpenCLIP model with its own tokenizer and preprocessing, batched on the chosen device."""

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        *,
        pretrained: str | None = None,
        batch_size: int = 32,
        precision: str = "fp32",
        allow_download: bool = False,
    ) -> None:
        try:
            import open_clip
        except ImportError as error:
            raise ImportError(
                "the open_clip backend needs the `vision` extra (open_clip_torch, torchvision): "
                "pip install 'drivevlm[vision]'"
            ) from error
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.name = f"open_clip:{model}" + (f":{pretrained}" if pretrained else "")
        architecture, weights = self._resolve(open_clip, str(model), pretrained, allow_download)
        created: Any = open_clip.create_model_and_transforms(
            architecture, pretrained=weights, precision=precision, device=self.device
        )
        self.model, _, self.preprocess = created
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(architecture)
        self.embedding_dim = int((open_clip.get_model_config(architecture) or {}).get("embed_dim", 0))

    @staticmethod
    def _resolve(
        open_clip: Any, model: str, pretrained: str | None, allow_download: bool
    ) -> tuple[str, str | None]:
        """Turn every accepted model spelling into (architecture or local-dir:path, local weights file)."""
        if model.startswith("local-dir:"):
            model = model[len("local-dir:") :]
        if model.startswith("hf-hub:"):
            folder = resolve_model_dir(model[len("hf-hub:") :], allow_download=allow_download)
            return f"local-dir:{folder}", None
        as_path = Path(model).expanduser()
        if as_path.is_dir():
            if not (as_path / "open_clip_config.json").is_file():
                raise ModelNotFoundError(
                    model, [as_path / "open_clip_config.json"], hint="not an OpenCLIP folder"
                )
            return f"local-dir:{as_path.resolve()}", None
        if ":" in model and pretrained is None:
            model, pretrained = model.split(":", 1)
        if model not in open_clip.list_models():
            raise ValueError(
                f"model: {model!r} is neither a folder nor an OpenCLIP architecture; "
                f"known architectures include {open_clip.list_models()[:20]} ..."
            )
        if not pretrained:
            tags = open_clip.list_pretrained_tags_by_model(model)
            raise ValueError(
                f"pretrained: name the weights for {model!r}, e.g. one of {tags} or a local file"
            )
        if Path(pretrained).expanduser().is_file():
            return model, str(Path(pretrained).expanduser())
        config = open_clip.get_pretrained_cfg(model, pretrained)
        if not config:
            tags = open_clip.list_pretrained_tags_by_model(model)
            raise ModelNotFoundError(
                f"{model}:{pretrained}", [Path(pretrained).expanduser().resolve()],
                hint=f"not a file and not a known tag; known tags for {model}: {tags}",
            )  # fmt: skip
        repo = str(config.get("hf_hub", "")).strip("/")
        if not repo:
            raise ModelNotFoundError(
                f"{model}:{pretrained}",
                [],
                hint="this tag has no Hugging Face repo; pass a local weights file",
            )
        if "/" in repo.split("/", 1)[1]:
            repo, filename = repo.rsplit("/", 1)
            weights = resolve_hf_file(repo, (filename,), allow_download=allow_download)
        else:
            weights = resolve_hf_file(repo, OPEN_CLIP_WEIGHT_FILES, allow_download=allow_download)
        return model, str(weights)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        from PIL import Image

        batch = check_images(images)
        chunks = []
        for start in range(0, len(batch), self.batch_size):
            part = batch[start : start + self.batch_size]
            pixels = torch.stack([self.preprocess(Image.fromarray(image)) for image in part])
            chunks.append(normalised(self.model.encode_image(pixels.to(self.device))))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.embedding_dim), np.float32)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        items = check_texts(texts)
        chunks = []
        for start in range(0, len(items), self.batch_size):
            tokens = self.tokenizer(items[start : start + self.batch_size])
            chunks.append(normalised(self.model.encode_text(tokens.to(self.device))))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.embedding_dim), np.float32)

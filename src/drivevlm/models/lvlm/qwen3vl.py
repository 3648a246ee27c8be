"""Qwen3-VL run in-process with transformers: several frames and a prompt in, text out.

Qwen3VLProcessor cannot be built without torchvision (its video processor needs it), so this backend
does the processor's work itself: render the chat, run the Qwen2-VL image processor, expand each
``<|image_pad|>`` into one token per merged vision patch, and pass ``mm_token_type_ids`` to
``generate`` (without it, generation silently uses text-only positions).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from drivevlm.models.base import check_images
from drivevlm.models.loading import resolve_device, resolve_dtype, resolve_model_dir, weights_tag

IMAGE_PAD = "<|image_pad|>"
IMAGE_SLOT = "<|vision_start|>" + IMAGE_PAD + "<|vision_end|>"


def qwen_chat_text(image_count: int, prompt: str) -> str:
    """The Qwen3-VL Instruct chat format for one user turn (images, then text) and the assistant cue."""
    return f"<|im_start|>user\n{IMAGE_SLOT * image_count}{prompt}<|im_end|>\n<|im_start|>assistant\n"


def expand_image_pads(text: str, tokens_per_image: Sequence[int]) -> str:
    """Replace the i-th ``<|image_pad|>`` by tokens_per_image[i] copies, as the model expects."""
    pieces = text.split(IMAGE_PAD)
    if len(pieces) - 1 != len(tokens_per_image):
        raise ValueError(
            f"chat text has {len(pieces) - 1} {IMAGE_PAD} slots for {len(tokens_per_image)} images; "
            "the chat template must emit one slot per image"
        )
    out = [pieces[0]]
    for count, piece in zip(tokens_per_image, pieces[1:], strict=True):
        out.append(IMAGE_PAD * int(count) + piece)
    return "".join(out)


class PatchProjection(nn.Module):
    """A Conv3d whose kernel is its stride and its whole input (the vision tower's patch embedding) as the
    matrix product it is: the same sums, without oneDNN's slow 3-D convolution on a CPU (bundled model,
    2 threads: 64 -> 81 windows/s, the same answers)."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().reshape(conv.out_channels, -1), requires_grad=False)
        self.bias = conv.bias

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return functional.linear(patches.reshape(len(patches), -1), self.weight, self.bias)[
            ..., None, None, None
        ]


def project_patches_as_matrix(model: nn.Module) -> int:
    """Swap every patch-embedding Conv3d (kernel = stride, no padding) for a `PatchProjection`; the count."""
    swapped = 0
    for module in list(model.modules()):
        conv = getattr(module, "proj", None)
        if (
            isinstance(conv, nn.Conv3d)
            and conv.kernel_size == conv.stride
            and conv.padding == (0, 0, 0)
            and conv.groups == 1
        ):
            module.proj = PatchProjection(conv)
            swapped += 1
    return swapped


class Qwen3VLModel:
    """Qwen3-VL (e.g. Qwen/Qwen3-VL-2B-Instruct) by model id or local folder; greedy decoding by default."""

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        *,
        max_new_tokens: int = 64,
        dtype: str | None = None,
        max_pixels: int | None = None,
        do_sample: bool = False,
        revision: str | None = None,
        allow_download: bool = False,
    ) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: expected >= 1, got {max_new_tokens}")
        if max_pixels is not None and max_pixels < 1:
            raise ValueError(f"max_pixels: expected a positive pixel count, got {max_pixels}")
        folder = resolve_model_dir(model, revision=revision, allow_download=allow_download)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_new_tokens = max_new_tokens
        self.do_sample = do_sample
        self.name = f"qwen3vl:{model}@{weights_tag(folder)}"
        self.model = AutoModelForImageTextToText.from_pretrained(
            folder, dtype=self.dtype, local_files_only=True
        )
        self.model.to(self.device).eval()
        project_patches_as_matrix(self.model)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.image_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        self.merge_size = int(getattr(self.image_processor, "merge_size", 2))
        self.image_token_id = int(self.model.config.image_token_id)
        self.chat_template = self.tokenizer.chat_template or self._processor_chat_template(folder)
        self.size_override: dict[str, int] | None = None
        if max_pixels is not None:
            size = dict(getattr(self.image_processor, "size", None) or {})
            size["longest_edge"] = max_pixels
            size["shortest_edge"] = min(int(size.get("shortest_edge", max_pixels)), max_pixels)
            self.size_override = size

    @staticmethod
    def _processor_chat_template(folder: Path) -> str | None:
        """Some checkpoints keep the chat template only beside the processor config."""
        for name in ("chat_template.jinja", "chat_template.json"):
            path = folder / name
            if path.is_file():
                text = path.read_text(encoding="utf-8")
                return str(json.loads(text)["chat_template"]) if name.endswith(".json") else text
        return None

    def render_chat(self, image_count: int, prompt: str) -> str:
        """The prompt text before image-pad expansion: the checkpoint's own chat template when it has one."""
        if self.chat_template is None:
            return qwen_chat_text(image_count, prompt)
        content: list[dict[str, Any]] = [{"type": "image"} for _ in range(image_count)]
        content.append({"type": "text", "text": prompt})
        return str(
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": content}],
                chat_template=self.chat_template,
                tokenize=False,
                add_generation_prompt=True,
            )
        )

    def prepare(self, frames: Sequence[np.ndarray] | np.ndarray, prompt: str) -> dict[str, torch.Tensor]:
        """Model inputs for generate(): token ids, attention mask, pixels, grid sizes, image-token mask."""
        return self.prepare_batch([frames], prompt)

    def prepare_batch(
        self, windows: Sequence[Sequence[np.ndarray] | np.ndarray], prompt: str
    ) -> dict[str, torch.Tensor]:
        """Inputs for several windows in one forward or generate() call (texts left-padded to one length)."""
        inputs, source = self._inputs(windows, prompt)
        sizes = inputs["distinct_grid"].prod(dim=-1).tolist()
        patches = torch.split(inputs.pop("distinct_pixels"), sizes)
        inputs["pixel_values"] = torch.cat([patches[i] for i in source])
        del inputs["distinct_grid"]
        return inputs

    def _inputs(
        self, windows: Sequence[Sequence[np.ndarray] | np.ndarray], prompt: str
    ) -> tuple[dict[str, torch.Tensor], list[int]]:
        """Text inputs for every window, the pixels of each distinct frame, and the distinct frame of each
        image slot. Consecutive windows share frames (window t holds frames t-K..t), and each frame object
        is processed once."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompt: expected a non-empty string, got {prompt!r}")
        if len(windows) == 0:
            raise ValueError("windows: expected at least one window, got none")
        batches = [check_images(frames, what="frames") for frames in windows]
        if any(len(batch) == 0 for batch in batches):
            raise ValueError("frames: expected at least one frame, got none")
        # An ndarray window is one stacked array: its frames are views, distinct objects every time.
        keys = [
            id(frame) if not isinstance(frames, np.ndarray) else (index, slot)
            for index, frames in enumerate(windows)
            for slot, frame in enumerate(frames)
        ]
        images = [image for batch in batches for image in batch]
        distinct: dict[Any, int] = {}
        unique: list[np.ndarray] = []
        source: list[int] = []
        for key, image in zip(keys, images, strict=True):
            if key not in distinct:
                distinct[key] = len(unique)
                unique.append(image)
            source.append(distinct[key])
        extra = {"size": self.size_override} if self.size_override else {}
        vision = self.image_processor(images=unique, return_tensors="pt", **extra)
        grid = vision["image_grid_thw"][source]
        tokens = (grid.prod(dim=-1) // self.merge_size**2).tolist()
        texts, start = [], 0
        for batch in batches:
            chat = self.render_chat(len(batch), prompt)
            texts.append(expand_image_pads(chat, tokens[start : start + len(batch)]))
            start += len(batch)
        encoded = self.tokenizer(
            texts, return_tensors="pt", add_special_tokens=False, padding=True, padding_side="left"
        )
        input_ids = encoded["input_ids"]
        inputs = {
            "input_ids": input_ids.to(self.device),
            "attention_mask": encoded["attention_mask"].to(self.device),
            "image_grid_thw": grid.to(self.device),
            "mm_token_type_ids": (input_ids == self.image_token_id).long().to(self.device),
            "distinct_pixels": vision["pixel_values"].to(self.device, self.dtype),
            "distinct_grid": vision["image_grid_thw"].to(self.device),
        }
        return inputs, source

    def generate(self, frames: Sequence[np.ndarray] | np.ndarray, prompt: str) -> str:
        return self.generate_batch([frames], prompt)[0]

    @torch.inference_mode()
    def generate_batch(self, windows: Sequence[Sequence[np.ndarray] | np.ndarray], prompt: str) -> list[str]:
        """One answer per window from a single padded generate() call (greedy by default).

        The vision tower encodes each distinct frame once and every image slot showing it takes its
        features: Qwen3-VL encodes each image on its own, so the answers are those of separate calls.
        """
        inputs, source = self._inputs(windows, prompt)
        encoded = self.model.model.get_image_features(
            inputs.pop("distinct_pixels"), inputs.pop("distinct_grid"), return_dict=True
        )
        encoded.pooler_output = tuple(encoded.pooler_output[row] for row in source)
        encoded.deepstack_features = [tuple(f[row] for row in source) for f in encoded.deepstack_features]
        output = self.model.generate(
            **inputs,
            mm_encoder_outputs={"image": encoded},
            max_new_tokens=self.max_new_tokens,
            do_sample=self.do_sample,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [str(text).strip() for text in texts]

"""In-process Qwen3-VL on a tiny random model saved like a real checkpoint and loaded by folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from drivevlm.models.base import VisionLanguageModel

pytest.importorskip("transformers")

from drivevlm.models.lvlm.qwen3vl import (
    IMAGE_PAD,
    PatchProjection,
    Qwen3VLModel,
    expand_image_pads,
    project_patches_as_matrix,
    qwen_chat_text,
)


def window(count: int = 4, size: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def vlm(tiny_qwen3vl_dir: Path) -> Qwen3VLModel:
    return Qwen3VLModel(tiny_qwen3vl_dir, max_new_tokens=8)


def test_generates_text_from_four_frames(vlm: Qwen3VLModel) -> None:
    assert isinstance(vlm, VisionLanguageModel)
    answer = vlm.generate(window(), "Describe the risk ahead in one short sentence.")
    assert isinstance(answer, str)
    assert answer == vlm.generate(list(window()), "Describe the risk ahead in one short sentence.")


def test_image_tokens_match_the_vision_grid(vlm: Qwen3VLModel) -> None:
    inputs = vlm.prepare(window(), "risk?")
    grid = inputs["image_grid_thw"]
    expected = int((grid.prod(dim=-1) // vlm.merge_size**2).sum())
    assert grid.shape == (4, 3)
    assert (
        int(inputs["mm_token_type_ids"].sum())
        == expected
        == int((inputs["input_ids"] == vlm.image_token_id).sum())
    )
    assert inputs["pixel_values"].shape[0] == int(grid.prod(dim=-1).sum())
    assert inputs["attention_mask"].shape == inputs["input_ids"].shape


def test_answer_depends_on_the_frames(vlm: Qwen3VLModel) -> None:
    """The vision tokens reach the language model: other frames, other next-token logits."""
    import torch

    with torch.inference_mode():
        first = vlm.model(**vlm.prepare(window(seed=1), "risk?")).logits[0, -1]
        second = vlm.model(**vlm.prepare(window(seed=2), "risk?")).logits[0, -1]
    assert not torch.allclose(first, second)


def test_checkpoint_chat_template_matches_builtin_format(vlm: Qwen3VLModel) -> None:
    assert vlm.chat_template is not None
    assert vlm.render_chat(3, "What is the risk?") == qwen_chat_text(3, "What is the risk?")


def test_builtin_format_when_checkpoint_has_no_template(tmp_path: Path) -> None:
    from support.tiny_models import build_tiny_qwen3vl

    folder = build_tiny_qwen3vl(tmp_path / "no-template", chat_template=False)
    model = Qwen3VLModel(folder, max_new_tokens=4)
    assert model.chat_template is None
    assert model.render_chat(2, "hi") == qwen_chat_text(2, "hi")
    assert isinstance(model.generate(window(2, 64), "hi"), str)


def test_pad_expansion() -> None:
    text = f"a{IMAGE_PAD}b{IMAGE_PAD}c"
    assert expand_image_pads(text, [2, 3]) == f"a{IMAGE_PAD * 2}b{IMAGE_PAD * 3}c"
    with pytest.raises(ValueError, match=re.escape("2 <|image_pad|> slots for 3 images")):
        expand_image_pads(text, [1, 1, 1])


def test_bad_inputs(vlm: Qwen3VLModel) -> None:
    with pytest.raises(ValueError, match="frames: expected dtype uint8"):
        vlm.generate(window().astype(np.float32), "risk?")
    with pytest.raises(ValueError, match="frames: expected shape"):
        vlm.generate(np.zeros((4, 32, 32, 4), np.uint8), "risk?")
    with pytest.raises(ValueError, match="prompt"):
        vlm.generate(window(), "  ")
    with pytest.raises(ValueError, match="at least one frame"):
        vlm.generate(np.zeros((0, 32, 32, 3), np.uint8), "risk?")
    with pytest.raises(ValueError, match="max_new_tokens"):
        Qwen3VLModel("unused/never-loaded", max_new_tokens=0)


def test_batched_windows_answer_as_separate_calls(vlm: Qwen3VLModel) -> None:
    """Padded batches and frames shared between consecutive windows change no answer."""
    frames = list(window(7, seed=5))
    windows = [frames[i : i + 4] for i in range(4)] + [window(2, seed=9), (frames[0],) * 4]
    prompt = "Describe the risk ahead in one short sentence."
    separate = [vlm.generate(w, prompt) for w in windows]
    assert vlm.generate_batch(windows, prompt) == separate
    inputs = vlm.prepare_batch(windows, prompt)
    # Left padding: every row ends with the assistant cue; the shorter window's row starts with padding.
    assert inputs["attention_mask"][:, -1].all() and not inputs["attention_mask"][4, 0]
    assert inputs["pixel_values"].shape[0] == int(inputs["image_grid_thw"].prod(dim=-1).sum())


def test_patch_embedding_runs_as_a_matrix_product(vlm: Qwen3VLModel, tiny_qwen3vl_dir: Path) -> None:
    """The swapped patch embedding computes the 3-D convolution's sums; answers match the plain model's."""
    torch.manual_seed(0)
    conv = nn.Conv3d(3, 8, kernel_size=(2, 4, 4), stride=(2, 4, 4))
    patches = torch.randn(5, 3, 2, 4, 4)
    torch.testing.assert_close(PatchProjection(conv)(patches), conv(patches))
    holder = nn.Module()
    holder.proj = nn.Conv3d(3, 8, kernel_size=3, padding=1)  # a real convolution stays one
    assert project_patches_as_matrix(holder) == 0 and isinstance(holder.proj, nn.Conv3d)
    swapped = vlm.model.model.visual.patch_embed.proj
    assert isinstance(swapped, PatchProjection)
    plain = Qwen3VLModel(tiny_qwen3vl_dir, max_new_tokens=8)
    vision = plain.model.config.vision_config
    kernel = (vision.temporal_patch_size, vision.patch_size, vision.patch_size)
    conv = nn.Conv3d(vision.in_channels, vision.hidden_size, kernel, stride=kernel)
    conv.weight.data = swapped.weight.reshape(conv.weight.shape).clone()
    conv.bias = swapped.bias
    plain.model.model.visual.patch_embed.proj = conv
    windows = [window(4, seed=s) for s in range(3)]
    prompt = "Describe the risk ahead in one short sentence."
    assert plain.generate_batch(windows, prompt) == vlm.generate_batch(windows, prompt)

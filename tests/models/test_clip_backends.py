"""CLIP backends on tiny random models saved like real checkpoints and loaded by folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivevlm.models.base import ImageTextEncoder

pytest.importorskip("transformers")

from drivevlm.models.clip.transformers_clip import TransformersClipEncoder


def frames(count: int, size: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size + 8, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir: Path) -> TransformersClipEncoder:
    return TransformersClipEncoder(tiny_clip_dir, batch_size=4)


def test_embeddings_are_unit_float32(encoder: TransformersClipEncoder) -> None:
    assert isinstance(encoder, ImageTextEncoder)
    images = encoder.encode_images(frames(3))
    texts = encoder.encode_texts(["The road is clear", "Two cars have collided", "a"])
    for embedding in (images, texts):
        assert embedding.dtype == np.float32
        assert embedding.shape == (3, 16)
        np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(texts[0], texts[1])
    assert not np.allclose(images[0], images[1])


def test_batched_equals_one_by_one(encoder: TransformersClipEncoder) -> None:
    batch = frames(6, seed=1)
    together = encoder.encode_images(batch)
    alone = np.concatenate([encoder.encode_images(image) for image in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    texts = ["a pedestrian is crossing", "clear road", "a cyclist ahead on the right", "x", "yy"]
    np.testing.assert_allclose(
        encoder.encode_texts(texts), np.concatenate([encoder.encode_texts([t]) for t in texts]), atol=1e-5
    )


def test_weights_come_from_the_folder(tiny_clip_dir: Path, encoder: TransformersClipEncoder) -> None:
    """Two loads give the same embeddings: the saved weights are used, not a fresh random init."""
    again = TransformersClipEncoder(str(tiny_clip_dir))
    np.testing.assert_array_equal(again.encode_texts(["same text"]), encoder.encode_texts(["same text"]))


def test_bad_inputs_are_clear_errors(encoder: TransformersClipEncoder) -> None:
    with pytest.raises(ValueError, match="uint8"):
        encoder.encode_images(frames(1).astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        encoder.encode_images(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(TypeError, match="single str"):
        encoder.encode_texts("not a list")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        encoder.encode_texts(["ok", 3])  # type: ignore[list-item]
    assert encoder.encode_texts([]).shape == (0, 16)
    assert encoder.encode_images(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 16)


def test_long_text_is_truncated_not_an_error(encoder: TransformersClipEncoder) -> None:
    embedding = encoder.encode_texts(["word " * 500])
    assert embedding.shape == (1, 16)
    assert np.isfinite(embedding).all()


@pytest.mark.vision
def test_transformers_clip_with_the_real_clip_vocabulary(tmp_path: Path) -> None:
    """The real 49,408-token CLIP BPE (shipped by open_clip) drives the same backend code path."""
    from support.tiny_models import build_tiny_clip, open_clip_bpe_file

    if open_clip_bpe_file() is None:
        pytest.skip("open_clip (which ships the CLIP BPE vocabulary) is not installed")
    folder = build_tiny_clip(tmp_path / "clip-real-vocab", real_vocabulary=True)
    encoder = TransformersClipEncoder(folder)
    assert len(encoder.tokenizer) == 49408
    assert encoder.tokenizer.tokenize("a photo of a cat") == [
        "a</w>",
        "photo</w>",
        "of</w>",
        "a</w>",
        "cat</w>",
    ]
    np.testing.assert_allclose(
        np.linalg.norm(encoder.encode_texts(["a photo of a cat"]), axis=1), 1.0, atol=1e-5
    )


@pytest.fixture(scope="module")
def tiny_open_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    open_clip = pytest.importorskip("open_clip")
    import json

    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny-open-clip")
    config = {
        "model_cfg": {
            "embed_dim": 16,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
        },
        "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
        },
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(folder / "open_clip_model.safetensors"),
    )
    return folder


@pytest.mark.vision
def test_open_clip_backend_by_folder(tiny_open_clip_dir: Path) -> None:
    from drivevlm.models.clip.open_clip_backend import OpenClipEncoder

    encoder = OpenClipEncoder(tiny_open_clip_dir, batch_size=4)
    assert isinstance(encoder, ImageTextEncoder)
    batch = frames(6, seed=2)
    together = encoder.encode_images(batch)
    assert together.dtype == np.float32 and together.shape == (6, 16)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(together, np.concatenate([encoder.encode_images(i) for i in batch]), atol=1e-5)
    texts = encoder.encode_texts(["The road is clear", "a pedestrian is crossing the road ahead"])
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    again = OpenClipEncoder(f"local-dir:{tiny_open_clip_dir}")
    np.testing.assert_array_equal(again.encode_texts(["The road is clear"]), texts[:1])
    with pytest.raises(ValueError, match="uint8"):
        encoder.encode_images(batch.astype(np.int16))


@pytest.mark.vision
def test_open_clip_missing_weights_are_named(tmp_path: Path) -> None:
    pytest.importorskip("open_clip")
    from drivevlm.models.base import ModelNotFoundError
    from drivevlm.models.clip.open_clip_backend import OpenClipEncoder

    with pytest.raises(ModelNotFoundError, match="laion/CLIP-ViT-B-32-laion2B-s34B-b79K"):
        OpenClipEncoder("ViT-B-32:laion2b_s34b_b79k")
    with pytest.raises(ValueError, match="name the weights"):
        OpenClipEncoder("ViT-B-32")
    with pytest.raises(ValueError, match="neither a folder nor an OpenCLIP architecture"):
        OpenClipEncoder("ViT-Banana")
    with pytest.raises(ModelNotFoundError, match=r"open_clip_config\.json"):
        OpenClipEncoder(tmp_path)

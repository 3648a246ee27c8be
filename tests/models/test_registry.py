"""Backends by name: construction through the registry, clear errors, optional extras stay unimported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drivevlm.models.base import Detector, ImageTextEncoder, VisionLanguageModel
from drivevlm.models.registry import (
    DETECTORS,
    ENCODERS,
    VLMS,
    BackendEntry,
    make_detector,
    make_encoder,
    make_vlm,
    register,
)


def test_unknown_backend_lists_the_allowed_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown name 'clipz'; expected one of \[.*'open_clip', 'transformers'\]"
    ):
        make_encoder("clipz", "x")
    with pytest.raises(ValueError, match="rtdetr"):
        make_detector("yolo9000", "x")
    with pytest.raises(ValueError, match="qwen3vl"):
        make_vlm("gpt", "x")


def test_every_entry_points_at_an_existing_module_file() -> None:
    import drivevlm

    root = Path(drivevlm.__file__).parent.parent
    for registry in (ENCODERS, DETECTORS, VLMS):
        for entry in registry.values():
            module = entry.target.split(":")[0]
            assert (root / (module.replace(".", "/") + ".py")).is_file(), entry.target


def test_backends_by_name(tiny_clip_dir: Path, tiny_rtdetr_dir: Path, tiny_qwen3vl_dir: Path) -> None:
    encoder = make_encoder("transformers", str(tiny_clip_dir), device="cpu", batch_size=2)
    assert isinstance(encoder, ImageTextEncoder)
    assert encoder.encode_texts(["a"]).shape == (1, 16)
    detector = make_detector("rtdetr", str(tiny_rtdetr_dir), threshold=0.0)
    assert isinstance(detector, Detector)
    assert len(detector.detect(np.zeros((1, 40, 50, 3), np.uint8))) == 1
    vlm = make_vlm("qwen3vl", str(tiny_qwen3vl_dir), max_new_tokens=2)
    assert isinstance(vlm, VisionLanguageModel)


def test_remote_vlm_takes_no_device() -> None:
    with pytest.raises(ValueError, match="takes no device"):
        make_vlm("openai", "Qwen/Qwen3-VL-2B-Instruct", device="cuda", base_url="http://127.0.0.1:9/v1")
    vlm = make_vlm("openai", "Qwen/Qwen3-VL-2B-Instruct", base_url="http://127.0.0.1:9/v1")
    assert isinstance(vlm, VisionLanguageModel)


def test_missing_extra_names_it() -> None:
    try:
        import open_clip  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"drivevlm\[vision\]"):
            make_encoder("open_clip", "ViT-B-32:laion2b_s34b_b79k")
    else:
        pytest.skip("open_clip is installed here")


def test_register_a_plugin_backend() -> None:
    register(
        "encoder",
        "my_clip",
        BackendEntry("drivevlm.models.clip.transformers_clip:TransformersClipEncoder", "hf"),
    )
    try:
        assert "my_clip" in ENCODERS
        with pytest.raises(ValueError, match="kind"):
            register("tokenizer", "x", BackendEntry("a:b", "hf"))
    finally:
        del ENCODERS["my_clip"]


def test_default_paths_never_import_agpl_ultralytics() -> None:
    code = (
        "import sys\n"
        "import drivevlm.models.registry, drivevlm.models.detectors.transformers_rtdetr\n"
        "import drivevlm.models.clip.transformers_clip, drivevlm.models.lvlm.qwen3vl\n"
        "assert not [m for m in sys.modules if m.startswith('ultralytics')], 'ultralytics imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

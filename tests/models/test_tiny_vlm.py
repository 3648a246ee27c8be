"""The tiny Qwen3-VL: trained here from scratch, saved as a checkpoint the in-process backend loads.

The fast tests train a few steps on a handful of real env windows; the shipped model is loaded through
the registry (`make_vlm("qwen3vl", folder)`), the very path real Qwen3-VL weights take. The held-out
quality bar is re-measured by the slow test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from drivevlm.data.risk import RISK_CATEGORIES, category_of_description
from drivevlm.data.vlm_windows import VlmWindows, generate_windows, held_out_windows
from drivevlm.model_training.train_tiny_vlm import (
    BUNDLED_DIR,
    PROMPT_VERSION,
    QWEN_SPECIAL_TOKENS,
    TinyVlmShape,
    build_tokenizer,
    category_weights,
    dynamic_prompt,
    evaluate_tiny_vlm,
    resume_dir,
    saved_frame_size,
    train_tiny_vlm,
)
from drivevlm.models.lvlm.parsing import DEFAULT_MAX_WORDS, parse_goal
from drivevlm.models.lvlm.prompts import load_prompt
from drivevlm.models.lvlm.qwen3vl import Qwen3VLModel, qwen_chat_text
from drivevlm.models.registry import make_vlm
from drivevlm.rewards.dynamic import DEFAULT_PROMPT_VERSION

# The sample size and seed of the held-out measurement reported in the model card.
HELD_OUT_WINDOWS = 600
HELD_OUT_SEED = 1
SMALL = TinyVlmShape(frame_size=64, vocab_size=300)


@pytest.fixture(scope="module")
def small_windows() -> VlmWindows:
    return generate_windows(8, seed=11, gated_fraction=0.75, frame_size=64, render_size=96)


@pytest.fixture(scope="module")
def trained(small_windows: VlmWindows, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("tiny-vlm") / "model"
    summary = train_tiny_vlm(
        folder, steps=12, windows=small_windows, batch_size=4, shape=SMALL, threads=1, log=None
    )
    return folder, summary


def test_training_writes_a_checkpoint_the_backend_loads(
    trained: tuple[Path, dict], small_windows: VlmWindows
) -> None:
    folder, summary = trained
    assert summary["steps"] == 12 and summary["windows"] == 8
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "training.json").read_text())["steps"] == 12
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folders left
    vlm = make_vlm("qwen3vl", str(folder), max_new_tokens=12)
    assert isinstance(vlm, Qwen3VLModel)
    answer = vlm.generate(small_windows.window(0), dynamic_prompt())
    assert isinstance(answer, str)
    assert vlm.model.config.vision_config.patch_size == SMALL.patch_size


def test_training_lowers_the_loss(small_windows: VlmWindows, tmp_path: Path) -> None:
    summary = train_tiny_vlm(
        tmp_path / "m",
        steps=50,
        windows=small_windows,
        batch_size=4,
        learning_rate=5e-3,
        shape=SMALL,
        threads=1,
        log=None,
    )
    assert summary["final_loss"] < 0.5 * summary["first_loss"]


def test_training_continues_from_a_saved_model_with_mirrored_windows(
    trained: tuple[Path, dict], small_windows: VlmWindows, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    folder, first = trained
    # A vanishing learning rate: the saved weights must be the initial ones, so they came from `init`.
    summary = train_tiny_vlm(
        tmp_path / "continued",
        steps=2,
        windows=small_windows,
        batch_size=4,
        learning_rate=1e-12,
        threads=1,
        init=folder,
        flip=True,
        log=None,
    )
    assert summary["init"] == str(folder) and summary["flip"] is True and summary["shape"] == first["shape"]
    before, after = (
        load_file(str(folder / "model.safetensors")),
        load_file(str(tmp_path / "continued" / "model.safetensors")),
    )
    assert before.keys() == after.keys()
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    continued = (tmp_path / "continued" / "tokenizer.json").read_text()
    assert continued == (folder / "tokenizer.json").read_text()


class _KilledError(Exception):
    """Stands in for a kill between two steps."""


def _stop_at(step: int):
    def log(line: str) -> None:
        if line.startswith(f"step {step} "):
            raise _KilledError

    return log


def test_an_interrupted_run_resumes_to_the_same_weights(small_windows: VlmWindows, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    settings = {"steps": 6, "windows": small_windows, "batch_size": 2, "shape": SMALL, "threads": 1}
    train_tiny_vlm(tmp_path / "straight", flip=True, log=None, **settings)
    out = tmp_path / "resumed"
    with pytest.raises(_KilledError):
        train_tiny_vlm(out, flip=True, save_every=2, log=_stop_at(4), log_every=1, **settings)
    assert (resume_dir(out) / "trainer_state.pt").is_file() and not out.exists()
    with pytest.raises(ValueError, match=r"resume point of a run with other settings \(flip\)"):
        train_tiny_vlm(out, flip=False, save_every=2, log=None, **settings)
    lines: list[str] = []
    summary = train_tiny_vlm(out, flip=True, save_every=2, log=lines.append, **settings)
    assert lines[0] == f"resuming from {resume_dir(out)} at step 4" and summary["steps"] == 6
    assert not resume_dir(out).exists()
    straight, resumed = (
        load_file(str(tmp_path / name / "model.safetensors")) for name in ("straight", "resumed")
    )
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_module_command_trains_at_the_chosen_frame_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drivevlm.model_training.train_tiny_vlm import main

    windows = tmp_path / "windows.npz"
    args = ["--out", str(tmp_path / "m"), "--steps", "1", "--train-windows", "4", "--frame-size", "64"]
    args += ["--labels", "field_of_view"]
    main([*args, "--batch-size", "2", "--threads", "1", "--windows", str(windows)])
    assert VlmWindows.load(windows).frames.shape[1:3] == (64, 64)
    assert json.loads((tmp_path / "m" / "training.json").read_text())["shape"]["frame_size"] == 64
    assert saved_frame_size(tmp_path / "m") == 64
    # Continuing keeps the saved shape: its windows are cut at 64 px without being told.
    again = tmp_path / "again.npz"
    args = [
        "--out",
        str(tmp_path / "m2"),
        "--steps",
        "1",
        "--train-windows",
        "4",
        "--init",
        str(tmp_path / "m"),
    ]
    main([*args, "--batch-size", "2", "--threads", "1", "--windows", str(again)])
    assert VlmWindows.load(again).frames.shape[1:3] == (64, 64)
    # Several existing sets are trained on together.
    args = ["--out", str(tmp_path / "m3"), "--steps", "1", "--init", str(tmp_path / "m")]
    main([*args, "--batch-size", "2", "--threads", "1", "--windows", str(windows), str(again)])
    assert json.loads((tmp_path / "m3" / "training.json").read_text())["windows"] == 8
    # A folder this trainer did not save (a real Qwen3-VL) is scored at the default size.
    assert saved_frame_size(tmp_path) == 128
    capsys.readouterr()


def test_continuing_from_a_folder_without_a_training_record_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"init: .*training\.json"):
        train_tiny_vlm(tmp_path / "out", steps=1, init=tmp_path, log=None)


def test_tokenizer_round_trips_and_keeps_special_tokens_whole() -> None:
    prompt = dynamic_prompt()
    sentence = "A cyclist is crossing the road close ahead."
    tokenizer = build_tokenizer([prompt, sentence] * 4, vocab_size=300)
    assert len(tokenizer) <= 300
    for text in (prompt, sentence, "Ünïcode text never seen 123"):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    assert len(tokenizer(sentence, add_special_tokens=False)["input_ids"]) < 0.75 * len(sentence)
    for token in QWEN_SPECIAL_TOKENS:
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "hi"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert rendered == qwen_chat_text(2, "hi")


def test_prompt_is_the_dynamic_pathways_prompt() -> None:
    """Trained on the text DynamicPathway sends: its default template, filled the way it fills it."""
    assert PROMPT_VERSION == DEFAULT_PROMPT_VERSION
    expected = load_prompt(DEFAULT_PROMPT_VERSION).render(num_frames=4, max_words=DEFAULT_MAX_WORDS)
    assert dynamic_prompt(4) == expected and "{" not in expected


def test_evaluation_scores_categories(trained: tuple[Path, dict], small_windows: VlmWindows) -> None:
    folder, _ = trained
    report = evaluate_tiny_vlm(folder, small_windows, max_new_tokens=12)
    assert report["windows"] == int(small_windows.gated.sum()) == 6
    assert 0.0 <= report["category_accuracy"] <= 1.0
    assert sum(v["windows"] for v in report["per_category"].values()) == 6
    assert set(report["per_category"]) <= set(RISK_CATEGORIES)
    everything = evaluate_tiny_vlm(folder, small_windows, gated_only=False, max_new_tokens=12)
    assert everything["windows"] == 8
    with pytest.raises(ValueError, match="no gated windows"):
        evaluate_tiny_vlm(folder, small_windows.subset(np.flatnonzero(~small_windows.gated)))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"steps": 2, "minutes": 1.0}, "minutes, steps"),
        ({"steps": 0}, "steps"),
        ({"minutes": -1.0}, "minutes"),
        ({"steps": 2, "category_power": 1.5}, "category_power"),
    ],
)
def test_bad_budget_is_named(kwargs: dict[str, float], field: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=field):
        train_tiny_vlm(tmp_path, log=None, **kwargs)  # type: ignore[arg-type]


def test_category_weights_lift_rare_categories_by_the_chosen_power() -> None:
    categories = ["pedestrian_near"] * 90 + ["cyclist_near"] * 10
    for power, cyclist_share in ((0.0, 0.1), (0.5, 0.25), (1.0, 0.5)):
        weights = category_weights(categories, power)
        assert weights.sum() == pytest.approx(1.0)
        assert weights[90:].sum() == pytest.approx(cyclist_share)


def test_shape_checks_name_the_field() -> None:
    with pytest.raises(ValueError, match="frame_size"):
        TinyVlmShape(frame_size=100)
    with pytest.raises(ValueError, match="text_hidden"):
        TinyVlmShape(text_hidden=48)
    with pytest.raises(ValueError, match="vision_hidden"):
        TinyVlmShape(vision_hidden=63)
    with pytest.raises(ValueError, match="vision_depth"):
        TinyVlmShape(vision_depth=0)


# ---------------------------------------------------------------- the shipped model


@pytest.fixture(scope="module")
def shipped() -> Qwen3VLModel:
    if not (BUNDLED_DIR / "model.safetensors").is_file():
        pytest.fail(f"the bundled tiny Qwen3-VL is missing from {BUNDLED_DIR}")
    vlm = make_vlm("qwen3vl", str(BUNDLED_DIR), max_new_tokens=24)
    assert isinstance(vlm, Qwen3VLModel)
    return vlm


def test_shipped_model_is_small_and_documented() -> None:
    size = sum(p.stat().st_size for p in BUNDLED_DIR.iterdir() if p.is_file())
    assert size < 10 * 2**20
    card = (BUNDLED_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "python -m drivevlm.model_training.train_tiny_vlm" in card and "held-out" in card.lower()


def test_shipped_model_answers_a_gated_window(shipped: Qwen3VLModel) -> None:
    windows = held_out_windows(3, seed=7, gated_fraction=1.0)
    answers = [shipped.generate(windows.window(i), dynamic_prompt()) for i in range(len(windows))]
    for answer in answers:
        parsed = parse_goal(answer)
        assert parsed.ok, answer
        assert category_of_description(answer) != "none", answer
    # At 4 frames of 224 px, the env's default size, the image processor brings frames to the trained size.
    inputs = shipped.prepare(np.zeros((4, 224, 224, 3), np.uint8), dynamic_prompt())
    assert inputs["image_grid_thw"].tolist() == [[1, 12, 12]] * 4  # 192 px in 16 px patches


# Every urban held-out seed the card reports (none chose the shipped weights: one run, measured once).
# CI re-measures the card's main seed and one that took no part in the choice (about 40 s a seed);
# `./run.sh test -m card` re-measures all eight.
CARD_SEEDS = [
    pytest.param(seed, marks=pytest.mark.slow if seed in (HELD_OUT_SEED, 43) else pytest.mark.card)
    for seed in (HELD_OUT_SEED, 11, 23, 37, 41, 43, 47, 53)
]


@pytest.mark.parametrize("seed", CARD_SEEDS)
def test_shipped_model_meets_the_held_out_bar(seed: int) -> None:
    windows = held_out_windows(HELD_OUT_WINDOWS, seed=seed, frame_size=saved_frame_size(BUNDLED_DIR))
    report = evaluate_tiny_vlm(BUNDLED_DIR, windows)
    assert report["windows"] >= 0.8 * HELD_OUT_WINDOWS
    assert report["category_accuracy"] >= 0.85, report
    assert report["parsable"] == 1.0

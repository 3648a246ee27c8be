"""Train a tiny Qwen3-VL from scratch on simulator windows, saved so the in-process backend loads it.

The saved folder is an ordinary transformers checkpoint (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json with the Qwen chat template, preprocessor_config.json), so the very code path that
serves real Qwen3-VL weights (`drivevlm.models.lvlm.qwen3vl.Qwen3VLModel`) serves this model too.
It is trained with the dynamic pathway's exact prompt and answers with a short risk description.

Reproduce the bundled model:
    python -m drivevlm.model_training.train_tiny_vlm --out src/drivevlm/models/bundled/tiny_qwen3vl \
        --minutes 25 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drivevlm.data.risk import CLEAR_DESCRIPTION, RISK_CATEGORIES, category_of_description
from drivevlm.data.vlm_windows import (
    DEFAULT_FRAME_SIZE,
    DEFAULT_FRAMES_PER_WINDOW,
    VlmWindows,
    generate_windows,
)
from drivevlm.models.lvlm.parsing import DEFAULT_MAX_WORDS, parse_goal
from drivevlm.models.lvlm.prompts import load_prompt
from drivevlm.models.registry import BUNDLED_VLM_DIR

PROMPT_VERSION = "dynamic_goal_v1"
RESUME_STATE = "trainer_state.pt"
BUNDLED_DIR = BUNDLED_VLM_DIR
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# The Qwen3-VL Instruct chat format: each turn's images first, then its text; the assistant cue last.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinyVlmShape:
    """Sizes of the tiny model. Defaults follow the measured feasibility run, at 128 px frames."""

    frame_size: int = DEFAULT_FRAME_SIZE
    patch_size: int = 16
    merge_size: int = 2
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 2
    head_dim: int = 32
    vision_hidden: int = 64
    vision_depth: int = 2
    vision_heads: int = 2
    vocab_size: int = 400

    def __post_init__(self) -> None:
        factor = self.patch_size * self.merge_size
        if self.frame_size % factor:
            raise ValueError(
                f"frame_size: must be a multiple of patch_size * merge_size = {factor}, got {self.frame_size}"
            )
        if self.vision_depth < 1:
            raise ValueError(f"vision_depth: expected at least 1 block, got {self.vision_depth}")
        if self.vision_hidden < 1 or self.vision_hidden % self.vision_heads:
            raise ValueError(
                f"vision_hidden: must be a positive multiple of vision_heads = {self.vision_heads}, "
                f"got {self.vision_hidden}"
            )
        if self.text_hidden != self.text_heads * self.head_dim:
            raise ValueError(
                f"text_hidden: must equal text_heads * head_dim = {self.text_heads * self.head_dim}, "
                f"got {self.text_hidden}"
            )


def dynamic_prompt(frames_per_window: int = DEFAULT_FRAMES_PER_WINDOW) -> str:
    """The dynamic pathway's prompt, filled exactly as `DynamicPathway` fills it."""
    return load_prompt(PROMPT_VERSION).render(num_frames=frames_per_window, max_words=DEFAULT_MAX_WORDS)


def build_tokenizer(corpus: Sequence[str], vocab_size: int = 400) -> Any:
    """A byte-level BPE learnt on `corpus`, wrapped as a Qwen2 tokenizer with the Qwen special tokens.

    Every byte is in the vocabulary, so any text (a user's own prompt) still encodes.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    if vocab_size < 256 + len(QWEN_SPECIAL_TOKENS):
        raise ValueError(f"vocab_size: must hold the 256 bytes and the special tokens, got {vocab_size}")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(corpus), trainer)
    learnt = json.loads(bpe.to_str())["model"]
    merges = [
        tuple(pair) if isinstance(pair, list) else tuple(str(pair).split(" ")) for pair in learnt["merges"]
    ]
    tokenizer = Qwen2Tokenizer(vocab=dict(learnt["vocab"]), merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS[1:])})
    tokenizer.add_special_tokens({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 4096
    return tokenizer


def build_image_processor(shape: TinyVlmShape) -> Any:
    """Qwen2-VL image processor that brings any frame to about frame_size x frame_size pixels."""
    from transformers import Qwen2VLImageProcessorPil

    pixels = shape.frame_size * shape.frame_size
    return Qwen2VLImageProcessorPil(
        patch_size=shape.patch_size,
        merge_size=shape.merge_size,
        temporal_patch_size=2,
        min_pixels=pixels,
        max_pixels=pixels,
    )


def build_model(tokenizer: Any, shape: TinyVlmShape, seed: int) -> Any:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = {token: int(tokenizer.convert_tokens_to_ids(token)) for token in QWEN_SPECIAL_TOKENS}
    grid = shape.frame_size // shape.patch_size
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": shape.text_hidden,
            "intermediate_size": 2 * shape.text_hidden,
            "num_hidden_layers": shape.text_layers,
            "num_attention_heads": shape.text_heads,
            "num_key_value_heads": 1,
            "head_dim": shape.head_dim,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [6, 5, 5]},
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": shape.vision_depth,
            "hidden_size": shape.vision_hidden,
            "intermediate_size": 2 * shape.vision_hidden,
            "num_heads": shape.vision_heads,
            "patch_size": shape.patch_size,
            "spatial_merge_size": shape.merge_size,
            "temporal_patch_size": 2,
            "out_hidden_size": shape.text_hidden,
            "num_position_embeddings": grid * grid,
            "deepstack_visual_indexes": list(range(shape.vision_depth)),
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    return model


class WindowBatcher:
    """Turns windows into model inputs with labels on the answer tokens only (the prompt is given)."""

    def __init__(self, tokenizer: Any, image_processor: Any, frames_per_window: int) -> None:
        from drivevlm.models.lvlm.qwen3vl import expand_image_pads

        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token_id = int(tokenizer.convert_tokens_to_ids("<|image_pad|>"))
        self.pad_id = int(tokenizer.pad_token_id)
        self.end_id = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
        self.frames_per_window = frames_per_window
        self.prompt = dynamic_prompt(frames_per_window)
        self._expand = expand_image_pads
        self._prompt_ids: dict[int, list[int]] = {}
        self._answer_ids: dict[str, list[int]] = {}

    def prompt_ids(self, tokens_per_image: int) -> list[int]:
        if tokens_per_image not in self._prompt_ids:
            content: list[dict[str, Any]] = [{"type": "image"}] * self.frames_per_window
            chat = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": [*content, {"type": "text", "text": self.prompt}]}],
                tokenize=False,
                add_generation_prompt=True,
            )
            text = self._expand(chat, [tokens_per_image] * self.frames_per_window)
            self._prompt_ids[tokens_per_image] = list(
                self.tokenizer(text, add_special_tokens=False)["input_ids"]
            )
        return self._prompt_ids[tokens_per_image]

    def answer_ids(self, description: str) -> list[int]:
        if description not in self._answer_ids:
            ids = list(self.tokenizer(description, add_special_tokens=False)["input_ids"])
            self._answer_ids[description] = [*ids, self.end_id]
        return self._answer_ids[description]

    def __call__(self, frames: np.ndarray, descriptions: Sequence[str]) -> dict[str, torch.Tensor]:
        """frames: (B, K+1, H, W, 3) uint8."""
        batch, count = frames.shape[:2]
        if count != self.frames_per_window:
            raise ValueError(f"frames: expected {self.frames_per_window} per window, got {count}")
        vision = self.image_processor(images=list(frames.reshape(-1, *frames.shape[2:])), return_tensors="pt")
        grid = vision["image_grid_thw"]
        merge = int(self.image_processor.merge_size)
        tokens_per_image = int(grid[0].prod()) // merge**2
        prompt = self.prompt_ids(tokens_per_image)
        answers = [self.answer_ids(d) for d in descriptions]
        length = len(prompt) + max(len(a) for a in answers)
        input_ids = torch.full((batch, length), self.pad_id, dtype=torch.long)
        labels = torch.full((batch, length), -100, dtype=torch.long)
        attention = torch.zeros((batch, length), dtype=torch.long)
        for row, answer in enumerate(answers):
            sequence = prompt + answer
            input_ids[row, : len(sequence)] = torch.tensor(sequence)
            labels[row, len(prompt) : len(sequence)] = torch.tensor(answer)
            attention[row, : len(sequence)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "pixel_values": vision["pixel_values"],
            "image_grid_thw": grid,
            "mm_token_type_ids": (input_ids == self.image_token_id).long(),
        }


def category_weights(categories: Sequence[str], power: float = 0.5) -> np.ndarray:
    """Sampling weights that lift rare categories: frequency ** -power (0: as found, 1: categories equal)."""
    counts = Counter(categories)
    weights = np.array([counts[c] ** -power for c in categories], dtype=np.float64)
    return weights / weights.sum()


def _saved_shape(folder: Path) -> TinyVlmShape | None:
    """The shape recorded in a saved model's training.json (the trainer writes it beside the weights)."""
    record = folder / "training.json"
    if not record.is_file():
        return None
    return TinyVlmShape(**json.loads(record.read_text(encoding="utf-8"))["shape"])


def saved_frame_size(folder: str | Path) -> int:
    """The frame side a saved model was trained at (held-out windows are cut at that size).

    A folder this trainer did not save (no training.json) gets the default size.
    """
    shape = _saved_shape(Path(folder))
    return DEFAULT_FRAME_SIZE if shape is None else shape.frame_size


def saved_labels(folder: str | Path) -> str:
    """The labels a saved model was trained on (`generate_windows`); held-out windows are labelled alike.

    Models saved before labels were recorded were trained on camera labels.
    """
    record = Path(folder) / "training.json"
    if not record.is_file():
        return "camera"
    return str(json.loads(record.read_text(encoding="utf-8")).get("labels", "camera"))


def _load_saved(folder: Path) -> tuple[Any, Any, Any]:
    from transformers import AutoTokenizer, Qwen2VLImageProcessorPil, Qwen3VLForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(folder, local_files_only=True)
    model = Qwen3VLForConditionalGeneration.from_pretrained(
        folder, dtype=torch.float32, local_files_only=True
    )
    return tokenizer, image_processor, model


def _save_parts(folder: Path, *parts: Any) -> None:
    """The model, tokenizer and image processor into `folder`, as `_load_saved` reads them back."""
    for part in parts:
        part.save_pretrained(folder)


def _save_atomically(out_dir: Path, write: Callable[[Path], None]) -> None:
    """Write into a temporary sibling folder, then swap it in, so a reader never sees half a model."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    old: Path | None = None
    try:
        write(temp)
        # mkdtemp makes a private folder; a shipped model must be readable like any package file.
        temp.chmod(0o755)
        for path in temp.iterdir():
            path.chmod(0o644)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-old-", dir=out_dir.parent))
            out_dir.replace(old / "model")
        temp.replace(out_dir)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _keep_files(folder: Path, keep: Sequence[str]) -> None:
    """Drop what save_pretrained adds beyond the files the backend reads (e.g. empty chat_template files)."""
    for path in folder.iterdir():
        if path.is_file() and path.name not in keep:
            path.unlink()


def resume_dir(out_dir: str | Path) -> Path:
    """Where a run that writes `out_dir` keeps its resume point: a hidden sibling folder."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.resume"


def _read_resume_point(folder: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    """The saved trainer state in `folder`, None when there is none; another run's is an error."""
    path = folder / RESUME_STATE
    if not path.is_file():
        return None
    point = torch.load(path, weights_only=True)
    changed = sorted(key for key in run if point["run"].get(key) != run[key])
    if changed:
        raise ValueError(
            f"{folder}: a resume point of a run with other settings ({', '.join(changed)}); "
            "start that run again as it was, or delete the folder to start afresh"
        )
    return point


def train_tiny_vlm(
    out_dir: str | Path,
    *,
    minutes: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    windows: VlmWindows | None = None,
    train_windows: int = 12_000,
    scenarios: Sequence[str] | None = None,
    category_power: float = 0.5,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    shape: TinyVlmShape | None = None,
    frames_per_window: int = DEFAULT_FRAMES_PER_WINDOW,
    threads: int | None = 2,
    init: str | Path | None = None,
    flip: bool = False,
    labels: str = "camera",
    keep_categories: Sequence[str] = (),
    log: Callable[[str], None] | None = print,
    log_every: int = 50,
    save_every: int = 0,
) -> dict[str, Any]:
    """Train for `minutes` of wall time or `steps` optimiser steps, save to `out_dir`.

    `windows` supplies the training data; None generates `train_windows` fresh windows from the env
    (grid town; `scenarios` drawn uniformly, a name given twice twice as often; None: all; `labels` and
    `keep_categories` as in `generate_windows`) at the model's frame size.
    Categories are drawn with weights frequency ** -category_power. `init` continues from a saved model
    folder (its tokenizer, image processor and shape) instead of starting from scratch. `flip` mirrors half
    the windows left-right (every frame of a window alike): the descriptions never say left or right.
    `save_every` > 0 writes a resume point every that many steps (`resume_dir(out_dir)`); a run started
    again with the same settings continues from it, and a finished run removes it.
    Returns a summary (steps, seconds, final loss, data) also saved as training.json beside the weights.
    """
    if (minutes is None) == (steps is None):
        raise ValueError("minutes, steps: give exactly one of them")
    if minutes is not None and minutes <= 0:
        raise ValueError(f"minutes: expected a positive duration, got {minutes}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps: expected at least 1, got {steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected at least 1, got {batch_size}")
    if save_every < 0:
        raise ValueError(f"save_every: expected 0 (never) or a positive step count, got {save_every}")
    if not 0.0 <= category_power <= 1.0:
        raise ValueError(f"category_power: expected a value in [0, 1], got {category_power}")
    out_dir = Path(out_dir)
    if init is not None:
        shape = _saved_shape(Path(init))
        if shape is None:
            record = Path(init) / "training.json"
            raise FileNotFoundError(
                f"init: {record} not found; continue only from a folder this trainer saved"
            )
    shape = shape or TinyVlmShape()
    if threads is not None:
        torch.set_num_threads(threads)
    say = log or (lambda _text: None)
    started = time.perf_counter()
    if windows is None:
        say(f"generating {train_windows} training windows from the env")
        windows = generate_windows(
            train_windows,
            seed=seed,
            scenarios=scenarios,
            frames_per_window=frames_per_window,
            frame_size=shape.frame_size,
            labels=labels,
            keep_categories=keep_categories,
        )
    if windows.frames_per_window != frames_per_window:
        raise ValueError(
            f"windows: have {windows.frames_per_window} frames each, frames_per_window={frames_per_window}"
        )
    data_seconds = time.perf_counter() - started
    run = {
        "minutes": minutes,
        "steps": steps,
        "seed": seed,
        "windows": len(windows),
        "category_power": category_power,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "shape": asdict(shape),
        "init": None if init is None else str(init),
        "flip": flip,
    }
    resume = resume_dir(out_dir)
    point = _read_resume_point(resume, run)
    if point is not None:
        tokenizer, image_processor, model = _load_saved(resume)
        say(f"resuming from {resume} at step {point['step']}")
    elif init is None:
        prompt = dynamic_prompt(frames_per_window)
        corpus = [prompt, *sorted(set(windows.descriptions)), CLEAR_DESCRIPTION, "user", "assistant"]
        tokenizer = build_tokenizer(corpus * 4, shape.vocab_size)
        image_processor = build_image_processor(shape)
        model = build_model(tokenizer, shape, seed)
    else:
        tokenizer, image_processor, model = _load_saved(Path(init))
    batcher = WindowBatcher(tokenizer, image_processor, frames_per_window)
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    weights = category_weights(windows.categories, category_power)
    budget_s = None if minutes is None else 60.0 * minutes
    warmup = 30
    model.train()
    train_started = time.perf_counter()
    losses: list[float] = []
    step = 0
    if point is not None:
        optimiser.load_state_dict(point["optimiser"])
        rng.bit_generator.state = point["numpy_rng"]
        torch.set_rng_state(point["torch_rng"])
        losses, step = point["losses"], point["step"]
        train_started -= point["train_seconds"]

    def write_resume_point(folder: Path) -> None:
        _save_parts(folder, model, tokenizer, image_processor)
        state = {
            "run": run,
            "step": step,
            "losses": losses,
            "train_seconds": time.perf_counter() - train_started,
            "optimiser": optimiser.state_dict(),
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }
        torch.save(state, folder / RESUME_STATE)

    while True:
        elapsed = time.perf_counter() - train_started
        # The cosine schedule follows steps, or wall time under a time budget (CPU speed varies a lot).
        progress = step / steps if steps is not None else elapsed / budget_s  # type: ignore[operator]
        if progress >= 1.0:
            break
        rows = rng.choice(len(windows), size=batch_size, p=weights)
        frames = np.stack([windows.window(int(i)) for i in rows])
        if flip:
            mirrored = rng.random(batch_size) < 0.5
            frames[mirrored] = frames[mirrored, :, :, ::-1]
        inputs = batcher(frames, [windows.descriptions[int(i)] for i in rows])
        scale = min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * progress))
        for group in optimiser.param_groups:
            group["lr"] = learning_rate * max(scale, 0.02)
        loss = model(**inputs).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        losses.append(float(loss.detach()))
        step += 1
        if save_every and step % save_every == 0:
            _save_atomically(resume, write_resume_point)
        if step % log_every == 0:
            say(
                f"step {step} ({progress:.0%}, {elapsed / step:.2f} s/step) "
                f"loss {np.mean(losses[-log_every:]):.4f}"
            )
    train_seconds = time.perf_counter() - train_started
    model.eval()
    summary = {
        "steps": step,
        "train_seconds": round(train_seconds, 1),
        "data_seconds": round(data_seconds, 1),
        "first_loss": losses[0],
        # Mean over the last fifth of the run (at most 50 steps): the loss the saved weights reached.
        "final_loss": float(np.mean(losses[-max(1, min(50, len(losses) // 5)) :])),
        "seed": seed,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "category_power": category_power,
        "init": None if init is None else str(init),
        "flip": flip,
        "labels": labels,
        "keep_categories": list(keep_categories),
        "threads": threads,
        "windows": len(windows),
        "gated_windows": int(windows.gated.sum()),
        "window_categories": windows.category_counts(),
        "towns": sorted(set(windows.towns)),
        "prompt_version": PROMPT_VERSION,
        "frames_per_window": frames_per_window,
        "shape": asdict(shape),
        "parameters": sum(p.numel() for p in model.parameters()),
    }

    def write(folder: Path) -> None:
        _save_parts(folder, model, tokenizer, image_processor)
        (folder / "training.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        card = out_dir / "MODEL_CARD.md"
        if card.is_file():
            shutil.copyfile(card, folder / "MODEL_CARD.md")
        _keep_files(
            folder,
            (
                "config.json",
                "generation_config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
                "chat_template.jinja",
                "preprocessor_config.json",
                "training.json",
                "MODEL_CARD.md",
            ),
        )

    _save_atomically(out_dir, write)
    shutil.rmtree(resume, ignore_errors=True)
    say(f"saved {out_dir} after {step} steps, {train_seconds:.0f} s, loss {summary['final_loss']:.4f}")
    return summary


def evaluate_tiny_vlm(
    model_dir: str | Path,
    windows: VlmWindows,
    *,
    gated_only: bool = True,
    max_new_tokens: int = 24,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Generate through the in-process backend, `batch_size` windows per call (the answers of separate
    calls: tests/models/test_qwen3vl.py), and score the risk category read back from each answer.

    Returns accuracy overall and per ground-truth category, exact-match rate, the share of answers the
    dynamic pathway could parse, and the generate time per window.
    """
    from drivevlm.models.registry import make_vlm

    rows = np.flatnonzero(windows.gated) if gated_only else np.arange(len(windows))
    if len(rows) == 0:
        raise ValueError("windows: no gated windows to evaluate" if gated_only else "windows: empty")
    vlm = make_vlm("qwen3vl", str(model_dir), max_new_tokens=max_new_tokens)
    prompt = dynamic_prompt(windows.frames_per_window)
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    confusion: Counter[tuple[str, str]] = Counter()
    exact = parsable = 0
    seconds = 0.0
    answers: list[str] = []
    for start in range(0, len(rows), batch_size):
        chunk = [windows.window(int(i)) for i in rows[start : start + batch_size]]
        began = time.perf_counter()
        answers += vlm.generate_batch(chunk, prompt)
        seconds += time.perf_counter() - began
    for i, answer in zip(rows, answers, strict=True):
        truth = windows.categories[int(i)]
        predicted = category_of_description(answer)
        total[truth] += 1
        right[truth] += predicted == truth
        confusion[(truth, predicted)] += 1
        exact += answer.strip() == windows.descriptions[int(i)]
        parsable += parse_goal(answer).ok
    n = len(rows)
    return {
        "windows": n,
        "gated_only": gated_only,
        "category_accuracy": sum(right.values()) / n,
        "per_category": {
            c: {"windows": total[c], "accuracy": right[c] / total[c]} for c in RISK_CATEGORIES if total[c]
        },
        "confusion": {f"{t}->{p}": k for (t, p), k in sorted(confusion.items()) if t != p},
        "exact_match": exact / n,
        "parsable": parsable / n,
        "generate_ms_per_window": 1000.0 * seconds / n,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR)
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--minutes", type=float)
    budget.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-windows", type=int, default=12_000)
    parser.add_argument("--scenarios", help="comma-separated; a name given twice is drawn twice as often")
    parser.add_argument("--category-power", type=float, default=0.5)
    parser.add_argument("--eval-windows", type=int, default=0, help="held-out windows to score afterwards")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--frame-size", type=int, default=DEFAULT_FRAME_SIZE, help="pixels the model sees")
    parser.add_argument("--vision-hidden", type=int, default=TinyVlmShape.vision_hidden, help="width")
    parser.add_argument("--vision-depth", type=int, default=TinyVlmShape.vision_depth, help="blocks")
    parser.add_argument(
        "--windows",
        type=Path,
        nargs="+",
        help="a VlmWindows .npz: read if it exists, else written; several existing ones: trained on together",
    )
    parser.add_argument(
        "--keep-categories",
        default="",
        help="comma-separated risk categories whose windows are kept at every step when generating",
    )
    parser.add_argument("--init", type=Path, help="continue from this saved model folder")
    parser.add_argument("--flip", action="store_true", help="mirror half the windows left-right")
    parser.add_argument(
        "--save-every", type=int, default=0, help="steps between resume points (0: none); rerun to resume"
    )
    parser.add_argument(
        "--labels", default="camera", help="camera (default), path or field_of_view: see generate_windows"
    )
    args = parser.parse_args(argv)
    scenarios = args.scenarios.split(",") if args.scenarios else None
    # A continued model keeps its saved shape; windows are cut at its frame size.
    shape = (_saved_shape(args.init) if args.init else None) or TinyVlmShape(
        frame_size=args.frame_size, vision_hidden=args.vision_hidden, vision_depth=args.vision_depth
    )
    keep_categories = [c for c in args.keep_categories.split(",") if c]
    windows = None
    paths: list[Path] = args.windows or []
    if len(paths) > 1 or (paths and paths[0].is_file()):
        windows = VlmWindows.load_many(paths)
    elif paths:
        windows = generate_windows(
            args.train_windows,
            seed=args.seed,
            scenarios=scenarios,
            frame_size=shape.frame_size,
            labels=args.labels,
            keep_categories=keep_categories,
        )
        windows.save(paths[0])
    summary = train_tiny_vlm(
        args.out,
        minutes=args.minutes,
        steps=args.steps,
        seed=args.seed,
        windows=windows,
        train_windows=args.train_windows,
        scenarios=scenarios,
        category_power=args.category_power,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        shape=None if args.init else shape,
        threads=args.threads,
        init=args.init,
        flip=args.flip,
        labels=args.labels,
        keep_categories=keep_categories,
        save_every=args.save_every,
    )
    print(json.dumps(summary, indent=2))
    if args.eval_windows:
        from drivevlm.data.vlm_windows import held_out_windows

        held_out = held_out_windows(
            args.eval_windows, frame_size=saved_frame_size(args.out), labels=saved_labels(args.out)
        )
        print(json.dumps(evaluate_tiny_vlm(args.out, held_out), indent=2))


if __name__ == "__main__":
    main()

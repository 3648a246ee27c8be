"""The `train.annotator` section: how the reward thread batches, retries and falls back."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivevlm.config import Section


class AnnotatorConfig(Section):
    # Transitions per reward-function call.
    batch_size: int = Field(64, ge=1)
    # Async mode: how long a short batch waits to fill. One step per reward call (what collection at a few
    # dozen steps/s gives without it) pays the models' per-call cost on every frame.
    linger_s: float = Field(0.2, ge=0, allow_inf_nan=False)
    # Threads pulling batches; the reward function does its own LVLM concurrency, so 1 is usually enough.
    workers: int = Field(1, ge=1, le=64)
    # A failing batch is retried this many times, waiting backoff_s·2^k, then falls back.
    max_retries: int = Field(2, ge=0)
    backoff_s: float = Field(0.5, ge=0)
    # What a transition gets when the reward function keeps failing: the env's provisional reward.
    fallback: Literal["provisional", "zero"] = "provisional"
    # Collection waiting this long on a full backlog means the annotator is stuck: an error, not a hang.
    stall_timeout_s: float = Field(900.0, gt=0)

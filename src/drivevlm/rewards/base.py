"""What a reward function receives and returns.

The env computes `VehicleSignals` (numbers only, `drivevlm.vehicle_signals`) each step and, when frames
are rendered, the RGB frames.
A reward function turns a batch of `RewardRequest`s into `RewardTerms`; it never touches a simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from drivevlm.models.base import Detector, ImageTextEncoder, VisionLanguageModel
from drivevlm.vehicle_signals import VehicleSignals


@dataclass(frozen=True, slots=True)
class RewardRequest:
    signals: VehicleSignals
    # Top-down RGB for the static pathway, (H, W, 3) uint8; None when frames were not rendered.
    bev_rgb: np.ndarray | None = None
    # The last K+1 front-camera frames, oldest first; the last one is the current frame.
    front_window: tuple[np.ndarray, ...] = ()


@dataclass(slots=True)
class RewardTerms:
    """Every term of one step's reward, for logging and inspection; `final` is what the learner sees."""

    final: float
    terms: dict[str, float] = field(default_factory=dict)
    # Free-text outputs (the LVLM's dynamic goal), kept for inspection only.
    texts: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class RewardFunction(Protocol):
    # True when the function needs `bev_rgb` / `front_window` (the env must render frames).
    needs_frames: bool

    def __call__(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]: ...


class ModelSource(Protocol):
    """What a reward preset's builder asks for its models (`rewards.build.ModelProvider` is the real one)."""

    def encoder(self) -> ImageTextEncoder: ...

    def detector(self) -> Detector: ...

    def vlm(self) -> VisionLanguageModel: ...

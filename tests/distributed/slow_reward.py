"""A real preset reward made slower per batch, so that an annotator actor is killed with work in flight."""

from __future__ import annotations

import time
from collections.abc import Sequence

from drivevlm.rewards.base import RewardRequest, RewardTerms


class DelayedReward:
    def __init__(self, inner: object, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.needs_frames = bool(getattr(inner, "needs_frames", False))
        self.calls = 0

    def __call__(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]:
        self.calls += 1
        time.sleep(self.delay_s)
        return list(self.inner(requests))  # type: ignore[operator]

    def counters(self) -> dict[str, float]:
        return {"calls": float(self.calls)}

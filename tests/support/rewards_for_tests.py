"""Reward functions for the training tests: real synthesis maths, a controllable delay, injectable failures.

They stand in for the model-backed reward (a slow model that may fail), which cannot run in these tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from drivevlm.driving_factors import shaping_terms
from drivevlm.rewards.base import RewardRequest, RewardTerms
from drivevlm.rewards.synthesis import final_reward


class SignalsReward:
    needs_frames = False

    def __init__(self, delay_s: float = 0.0, fail_first: int = 0, always_fail: bool = False) -> None:
        self.delay_s, self.fail_first, self.always_fail = delay_s, fail_first, always_fail
        self.calls = 0
        self.in_call = threading.Event()
        self._lock = threading.Lock()

    @property
    def counters(self) -> dict[str, int]:
        return {"calls": self.calls}

    def __call__(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]:
        with self._lock:
            self.calls += 1
            call = self.calls
        self.in_call.set()
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.always_fail or call <= self.fail_first:
            raise ConnectionError("reward model unavailable")
        s = [r.signals for r in requests]
        terms = shaping_terms(
            np.ones(len(s)),
            [x.speed_kmh for x in s],
            [x.center_offset_m for x in s],
            [x.heading_error_deg for x in s],
            [x.center_offset_std_m for x in s],
        )
        final = final_reward(terms["r_shaping"], [x.collided for x in s], -10.0)
        return [
            RewardTerms(final=float(final[i]), terms={"r_shaping": float(terms["r_shaping"][i])})
            for i in range(len(s))
        ]

"""Per-env windows of the last K+1 front frames, turned into reward requests.

Kept free of torch and SB3 so that inspection tools can build the same windows as training without paying
for the learner's imports.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from drivevlm.rewards.base import RewardRequest


class RequestBuilder:
    """Keeps, per env, the last K+1 front frames (references) and turns step infos into reward requests.

    The window restarts at each episode boundary; until K+1 frames exist, the oldest one is repeated so every
    request holds exactly K+1 frames.
    """

    def __init__(self, n_envs: int, window_frames: int = 4) -> None:
        if window_frames < 1:
            raise ValueError(f"window_frames: must be >= 1, got {window_frames}")
        self.window_frames = window_frames
        self._windows: list[deque[np.ndarray]] = [deque(maxlen=window_frames) for _ in range(n_envs)]

    def start_episode(self, env: int, info: Mapping[str, Any] | None) -> None:
        window = self._windows[env]
        window.clear()
        frames = (info or {}).get("frames")
        if frames is not None and frames.get("front") is not None:
            window.append(frames["front"])

    def _window(self, env: int) -> tuple[np.ndarray, ...]:
        window = self._windows[env]
        if not window:
            return ()
        return (window[0],) * (self.window_frames - len(window)) + tuple(window)

    def build(
        self,
        infos: Sequence[Mapping[str, Any]],
        dones: Sequence[bool] | np.ndarray,
        reset_infos: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[RewardRequest]:
        requests = []
        for env, info in enumerate(infos):
            if "signals" not in info:
                raise KeyError("info['signals']: the env must report VehicleSignals for reward annotation")
            frames = info.get("frames")
            bev_rgb = None
            if frames is not None:
                bev_rgb = frames.get("bev_rgb")
                if frames.get("front") is not None:
                    self._windows[env].append(frames["front"])
            requests.append(
                RewardRequest(signals=info["signals"], bev_rgb=bev_rgb, front_window=self._window(env))
            )
            if dones[env]:
                self.start_episode(env, reset_infos[env] if reset_infos is not None else None)
        return requests

"""Sampling reward requests from scripted episodes: counts, the trainer's K+1 window, episode boundaries."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from drivevlm.config import ConfigError, EnvConfig
from drivevlm.inspection.frames import drive_episode, sample_requests, scenario_env_config

BASE = EnvConfig(rgb_size=64)


def test_windows_hold_k_plus_one_frames_and_slide_one_step_at_a_time() -> None:
    config = scenario_env_config(BASE, "pedestrian_crossing", seed=0, render_frames=True)
    items = list(drive_episode(config, max_steps=6, window_frames=4, seed=0))
    assert [i.step for i in items] == [1, 2, 3, 4, 5, 6]
    first = items[0].request.front_window
    assert len(first) == 4
    # Start of the episode: the reset frame repeated until K+1 frames exist, then the current frame.
    assert first[0] is first[1] is first[2]
    assert first[3] is items[0].frames["front"]
    for before, after in itertools.pairwise(items):
        window = after.request.front_window
        assert len(window) == 4 and window[-1] is after.frames["front"]
        assert all(a is b for a, b in zip(window[:-1], before.request.front_window[1:], strict=True))
        assert after.request.bev_rgb is after.frames["bev_rgb"]
        assert after.request.bev_rgb.shape == (64, 64, 3) and after.request.bev_rgb.dtype == np.uint8


def test_samples_are_spread_over_scenarios_and_vru_scenarios_have_vulnerable_road_users() -> None:
    labelled = sample_requests(BASE, ["slow_cyclist", "car_following"], 6, 4, True, seed=0, stride=3)
    assert [scenario for scenario, _ in labelled] == ["slow_cyclist"] * 3 + ["car_following"] * 3
    requests = [request for _, request in labelled]
    cyclist, following = requests[:3], requests[3:]
    assert all(math.isfinite(r.signals.nearest_vru_ahead_m) for r in cyclist)
    assert all(len(r.front_window) == 4 and r.bev_rgb is not None for r in requests)
    assert len({id(r.bev_rgb) for r in following}) == 3


def test_fewer_frames_than_scenarios_takes_the_first_scenarios() -> None:
    requests = sample_requests(BASE, ["slow_cyclist", "car_following", "pedestrian_crossing"], 2, 4, False)
    assert len(requests) == 2


def test_without_frames_requests_carry_signals_only() -> None:
    requests = [r for _, r in sample_requests(BASE, ["car_following"], 3, 4, False, stride=2)]
    assert len(requests) == 3
    assert all(r.bev_rgb is None and r.front_window == () for r in requests)
    assert all(r.signals.speed_kmh >= 0 for r in requests)


@pytest.mark.parametrize(
    ("scenarios", "frames", "stride", "message"),
    [
        (["nowhere"], 4, 1, "scenarios: unknown value 'nowhere'"),
        ([], 4, 1, "scenarios: at least one scenario"),
        (["car_following"], 0, 1, "frames: must be >= 1"),
        (["car_following"], 4, 0, "stride: must be >= 1"),
    ],
)
def test_bad_sampling_inputs_name_the_field(
    scenarios: list[str], frames: int, stride: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        sample_requests(BASE, scenarios, frames, 4, True, stride=stride)

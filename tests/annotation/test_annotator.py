from __future__ import annotations

import time

import numpy as np
import pytest

from drivevlm.annotation.annotator import Annotator
from drivevlm.annotation.config import AnnotatorConfig
from drivevlm.annotation.queue import PendingRewards, PendingTransition
from drivevlm.annotation.windows import RequestBuilder
from drivevlm.rewards.base import RewardRequest
from support.rewards_for_tests import SignalsReward
from support.toy_env import ToyDriveEnv


def _requests(n: int) -> list[RewardRequest]:
    env = ToyDriveEnv()
    env.reset(seed=1)
    out = []
    for _ in range(n):
        _, _, _, _, info = env.step(np.array([0.0, 1.0]))
        out.append(RewardRequest(signals=info["signals"]))
    return out


class _Sink:
    def __init__(self) -> None:
        self.rewards: dict[int, float] = {}
        self.fell_back: dict[int, bool] = {}

    def __call__(self, records, terms, fell_back) -> int:
        for record, term, fb in zip(records, terms, fell_back, strict=True):
            self.rewards[record.transition_id] = term.final
            self.fell_back[record.transition_id] = fb
        return len(records)


def _setup(reward: SignalsReward, limit: int = 1000, **cfg) -> tuple[PendingRewards, _Sink, Annotator]:
    pending = PendingRewards(limit)
    sink = _Sink()
    pending.attach(sink)
    annotator = Annotator(pending, reward, AnnotatorConfig(**{"backoff_s": 0.01, **cfg}))
    return pending, sink, annotator


def test_collection_runs_ahead_of_a_slow_reward_model() -> None:
    reward = SignalsReward(delay_s=0.05)
    pending, sink, annotator = _setup(reward, batch_size=8)
    requests = _requests(64)
    annotator.start()
    try:
        start = time.monotonic()
        for i, request in enumerate(requests):
            pending.put([PendingTransition(i, request, 0.0)])
        put_time = time.monotonic() - start
        assert reward.in_call.wait(2)
        assert annotator.steps_behind() > 0 and annotator.stats()["pending"] > 0
        assert pending.wait_empty(timeout=10)
    finally:
        annotator.close()
    # 8 batches of 0.05 s: collection did not wait for them.
    assert put_time < 0.2
    assert sorted(sink.rewards) == list(range(64))
    expected = SignalsReward()(requests)
    assert [sink.rewards[i] for i in range(64)] == [t.final for t in expected]
    stats = annotator.stats()
    assert stats["annotated"] == 64 and stats["fallbacks"] == 0 and stats["annotations_per_s"] > 0
    assert stats["reward_fn/calls"] == reward.calls >= 8
    means = annotator.pop_term_means()
    assert set(means) == {"final", "r_shaping"} and annotator.pop_term_means() == {}


def test_failures_are_retried_then_fall_back_without_stopping() -> None:
    reward = SignalsReward(fail_first=1)
    pending, sink, annotator = _setup(reward, max_retries=2, batch_size=4)
    pending.put([PendingTransition(i, r, 5.0) for i, r in enumerate(_requests(4))])
    annotator.drain()
    assert annotator.counts["retries"] == 1 and annotator.counts["fallbacks"] == 0
    assert not any(sink.fell_back.values())

    broken = SignalsReward(always_fail=True)
    pending, sink, annotator = _setup(broken, max_retries=2, batch_size=4)
    pending.put([PendingTransition(i, r, 5.0 + i) for i, r in enumerate(_requests(4))])
    annotator.drain()
    assert broken.calls == 3 and annotator.counts["fallbacks"] == 4
    assert sink.rewards == {0: 5.0, 1: 6.0, 2: 7.0, 3: 8.0} and all(sink.fell_back.values())
    assert "ConnectionError" in (annotator.last_error or "")


def test_garbage_results_fall_back_to_zero_when_configured() -> None:
    class WrongLength(SignalsReward):
        def __call__(self, requests):
            return super().__call__(requests)[:-1]

    pending, sink, annotator = _setup(WrongLength(), max_retries=0, fallback="zero")
    pending.put([PendingTransition(i, r, 5.0) for i, r in enumerate(_requests(3))])
    annotator.drain()
    assert sink.rewards == {0: 0.0, 1: 0.0, 2: 0.0} and annotator.counts["fallbacks"] == 3


def test_request_windows_hold_k_plus_1_frames_and_restart_with_each_episode() -> None:
    env = ToyDriveEnv(render_frames=True, max_steps=3)
    builder = RequestBuilder(n_envs=1, window_frames=3)
    _, info = env.reset(seed=0)
    builder.start_episode(0, info)
    steps = []
    for _ in range(5):
        _, _, term, trunc, info = env.step(np.array([0.0, 0.5]))
        done = term or trunc
        reset_info = {}
        if done:
            _, reset_info = env.reset()
        (request,) = builder.build([info], [done], [reset_info])
        steps.append([int(frame[0, 0, 0]) for frame in request.front_window])
        assert request.bev_rgb is info["frames"]["bev_rgb"]
    # Frames are stamped with their step; the window restarts from the reset frame (0).
    assert steps == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [0, 0, 1], [0, 1, 2]]


def _trickle(pending: PendingRewards, requests: list[RewardRequest], gap_s: float) -> None:
    for i, request in enumerate(requests):
        pending.put([PendingTransition(i, request, 0.0)])
        time.sleep(gap_s)


def test_a_short_batch_lingers_to_fill_instead_of_calling_per_step() -> None:
    reward = SignalsReward()
    pending = PendingRewards(1000)
    sink = _Sink()
    pending.attach(sink)
    annotator = Annotator(pending, reward, AnnotatorConfig(batch_size=8, linger_s=0.5))
    annotator.start()
    try:
        # One step every 10 ms: without lingering each step would be its own reward call.
        _trickle(pending, _requests(8), 0.01)
        assert pending.wait_empty(timeout=5)
    finally:
        annotator.close()
    assert sorted(sink.rewards) == list(range(8))
    assert annotator.stats()["batches"] == 1 and reward.calls == 1


def test_no_linger_annotates_each_step_as_it_arrives() -> None:
    reward = SignalsReward()
    pending = PendingRewards(1000)
    pending.attach(_Sink())
    annotator = Annotator(pending, reward, AnnotatorConfig(batch_size=8, linger_s=0.0))
    annotator.start()
    try:
        _trickle(pending, _requests(8), 0.05)
        assert pending.wait_empty(timeout=5)
    finally:
        annotator.close()
    assert annotator.stats()["batches"] >= 4


def test_linger_must_be_a_finite_non_negative_time() -> None:
    from drivevlm.config import ConfigError, build

    for bad in (-0.1, float("nan")):
        with pytest.raises(ConfigError, match="linger_s"):
            build(AnnotatorConfig, {"linger_s": bad}, "train.annotator")

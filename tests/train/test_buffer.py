from __future__ import annotations

import gc
import threading
import time
import weakref

import numpy as np
import pytest
import torch as th

from drivevlm.rewards.base import RewardRequest, RewardTerms
from drivevlm.train.buffer import NoAnnotatedTransitionsError, PendingRewardReplayBuffer
from support.toy_env import ToyDriveEnv

ENV = ToyDriveEnv(size=16)


def _obs(n_envs: int, value: int) -> dict[str, np.ndarray]:
    bev = np.zeros((n_envs, *ENV.observation_space["bev"].shape), np.uint8)
    bev[:, 0, 0, : value % 16] = 255
    state = np.full((n_envs, 33), value, np.float32)
    return {"bev": bev, "state": state}


def _infos(n_envs: int) -> list[dict]:
    env = ToyDriveEnv(size=16)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(2))
    return [dict(info) for _ in range(n_envs)]


def _buffer(size: int, n_envs: int = 1, limit: int = 1000, **kwargs) -> PendingRewardReplayBuffer:
    return PendingRewardReplayBuffer(
        size,
        ENV.observation_space,
        ENV.action_space,
        device="cpu",
        n_envs=n_envs,
        backlog_limit=limit,
        **kwargs,
    )


def _add(buffer: PendingRewardReplayBuffer, value: int, done: bool = False) -> None:
    n = buffer.n_envs
    buffer.add(
        _obs(n, value), _obs(n, value + 1), np.zeros((n, 2)), np.full(n, -1.0), np.full(n, done), _infos(n)
    )


def _annotate(buffer: PendingRewardReplayBuffer, reward_of_id=lambda i: float(i)) -> int:
    batch = buffer.pending.take(10_000, timeout=0)
    return buffer.pending.complete(
        batch, [RewardTerms(final=reward_of_id(r.transition_id)) for r in batch], [False] * len(batch)
    )


def test_rewards_stay_pending_until_annotated_and_only_annotated_are_sampled() -> None:
    buffer = _buffer(100)
    for step in range(5):
        _add(buffer, step)
    assert len(buffer.pending) == 5 and buffer.annotated_count == 0
    with pytest.raises(NoAnnotatedTransitionsError):
        buffer.sample(8)
    batch = buffer.pending.take(2, timeout=0)
    assert [r.transition_id for r in batch] == [0, 1]
    buffer.pending.complete(
        batch, [RewardTerms(final=100.0 + r.transition_id) for r in batch], [False, False]
    )
    assert buffer.annotated_count == 2 and len(buffer.pending) == 3
    samples = buffer.sample(64)
    assert set(samples.rewards.flatten().tolist()) == {100.0, 101.0}
    assert buffer.reward_of(0) == 100.0 and buffer.reward_of(2) is None


def test_wrap_around_annotation_cannot_land_on_a_newer_transition() -> None:
    buffer = _buffer(4)
    _add(buffer, 0)
    stale = buffer.pending.take(1, timeout=0)  # id 0 in flight at the annotator
    for step in range(1, 6):
        _add(buffer, step)
    # ids 4 and 5 now occupy the rows of ids 0 and 1.
    assert buffer.ids[0, 0] == 4 and buffer.overwritten_pending >= 1
    accepted = buffer.pending.complete(stale, [RewardTerms(final=123.0)], [False])
    assert accepted == 0 and buffer.stale_annotations == 1
    assert buffer.reward_of(4) is None and not buffer.annotated[0, 0]
    _annotate(buffer)
    assert buffer.reward_of(4) == 4.0 and buffer.reward_of(0) is None


def test_several_envs_get_distinct_ids_and_terminal_next_observations() -> None:
    buffer = _buffer(30, n_envs=3)
    _add(buffer, 1)
    _add(buffer, 2, done=True)
    _add(buffer, 7)
    assert buffer.ids[:3].tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    _annotate(buffer)
    got = buffer.transitions([1, 4, 7])
    assert got.rewards.flatten().tolist() == [1.0, 4.0, 7.0]
    state = got.observations["state"][:, 0].tolist()
    assert state == [1.0, 2.0, 7.0]
    # Transition 4 ended an episode: its next observation is the terminal one (3), not the next row's (7).
    assert got.next_observations["state"][:, 0].tolist() == [2.0, 3.0, 8.0]
    assert got.dones.flatten().tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("storage", ["bits", "uint8"])
def test_masks_round_trip_exactly(storage: str) -> None:
    buffer = _buffer(10, bev_storage=storage)
    _add(buffer, 5)
    _annotate(buffer)
    got = buffer.transitions([0])
    expected = _obs(1, 5)["bev"]
    assert got.observations["bev"].dtype.is_floating_point is False
    np.testing.assert_array_equal(got.observations["bev"].numpy(), expected)
    np.testing.assert_array_equal(got.next_observations["bev"].numpy(), _obs(1, 6)["bev"])
    per_obs = (
        buffer.observations["bev"].shape[-1]
        if storage == "bits"
        else np.prod(buffer.observations["bev"].shape[2:])
    )
    assert per_obs == (np.prod(ENV.observation_space["bev"].shape) // (8 if storage == "bits" else 1))


def test_full_backlog_blocks_collection_until_the_annotator_catches_up() -> None:
    buffer = _buffer(100, limit=3)
    for step in range(3):
        _add(buffer, step)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (_add(buffer, 3), done.set()))
    thread.start()
    time.sleep(0.3)
    assert not done.is_set(), "collection must wait while the backlog is full"
    assert buffer.adds == 4 and len(buffer.pending) == 3
    _annotate(buffer)
    thread.join(timeout=5)
    assert done.is_set() and len(buffer.pending) == 1


def test_frames_are_released_once_annotated() -> None:
    buffer = _buffer(10)
    frame = np.zeros((8, 8, 3), np.uint8)
    ref = weakref.ref(frame)
    infos = _infos(1)
    buffer.stage_requests([RewardRequest(signals=infos[0]["signals"], bev_rgb=frame, front_window=(frame,))])
    buffer.add(_obs(1, 0), _obs(1, 1), np.zeros((1, 2)), np.zeros(1), np.zeros(1), infos)
    del frame
    gc.collect()
    assert ref() is not None, "a pending transition keeps its frames"
    _annotate(buffer)
    gc.collect()
    assert ref() is None, "annotated transitions must not keep frames"


def test_buffer_state_round_trips() -> None:
    buffer = _buffer(10, n_envs=2)
    for step in range(4):
        _add(buffer, step, done=step == 1)
    _annotate(buffer)
    copy = _buffer(10, n_envs=2)
    arrays = buffer.state_arrays()
    # Only the rows written so far: four transitions and the newest next observation.
    assert len(arrays["ids"]) == len(arrays["obs/bev"]) == 5
    copy.load_state_arrays(arrays)
    ids = [0, 3, 5, 7]
    a, b = buffer.transitions(ids), copy.transitions(ids)
    for key in ("bev", "state"):
        np.testing.assert_array_equal(a.next_observations[key].numpy(), b.next_observations[key].numpy())
    assert a.rewards.tolist() == b.rewards.tolist() and copy.adds == buffer.adds


def test_episode_returns_are_the_annotated_rewards_reported_once_complete() -> None:
    buffer = _buffer(100)
    for value, done in ((0, False), (1, False), (2, True), (3, False), (4, True), (5, False)):
        _add(buffer, value, done=done)
    assert buffer.pop_episode_returns() == []  # nothing annotated yet: provisional rewards are not returns
    batch = buffer.pending.take(10_000, timeout=0)
    first, rest = batch[:2], batch[2:]
    buffer.pending.complete(first, [RewardTerms(final=1.0), RewardTerms(final=2.0)], [False, False])
    assert buffer.pop_episode_returns() == []  # the first episode (ids 0-2) still waits on id 2
    buffer.pending.complete(rest, [RewardTerms(final=10.0 * r.transition_id) for r in rest], [False] * 4)
    # Episodes 0-2 and 3-4 ended; id 5 belongs to the running episode.
    assert buffer.pop_episode_returns() == [1.0 + 2.0 + 20.0, 30.0 + 40.0]
    assert buffer.pop_episode_returns() == []


def test_an_episode_overwritten_before_annotation_is_dropped() -> None:
    buffer = _buffer(4)
    for value in range(3):
        _add(buffer, value, done=value == 2)
    for value in range(3, 6):
        _add(buffer, value)  # wraps around over ids 0-1 before they were annotated
    _annotate(buffer)
    assert buffer.pop_episode_returns() == []
    assert buffer._ended_episodes == []


@pytest.mark.parametrize("mask_dtype", [th.float32, th.bfloat16])
@pytest.mark.parametrize("storage", ["bits", "uint8"])
def test_learner_samples_are_the_preprocessed_samples(storage: str, mask_dtype: th.dtype) -> None:
    buffer = _buffer(20, bev_storage=storage)
    for step in range(8):
        _add(buffer, step, done=step == 3)
    _annotate(buffer)
    np.random.seed(3)
    plain = buffer.sample(16)
    np.random.seed(3)
    ready = buffer.sample_for_learner(16, mask_dtype)
    for key, scale in (("bev", 255.0), ("state", 1.0)):
        for got, expected in (
            (ready.observations[key], plain.observations[key]),
            (ready.next_observations[key], plain.next_observations[key]),
        ):
            if key == "bev" and storage == "bits":
                assert got.dtype == mask_dtype
            assert got.dtype.is_floating_point
            np.testing.assert_array_equal(got.float().numpy(), expected.numpy().astype(np.float32) / scale)
    for name in ("actions", "rewards", "dones"):
        assert getattr(ready, name).tolist() == getattr(plain, name).tolist()


def test_learner_masks_whose_bits_do_not_fill_whole_bytes_unpack_the_same() -> None:
    env = ToyDriveEnv(size=5, channels=5)  # 125 bits a mask: the last stored byte is padded
    space = env.observation_space
    buffer = PendingRewardReplayBuffer(8, space, env.action_space, device="cpu", backlog_limit=100)
    rng = np.random.default_rng(0)
    for _ in range(6):
        obs, nxt = (
            {
                "bev": (rng.random((1, 5, 5, 5)) < 0.5).astype(np.uint8) * 255,
                "state": np.zeros((1, 33), np.float32),
            }
            for _ in range(2)
        )
        buffer.add(obs, nxt, np.zeros((1, 2)), np.zeros(1), np.zeros(1), _infos(1))
    _annotate(buffer)
    for dtype in (th.float32, th.bfloat16):
        np.random.seed(1)
        plain = buffer.sample(4)
        np.random.seed(1)
        ready = buffer.sample_for_learner(4, dtype)
        assert ready.observations["bev"].dtype == dtype
        np.testing.assert_array_equal(
            ready.observations["bev"].float().numpy(), plain.observations["bev"].numpy() / 255.0
        )


def test_a_buffer_saved_with_channel_first_bits_loads_in_the_current_layout() -> None:
    buffer = _buffer(10, n_envs=2)
    for step in range(4):
        _add(buffer, step, done=step == 1)
    _annotate(buffer)
    arrays = dict(buffer.state_arrays())
    # What a checkpoint written before the channels-last layout held: masks packed in (C, H, W) order.
    shape = ENV.observation_space["bev"].shape
    del arrays["bit_layout"]
    for name in ("obs/bev", "terminal/bev"):
        hwc = np.unpackbits(arrays[name], axis=-1).reshape((*arrays[name].shape[:-1], *shape[1:], shape[0]))
        arrays[name] = np.packbits(np.moveaxis(hwc, -1, -3).reshape(*arrays[name].shape[:-1], -1), axis=-1)
    copy = _buffer(10, n_envs=2)
    copy.load_state_arrays(arrays)
    ids = [0, 3, 5, 7]
    a, b = buffer.transitions(ids), copy.transitions(ids)
    np.testing.assert_array_equal(a.observations["bev"].numpy(), b.observations["bev"].numpy())
    np.testing.assert_array_equal(a.next_observations["bev"].numpy(), b.next_observations["bev"].numpy())

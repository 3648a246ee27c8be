"""Replay buffer whose rewards arrive later: transitions wait, pending, until the annotator writes R_final.

Every transition gets a global id (`add` call index · n_envs + env index). The annotator receives the
`RewardRequest` (signals and frames) of each pending transition from `PendingRewards`, and writes the reward
back by id; the buffer checks the id against the slot, so an annotation that arrives after the ring buffer
wrapped around is dropped instead of landing on a newer transition. The learner samples annotated
transitions only. Frames live in the pending records alone and are released once annotated.

Memory: the observation of step t+1 is stored once (as the next observation of t and the observation of
t+1); only episode ends keep a separate terminal observation. The policy's 0/255 masks are stored one bit
per pixel (`bev_storage="bits"`), 8x smaller than uint8, in HWC order so that a learner batch unpacks
straight into the channels-last layout the CNN runs fastest on.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, DictReplayBuffer
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from drivevlm.annotation.queue import PendingRewards, PendingTransition, request_from_info
from drivevlm.rewards.base import RewardRequest, RewardTerms

# How bit-packed masks are ordered in a saved buffer (checkpoints before the HWC order have no marker).
BIT_LAYOUT_CHW, BIT_LAYOUT_HWC = 0, 1


@functools.cache
def bit_rows(dtype: th.dtype) -> th.Tensor:
    """Row b: the eight bits of byte b as 0/1 in `dtype`, most significant first (np.packbits' order)."""
    return ((th.arange(256)[:, None] >> th.arange(7, -1, -1)) & 1).to(dtype)


class NoAnnotatedTransitionsError(RuntimeError):
    """The learner asked for a batch before any transition was annotated."""


class PendingRewardReplayBuffer(DictReplayBuffer):
    """SB3 `DictReplayBuffer` with pending rewards, ids checked on write, and compact observation storage.

    `buffer_size` counts transitions over all envs (as in SB3). Sampling draws annotated transitions only.
    The collector may `stage_requests` (with frames) before SB3 calls `add`; otherwise requests carry
    the signals from `infos` alone.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        backlog_limit: int = 4096,
        stall_timeout_s: float = 900.0,
        bev_storage: str = "bits",
        bit_keys: Sequence[str] = ("bev",),
        pending: PendingRewards | None = None,
    ) -> None:
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        if not isinstance(observation_space, spaces.Dict):
            raise TypeError("PendingRewardReplayBuffer needs a Dict observation space")
        if bev_storage not in ("bits", "uint8"):
            raise ValueError(f"bev_storage: unknown value {bev_storage!r}; allowed: bits, uint8")
        self.buffer_size = max(buffer_size // n_envs, 2)
        self.handle_timeout_termination = handle_timeout_termination
        self.optimize_memory_usage = False
        self._bits = {k for k in bit_keys if bev_storage == "bits" and k in observation_space.spaces}
        for key in self._bits:
            if observation_space[key].dtype != np.uint8:
                raise TypeError(f"observation {key!r}: bit storage needs uint8 masks")
        rows, envs = self.buffer_size, n_envs
        self.observations: dict[str, np.ndarray] = {}  # type: ignore[assignment]
        for key, shape in self.obs_shape.items():
            if key in self._bits:
                stored = (int(np.ceil(np.prod(shape) / 8)),)
                dtype = np.uint8
            else:
                stored, dtype = tuple(shape), observation_space[key].dtype
            self.observations[key] = np.zeros((rows, envs, *stored), dtype=dtype)
        self.actions = np.zeros((rows, envs, self.action_dim), dtype=np.float32)
        self.rewards = np.zeros((rows, envs), dtype=np.float32)
        self.dones = np.zeros((rows, envs), dtype=np.float32)
        self.timeouts = np.zeros((rows, envs), dtype=np.float32)
        self.ids = np.full((rows, envs), -1, dtype=np.int64)
        self.annotated = np.zeros((rows, envs), dtype=bool)
        self.fell_back = np.zeros((rows, envs), dtype=bool)
        # Next observations of episode-end transitions, keyed by (row, env); the ring row holds the reset obs.
        self.terminal_next: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self.adds = 0
        self.pending = pending or PendingRewards(backlog_limit, stall_timeout_s)
        self.pending.attach(self._write_rewards)
        self._lock = threading.Lock()
        self._staged: list[RewardRequest] | None = None
        self._learner_out: dict[tuple[str, str], th.Tensor] = {}
        self.stale_annotations = 0
        self.overwritten_pending = 0
        self.lossy_masks = 0
        # Transition ids of each env's running episode, and of ended episodes whose return is not yet known.
        self._episode_ids: list[list[int]] = [[] for _ in range(n_envs)]
        self._ended_episodes: list[list[int]] = []

    # ------------------------------------------------------------------ ids and storage

    def slot_of(self, transition_id: int) -> tuple[int, int]:
        return (transition_id // self.n_envs) % self.buffer_size, transition_id % self.n_envs

    def _pack(self, key: str, value: np.ndarray) -> np.ndarray:
        """(n_envs, *shape) -> stored rows; bit keys become one bit per pixel, channels last (HWC order)."""
        value = np.asarray(value).reshape((self.n_envs, *self.obs_shape[key]))
        if key not in self._bits:
            return value
        flat = np.moveaxis(value, 1, -1).reshape(self.n_envs, -1)
        if np.any((flat != 0) & (flat != 255)):
            self.lossy_masks += 1
            if self.lossy_masks == 1:
                warnings.warn(
                    f"observation {key!r} holds values other than 0/255; bit storage keeps value > 127 only",
                    stacklevel=3,
                )
        return np.packbits(flat > 127, axis=1)

    def _unpack_hwc(self, key: str, stored: np.ndarray) -> np.ndarray:
        """Stored bit rows -> 0/1 uint8 of shape (n, H, W, C)."""
        channels, *spatial = self.obs_shape[key]
        bits = np.unpackbits(stored, axis=-1, count=int(np.prod(self.obs_shape[key])))
        return bits.reshape((stored.shape[0], *spatial, channels))

    def _unpack(self, key: str, stored: np.ndarray) -> np.ndarray:
        if key not in self._bits:
            return stored
        # In place: the unpacked batch is the largest array of a sample; one pass, no temporary.
        bits = self._unpack_hwc(key, stored)
        np.multiply(bits, np.uint8(255), out=bits)
        return np.moveaxis(bits, -1, 1)

    def _tensor(self, array: np.ndarray) -> th.Tensor:
        """Without SB3's `th.tensor` copy: the gathered batch is already a fresh array."""
        return th.as_tensor(np.ascontiguousarray(array), device=self.device)

    def stage_requests(self, requests: Sequence[RewardRequest]) -> None:
        """Requests (with frames) for the next `add`, one per env."""
        if len(requests) != self.n_envs:
            raise ValueError(f"requests: expected {self.n_envs} (one per env), got {len(requests)}")
        self._staged = list(requests)

    def add(  # type: ignore[override]
        self,
        obs: dict[str, np.ndarray],
        next_obs: dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        requests = self._staged if self._staged is not None else [request_from_info(i) for i in infos]
        self._staged = None
        row, following = self.pos, (self.pos + 1) % self.buffer_size
        done = np.asarray(done, dtype=bool).reshape(self.n_envs)
        reward = np.asarray(reward, dtype=np.float32).reshape(self.n_envs)
        first_id = self.adds * self.n_envs
        with self._lock:
            overwritten = [
                int(i) for i, ok in zip(self.ids[row], self.annotated[row], strict=True) if i >= 0 and not ok
            ]
            for env in range(self.n_envs):
                self.terminal_next.pop((row, env), None)
            for key in self.observations:
                self.observations[key][row] = self._pack(key, obs[key])
                packed_next = self._pack(key, next_obs[key])
                self.observations[key][following] = packed_next
                for env in np.flatnonzero(done):
                    self.terminal_next.setdefault((row, int(env)), {})[key] = packed_next[env].copy()
            self.actions[row] = np.asarray(action).reshape(self.n_envs, self.action_dim)
            self.rewards[row] = reward
            self.dones[row] = done
            if self.handle_timeout_termination:
                self.timeouts[row] = [bool(i.get("TimeLimit.truncated", False)) for i in infos]
            self.ids[row] = np.arange(first_id, first_id + self.n_envs)
            self.annotated[row] = False
            self.fell_back[row] = False
            self.adds += 1
            self.pos = following
            if self.pos == 0:
                self.full = True
        for env in range(self.n_envs):
            self._episode_ids[env].append(first_id + env)
            if done[env]:
                self._ended_episodes.append(self._episode_ids[env])
                self._episode_ids[env] = []
        if overwritten:
            self.overwritten_pending += len(overwritten)
            self.pending.discard(overwritten)
        records = [
            PendingTransition(first_id + env, requests[env], float(reward[env])) for env in range(self.n_envs)
        ]
        self.pending.put(records)

    def _write_rewards(
        self, records: Sequence[PendingTransition], terms: Sequence[RewardTerms], fell_back: Sequence[bool]
    ) -> int:
        accepted = 0
        with self._lock:
            for record, term, fallback in zip(records, terms, fell_back, strict=True):
                row, env = self.slot_of(record.transition_id)
                if self.ids[row, env] != record.transition_id:
                    self.stale_annotations += 1
                    continue
                self.rewards[row, env] = term.final
                self.annotated[row, env] = True
                self.fell_back[row, env] = fallback
                accepted += 1
        return accepted

    # ------------------------------------------------------------------ sampling

    def _valid_rows(self) -> np.ndarray:
        if self.full:
            # Row `pos` holds the next observation of the newest transition, not its own transition.
            return np.delete(np.arange(self.buffer_size), self.pos)
        return np.arange(self.pos)

    @property
    def annotated_count(self) -> int:
        with self._lock:
            return int(self.annotated[self._valid_rows()].sum())

    def _pick(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and envs of `batch_size` annotated transitions drawn uniformly (call with the lock held)."""
        rows = self._valid_rows()
        flat = np.flatnonzero(self.annotated[rows])
        if flat.size == 0:
            raise NoAnnotatedTransitionsError("no annotated transition to sample yet")
        pick = flat[np.random.randint(0, flat.size, size=batch_size)]
        return rows[pick // self.n_envs], pick % self.n_envs

    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None
    ) -> DictReplayBufferSamples:
        if env is not None:
            raise ValueError("PendingRewardReplayBuffer does not support VecNormalize")
        with self._lock:
            return self._gather(*self._pick(batch_size))

    def sample_for_learner(
        self, batch_size: int, mask_dtype: th.dtype = th.float32
    ) -> DictReplayBufferSamples:
        """As `sample`, with the observations already preprocessed as SB3's policies do it (images / 255).

        Bit masks are unpacked straight into `mask_dtype` tensors (bfloat16 for an encoder under
        bfloat16 autocast: 0 and 1 are exact, and the batch needs no second cast) that are reused from call
        to call (a fresh tensor of that size costs more in page faults than the unpacking itself), with
        channels-last strides, on which the CNN runs fastest. The next call overwrites them.
        """
        with self._lock:
            rows, envs = self._pick(batch_size)
            obs, next_obs = self._gather_stored(rows, envs)
            rest = self._gather_rest(rows, envs)
        return DictReplayBufferSamples(
            observations={k: self._learner_tensor("obs", k, v, mask_dtype) for k, v in obs.items()},
            next_observations={
                k: self._learner_tensor("next", k, v, mask_dtype) for k, v in next_obs.items()
            },
            **rest,
        )

    def _learner_tensor(self, slot: str, key: str, stored: np.ndarray, dtype: th.dtype) -> th.Tensor:
        if key not in self._bits:
            return preprocess_obs(self._tensor(stored), self.observation_space[key])  # type: ignore[return-value]
        channels, *spatial = self.obs_shape[key]
        shape = (stored.shape[0], *spatial, channels)
        out = self._learner_out.get((slot, key))
        if out is None or out.shape != shape or out.dtype != dtype:
            out = self._learner_out[(slot, key)] = th.empty(shape, dtype=dtype)
        if stored.shape[1] * 8 == out[0].numel():
            # Each stored byte selects its row of eight 0/1 values: one multi-threaded pass, no temporary.
            th.index_select(bit_rows(dtype), 0, th.from_numpy(stored).reshape(-1).int(), out=out.view(-1, 8))
        else:
            out.copy_(th.from_numpy(self._unpack_hwc(key, stored)))
        return out.to(self.device).permute(0, 3, 1, 2)

    def _gather_stored(
        self, rows: np.ndarray, envs: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Stored (still packed) observations and next observations of these slots."""
        following = (rows + 1) % self.buffer_size
        # Only episode-end transitions (dones) have a separate terminal next observation.
        ends = []
        for i in np.flatnonzero(self.dones[rows, envs]).tolist():
            terminal = self.terminal_next.get((int(rows[i]), int(envs[i])))
            if terminal is not None:
                ends.append((i, terminal))
        obs, next_obs = {}, {}
        for key, stored in self.observations.items():
            nxt = stored[following, envs]
            for i, terminal in ends:
                nxt[i] = terminal[key]
            obs[key], next_obs[key] = stored[rows, envs], nxt
        return obs, next_obs

    def _gather_rest(self, rows: np.ndarray, envs: np.ndarray) -> dict[str, th.Tensor]:
        dones = self.dones[rows, envs] * (1.0 - self.timeouts[rows, envs])
        return {
            "actions": self._tensor(self.actions[rows, envs]),
            "dones": self._tensor(dones.reshape(-1, 1)),
            "rewards": self._tensor(self.rewards[rows, envs].reshape(-1, 1)),
        }

    def _gather(self, rows: np.ndarray, envs: np.ndarray) -> DictReplayBufferSamples:
        obs, next_obs = self._gather_stored(rows, envs)
        return DictReplayBufferSamples(
            observations={k: self._tensor(self._unpack(k, v)) for k, v in obs.items()},
            next_observations={k: self._tensor(self._unpack(k, v)) for k, v in next_obs.items()},
            **self._gather_rest(rows, envs),
        )

    def transitions(self, ids: Sequence[int]) -> DictReplayBufferSamples:
        """The stored transitions with these global ids (for inspection and tests)."""
        slots = [self.slot_of(int(i)) for i in ids]
        for transition_id, (row, env) in zip(ids, slots, strict=True):
            if self.ids[row, env] != transition_id:
                raise KeyError(f"transition {transition_id} is no longer in the buffer")
        rows = np.array([s[0] for s in slots])
        envs = np.array([s[1] for s in slots])
        with self._lock:
            return self._gather(rows, envs)

    def reward_of(self, transition_id: int) -> float | None:
        """The annotated reward of a transition; None while pending or after it left the buffer."""
        row, env = self.slot_of(transition_id)
        with self._lock:
            if self.ids[row, env] != transition_id or not self.annotated[row, env]:
                return None
            return float(self.rewards[row, env])

    def pop_episode_returns(self) -> list[float]:
        """Returns (sums of annotated rewards) of ended episodes now fully annotated, each reported once.

        An episode with a transition that left the buffer before annotation is dropped (return unknown).
        """
        returns, waiting = [], []
        for ids in self._ended_episodes:
            rewards = [self.reward_of(i) for i in ids]
            if all(r is not None for r in rewards):
                returns.append(float(sum(rewards)))  # type: ignore[arg-type]
            elif all(self.ids[self.slot_of(i)] == i for i in ids):
                waiting.append(ids)
        self._ended_episodes = waiting
        return returns

    # ------------------------------------------------------------------ checkpointing

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to restore the buffer; call only with no pending transitions."""
        if len(self.pending):
            raise RuntimeError(
                "state_arrays: annotate the pending transitions first (PendingRewards.wait_empty)"
            )
        with self._lock:
            # Only the rows written so far (row `pos` holds the newest next observation): a young buffer
            # of 100,000 rows is saved in a fraction of its full size.
            used = self.buffer_size if self.full else min(self.pos + 1, self.buffer_size)
            arrays = {f"obs/{k}": v[:used] for k, v in self.observations.items()}
            arrays.update(
                actions=self.actions[:used],
                rewards=self.rewards[:used],
                dones=self.dones[:used],
                timeouts=self.timeouts[:used],
                ids=self.ids[:used],
                annotated=self.annotated[:used],
                fell_back=self.fell_back[:used],
                counters=np.array([self.pos, int(self.full), self.adds], dtype=np.int64),
                bit_layout=np.array([BIT_LAYOUT_HWC], dtype=np.int64),
            )
            keys = sorted(self.terminal_next)
            arrays["terminal/slots"] = np.array(keys, dtype=np.int64).reshape(-1, 2)
            for key in self.observations:
                stacked = [self.terminal_next[s][key] for s in keys]
                shape = self.observations[key].shape[2:]
                arrays[f"terminal/{key}"] = (
                    np.stack(stacked) if stacked else np.zeros((0, *shape), self.observations[key].dtype)
                )
            return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        # Checkpoints written before bit masks were stored channels last hold them in CHW order.
        convert = int(arrays.get("bit_layout", [BIT_LAYOUT_CHW])[0]) == BIT_LAYOUT_CHW
        with self._lock:
            used = len(arrays["ids"])
            for key in self.observations:
                stored = arrays[f"obs/{key}"]
                if stored.shape[1:] != self.observations[key].shape[1:] or used > self.buffer_size:
                    raise ValueError(
                        f"replay buffer {key}: saved shape {stored.shape} does not fit "
                        f"{self.observations[key].shape}"
                    )
                if convert and key in self._bits:
                    for start in range(0, used, 1024):
                        rows = slice(start, min(start + 1024, used))
                        self.observations[key][rows] = self._chw_bits_to_hwc(key, stored[rows])
                    continue
                self.observations[key][:used] = stored
            for name in ("actions", "rewards", "dones", "timeouts", "ids", "annotated", "fell_back"):
                getattr(self, name)[:used] = arrays[name]
            pos, full, adds = (int(x) for x in arrays["counters"])
            self.pos, self.full, self.adds = pos, bool(full), adds
            self.terminal_next = {}
            for index, (row, env) in enumerate(arrays["terminal/slots"].tolist()):
                self.terminal_next[(row, env)] = {
                    k: arrays[f"terminal/{k}"][index] for k in self.observations
                }
                if convert:
                    for key in self._bits:
                        self.terminal_next[(row, env)][key] = self._chw_bits_to_hwc(
                            key, self.terminal_next[(row, env)][key]
                        )

    def _chw_bits_to_hwc(self, key: str, stored: np.ndarray) -> np.ndarray:
        shape = self.obs_shape[key]
        bits = np.unpackbits(stored, axis=-1, count=int(np.prod(shape)))
        bits = np.moveaxis(bits.reshape((*stored.shape[:-1], *shape)), -3, -1)
        return np.packbits(bits.reshape((*stored.shape[:-1], -1)), axis=-1)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(
            "save the buffer with drivevlm.train.checkpoint, not pickle (it holds locks and frames)"
        )

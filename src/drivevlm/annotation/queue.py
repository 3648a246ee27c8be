"""The backlog between collection and annotation: transitions wait here, with their reward request, until
the annotator scores them.

Bounded and thread-safe; collection blocks on a full backlog (and fails after the stall time-out instead of
hanging), the annotator takes batches, and the results go to the attached sink (the replay buffer, or PPO's
rollout) by transition id. Kept free of torch and SB3.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from drivevlm.rewards.base import RewardRequest, RewardTerms


class AnnotatorStalledError(RuntimeError):
    """Collection waited on a full backlog for longer than the stall time-out: the annotator is stuck."""


@dataclass(slots=True)
class PendingTransition:
    transition_id: int
    request: RewardRequest
    # The env's reward (vehicle state only): the documented fallback when annotation keeps failing.
    provisional_reward: float


# Receives annotated records; returns how many were accepted (stale ones are not).
RewardSink = Callable[[Sequence[PendingTransition], Sequence[RewardTerms], Sequence[bool]], int]


class PendingRewards:
    """Bounded, thread-safe backlog of transitions waiting for their reward.

    `put` blocks while the backlog is full (back-pressure on collection); with `on_full` set (synchronous
    mode) it calls `on_full` to annotate in place instead of waiting on a thread.
    """

    def __init__(self, limit: int, stall_timeout_s: float = 900.0) -> None:
        if limit < 1:
            raise ValueError(f"backlog limit: must be >= 1, got {limit}")
        self.limit = int(limit)
        self.stall_timeout_s = float(stall_timeout_s)
        self.on_full: Callable[[], None] | None = None
        self._sink: RewardSink | None = None
        self._cond = threading.Condition()
        self._queue: OrderedDict[int, PendingTransition] = OrderedDict()
        self._in_flight: dict[int, PendingTransition] = {}
        self._closed = False
        self.blocked_s = 0.0
        self.discarded = 0
        self.newest_id = -1

    def attach(self, sink: RewardSink) -> None:
        self._sink = sink

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._in_flight)

    @property
    def oldest_id(self) -> int | None:
        with self._cond:
            candidates = [next(iter(self._queue))] if self._queue else []
            if self._in_flight:
                candidates.append(min(self._in_flight))
            return min(candidates) if candidates else None

    def put(self, records: Sequence[PendingTransition]) -> None:
        start = time.monotonic()
        with self._cond:
            while self._pending_locked() and self._pending_locked() + len(records) > self.limit:
                if self._closed:
                    raise RuntimeError("reward backlog is closed")
                if self.on_full is not None:
                    self._cond.release()
                    try:
                        self.on_full()
                    finally:
                        self._cond.acquire()
                    continue
                waited = time.monotonic() - start
                if waited > self.stall_timeout_s:
                    raise AnnotatorStalledError(
                        f"collection waited {waited:.0f} s on a full reward backlog ({self.limit} pending); "
                        "the annotator is not making progress"
                    )
                self._cond.wait(timeout=min(1.0, self.stall_timeout_s))
            for record in records:
                self._queue[record.transition_id] = record
                self.newest_id = max(self.newest_id, record.transition_id)
            self._cond.notify_all()
        self.blocked_s += time.monotonic() - start

    def _pending_locked(self) -> int:
        return len(self._queue) + len(self._in_flight)

    def take(self, max_items: int, timeout: float | None = None) -> list[PendingTransition]:
        """Up to `max_items` oldest pending records, now in flight; [] after `timeout` or once closed."""
        with self._cond:
            if not self._queue and not self._closed:
                self._cond.wait(timeout=timeout)
            batch = []
            while self._queue and len(batch) < max_items:
                transition_id, record = self._queue.popitem(last=False)
                self._in_flight[transition_id] = record
                batch.append(record)
            return batch

    def complete(
        self, records: Sequence[PendingTransition], terms: Sequence[RewardTerms], fell_back: Sequence[bool]
    ) -> int:
        """Hand annotated records to the sink and release them (and their frames)."""
        if self._sink is None:
            raise RuntimeError("PendingRewards has no sink attached")
        accepted = self._sink(records, terms, fell_back)
        with self._cond:
            for record in records:
                self._in_flight.pop(record.transition_id, None)
            self._cond.notify_all()
        return accepted

    def discard(self, transition_ids: Sequence[int]) -> None:
        """Forget records whose slots were overwritten; one already in flight is rejected by id at write."""
        with self._cond:
            for transition_id in transition_ids:
                if self._queue.pop(transition_id, None) is not None:
                    self.discarded += 1
            self._cond.notify_all()

    def wait_empty(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending_locked():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(timeout=remaining if remaining is not None else 1.0)
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


def request_from_info(info: dict[str, Any]) -> RewardRequest:
    """A frame-less request from a step's info (used when the collector staged no frames)."""
    if "signals" not in info:
        raise KeyError("info['signals']: the env must report VehicleSignals for reward annotation")
    return RewardRequest(signals=info["signals"])

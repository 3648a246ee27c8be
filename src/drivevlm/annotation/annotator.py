"""The reward annotator: pulls pending transitions in batches, calls the reward function, writes R_final back.

It runs on its own thread(s) while the agent collects (async mode), or in the collector's thread after each
chunk (`drain`, sync mode). Where the reward function runs is an `AnnotatorBackend`: in this process by
default; a distributed backend (Ray actors) only has to implement `annotate`, `counters` and `close`.

Failures never stop training: a batch whose call raises (or returns the wrong number of terms or a
non-finite reward) is retried `max_retries` times with exponential back-off, then every transition of it
gets the documented fallback reward (the env's provisional reward, or 0) and is counted in `fallbacks`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from drivevlm.annotation.config import AnnotatorConfig
from drivevlm.annotation.queue import PendingRewards, PendingTransition
from drivevlm.retry import call_with_retries
from drivevlm.rewards.base import RewardFunction, RewardRequest, RewardTerms

log = logging.getLogger(__name__)


@runtime_checkable
class AnnotatorBackend(Protocol):
    def annotate(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]: ...

    def counters(self) -> dict[str, float]: ...

    def close(self) -> None: ...


def reward_counters(reward_fn: Any) -> dict[str, float]:
    """Counters a reward function exposes (`counters`, `stats`, or its dynamic pathway's `stats`)."""
    for owner in (reward_fn, getattr(reward_fn, "dynamic", None)):
        if owner is None:
            continue
        for name in ("counters", "stats"):
            value = getattr(owner, name, None)
            if callable(value):
                value = value()
            if isinstance(value, Mapping):
                return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float)}
    return {}


class HoldsRewardFunction:
    """Whatever runs a reward function: its counters, and closing it (its models, its server clients)."""

    def __init__(self, reward_fn: RewardFunction) -> None:
        self.reward_fn = reward_fn

    def counters(self) -> dict[str, float]:
        return reward_counters(self.reward_fn)

    def close(self) -> None:
        close = getattr(self.reward_fn, "close", None)
        if callable(close):
            close()


class LocalBackend(HoldsRewardFunction):
    """Calls the reward function in the annotator's own thread."""

    def annotate(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]:
        return list(self.reward_fn(requests))


class InvalidRewardError(ValueError):
    """The reward function returned something that is not one finite RewardTerms per request."""


def check_terms(terms: Any, n: int) -> list[RewardTerms]:
    if not isinstance(terms, list | tuple) or len(terms) != n:
        size = len(terms) if isinstance(terms, list | tuple) else type(terms).__name__
        raise InvalidRewardError(f"reward function returned {size} results for {n} requests")
    for term in terms:
        if not isinstance(term, RewardTerms) or not math.isfinite(float(term.final)):
            raise InvalidRewardError(f"reward function returned an invalid result {term!r}")
    return list(terms)


class Annotator:
    """Annotates the transitions of one `PendingRewards` backlog; reports lag, throughput and counts."""

    def __init__(
        self,
        pending: PendingRewards,
        backend: AnnotatorBackend | RewardFunction,
        config: AnnotatorConfig | None = None,
        n_envs: int = 1,
    ) -> None:
        self.pending = pending
        self.backend: AnnotatorBackend = (
            backend if isinstance(backend, AnnotatorBackend) else LocalBackend(backend)  # type: ignore[arg-type]
        )
        self.config = config or AnnotatorConfig()
        self.n_envs = n_envs
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._term_sums: Counter[str] = Counter()
        self._term_n = 0
        self._recent: deque[tuple[float, int]] = deque(maxlen=256)
        self.last_error: str | None = None

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """Start the annotation threads (async mode)."""
        if self._threads:
            return
        self._stop.clear()
        for index in range(self.config.workers):
            thread = threading.Thread(target=self._loop, name=f"reward-annotator-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _loop(self) -> None:
        while not self._stop.is_set() and not self.pending.closed:
            batch = self.pending.take(self.config.batch_size, timeout=0.1)
            if batch:
                self._annotate(self._fill(batch))

    def _fill(self, batch: list[PendingTransition]) -> list[PendingTransition]:
        """Top a short batch up with transitions collected within `linger_s` (async mode only)."""
        deadline = time.monotonic() + self.config.linger_s
        while len(batch) < self.config.batch_size and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            batch += self.pending.take(self.config.batch_size - len(batch), timeout=left)
        return batch

    def drain(self) -> int:
        """Annotate everything pending in the calling thread (sync mode); returns how many were done."""
        done = 0
        with self._drain_lock:
            while True:
                batch = self.pending.take(self.config.batch_size, timeout=0)
                if not batch:
                    return done
                self._annotate(batch)
                done += len(batch)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending (annotating in this thread when no annotator thread runs)."""
        if not self.running:
            self.drain()
        return self.pending.wait_empty(timeout)

    # ------------------------------------------------------------------ one batch

    def _annotate(self, batch: list[PendingTransition]) -> None:
        requests = [record.request for record in batch]
        attempts = self.config.max_retries + 1

        def failed(error: Exception, attempt: int, again: bool) -> None:
            with self._lock:
                self.counts["failures"] += 1
                self.counts["retries"] += int(again)
                self.last_error = f"{type(error).__name__}: {error}"
            log.warning("reward batch of %d failed (try %d/%d): %s", len(batch), attempt, attempts, error)

        try:
            terms = call_with_retries(
                lambda: check_terms(self.backend.annotate(requests), len(requests)),
                self.config.max_retries,
                self.config.backoff_s,
                on_failure=failed,
                wait=self._stop.wait,
            )
        except Exception:
            self._write(batch, [self._fallback(record) for record in batch], fell_back=True)
        else:
            self._write(batch, terms, fell_back=False)

    def _write(self, records: list[PendingTransition], terms: list[RewardTerms], fell_back: bool) -> None:
        """Write a batch's rewards through the buffer's id check and account for them."""
        accepted = self.pending.complete(records, terms, [fell_back] * len(records))
        now = time.monotonic()
        with self._lock:
            self.counts["annotated"] += len(records)
            self.counts["accepted"] += accepted
            self.counts["stale"] += len(records) - accepted
            self.counts["batches"] += 1
            if fell_back:
                self.counts["fallbacks"] += len(records)
            self._recent.append((now, len(records)))
            if not fell_back:
                for term in terms:
                    self._term_sums["final"] += term.final
                    for name, value in term.terms.items():
                        self._term_sums[name] += float(value)
                self._term_n += len(terms)

    def _fallback(self, record: PendingTransition) -> RewardTerms:
        final = record.provisional_reward if self.config.fallback == "provisional" else 0.0
        return RewardTerms(final=final, terms={"fallback": 1.0})

    # ------------------------------------------------------------------ reporting

    def throughput(self) -> float:
        """Annotations per second over the recent batches."""
        with self._lock:
            if len(self._recent) < 2:
                return 0.0
            span = self._recent[-1][0] - self._recent[0][0]
            count = sum(n for _, n in list(self._recent)[1:])
        return count / span if span > 0 else 0.0

    def steps_behind(self) -> int:
        oldest = self.pending.oldest_id
        if oldest is None:
            return 0
        return (self.pending.newest_id - oldest) // self.n_envs + 1

    def stats(self) -> dict[str, float]:
        with self._lock:
            counts = dict(self.counts)
        out: dict[str, float] = {
            "pending": float(len(self.pending)),
            "steps_behind": float(self.steps_behind()),
            "annotations_per_s": self.throughput(),
            "collection_blocked_s": self.pending.blocked_s,
            "discarded": float(self.pending.discarded),
        }
        for name in ("annotated", "accepted", "stale", "batches", "failures", "retries", "fallbacks"):
            out[name] = float(counts.get(name, 0))
        for name, value in self.backend.counters().items():
            out[f"reward_fn/{name}"] = value
        return out

    def pop_term_means(self) -> dict[str, float]:
        """Mean of every reward term annotated since the last call (for the logs)."""
        with self._lock:
            n, sums = self._term_n, dict(self._term_sums)
            self._term_sums.clear()
            self._term_n = 0
        return {name: value / n for name, value in sums.items()} if n else {}

    def close(self) -> None:
        self.stop()
        self.backend.close()

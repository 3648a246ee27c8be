"""Reward annotators as Ray actors; the driver's pending-reward buffer stays the single source of truth.

A dispatcher in the driver takes batches of pending transitions from `PendingRewards`, sends each batch
(transition ids and requests, frames included, through Ray's object store) to the least-busy annotator
actor, and writes each result back through `PendingRewards.complete`, i.e. the replay buffer's id-checked
write. Actors answer `(ids, terms)`: the driver checks the ids against the batch it sent.

Failures:
- the reward function raising (or returning a wrong result) inside an actor is an ordinary failure: the
  batch is retried with back-off `max_retries` times, then gets the documented fallback reward, as in
  local mode;
- a lost actor (its process or machine died, or `ray.kill`) is replaced by a new one (up to
  `train.ray.max_actor_restarts`) and the batches it held are re-queued, whole, to the live actors. A batch
  is written only when a result arrives, so no transition is lost and none is annotated twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from drivevlm.annotation.annotator import Annotator, HoldsRewardFunction, check_terms
from drivevlm.annotation.config import AnnotatorConfig
from drivevlm.annotation.queue import PendingRewards, PendingTransition
from drivevlm.distributed.cluster import import_ray
from drivevlm.distributed.config import RayConfig
from drivevlm.retry import backoff_delay
from drivevlm.rewards.base import RewardFunction, RewardRequest, RewardTerms

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AnnotationResult:
    """What an annotator actor sends back for one batch."""

    ids: list[int]
    terms: list[RewardTerms] | None
    # "Type: message" when the reward function failed on this batch.
    error: str | None
    # The actor's reward-function counters (gate rate, LVLM calls, cache hits, ...) after this batch.
    counters: dict[str, float]


class RewardWorker(HoldsRewardFunction):
    """Body of the annotator actor: runs the reward function (its models load on the actor's GPU/CPU)."""

    def annotate(self, ids: Sequence[int], requests: Sequence[RewardRequest]) -> AnnotationResult:
        try:
            terms = check_terms(self.reward_fn(requests), len(requests))
        except Exception as error:
            return AnnotationResult(list(ids), None, f"{type(error).__name__}: {error}", self.counters())
        return AnnotationResult(list(ids), terms, None, self.counters())


class AnnotatorPool:
    """`num_annotators` RewardWorker actors, with least-outstanding choice and replacement of lost ones.

    Also an `AnnotatorBackend` (`annotate`, `counters`, `close`), for callers that want blocking calls.
    """

    def __init__(self, reward_fn: RewardFunction, cfg: RayConfig) -> None:
        self.ray = import_ray()
        self.cfg = cfg
        try:
            self._reward_ref = self.ray.put(reward_fn)
        except Exception as error:
            raise TypeError(
                f"the reward function ({type(reward_fn).__name__}) must pickle to reach the annotator "
                f"actors: {error}"
            ) from error
        self._lock = threading.Lock()
        self.size = cfg.num_annotators
        self.actors: list[Any] = [self._spawn() for _ in range(self.size)]
        self.generation = [0] * self.size
        self.outstanding = [0] * self.size
        self.restarts = 0
        self.exhausted = False
        self._counters: list[dict[str, float]] = [{} for _ in range(self.size)]
        self._next = 0

    def _spawn(self) -> Any:
        actor_class = self.ray.remote(RewardWorker)
        options = self.cfg.annotator.ray_options()
        return actor_class.options(max_restarts=0, max_concurrency=1, **options).remote(self._reward_ref)

    @property
    def capacity(self) -> int:
        return self.size * self.cfg.annotator_max_in_flight

    def least_loaded(self) -> int:
        """The actor with the fewest outstanding batches (ties go round-robin)."""
        with self._lock:
            order = [(self._next + k) % self.size for k in range(self.size)]
            index = min(order, key=lambda i: self.outstanding[i])
            self._next = (index + 1) % self.size
            return index

    def submit(self, index: int, ids: list[int], requests: list[RewardRequest]) -> Any:
        with self._lock:
            self.outstanding[index] += 1
        return self.actors[index].annotate.remote(ids, requests)

    def settle(self, index: int, result: AnnotationResult | None) -> None:
        with self._lock:
            self.outstanding[index] = max(0, self.outstanding[index] - 1)
            if result is not None:
                self._counters[index] = dict(result.counters)

    def replace(self, index: int, generation: int, why: str) -> bool:
        """Start a new actor in slot `index` unless that was done already; False once restarts ran out."""
        with self._lock:
            if self.generation[index] != generation:
                return True
            if self.restarts >= self.cfg.max_actor_restarts:
                self.exhausted = True
                return False
            self.restarts += 1
            log.warning(
                "annotator actor %d lost (%s); starting a new one (restart %d)", index, why, self.restarts
            )
            with contextlib.suppress(Exception):
                self.ray.kill(self.actors[index], no_restart=True)
            self.actors[index] = self._spawn()
            self.generation[index] += 1
            self.outstanding[index] = 0
            self._counters[index] = {}
            return True

    def annotate(self, requests: Sequence[RewardRequest]) -> list[RewardTerms]:
        """Blocking: one batch on the least-busy actor, moved to a new actor if that one is lost."""
        ids = list(range(len(requests)))
        while True:
            index = self.least_loaded()
            generation = self.generation[index]
            ref = self.submit(index, ids, list(requests))
            try:
                result: AnnotationResult = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as error:
                self.settle(index, None)
                if not self.replace(index, generation, type(error).__name__):
                    raise RuntimeError("annotator actors lost more often than max_actor_restarts") from error
                continue
            self.settle(index, result)
            if result.error is not None:
                raise RuntimeError(result.error)
            return list(result.terms or [])

    def counters(self) -> dict[str, float]:
        with self._lock:
            totals: dict[str, float] = {}
            for counters in self._counters:
                for name, value in counters.items():
                    totals[name] = totals.get(name, 0.0) + value
            totals["actors"] = float(self.size)
            totals["actor_restarts"] = float(self.restarts)
            return totals

    def close(self) -> None:
        refs = []
        for actor in self.actors:
            with contextlib.suppress(Exception):
                refs.append(actor.close.remote())
        with contextlib.suppress(Exception):
            self.ray.wait(refs, num_returns=len(refs), timeout=10)
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)


@dataclass(slots=True)
class _Job:
    records: list[PendingTransition]
    failures: int = 0
    not_before: float = 0.0
    actor: int = -1
    generation: int = 0
    ids: list[int] = field(default_factory=list)


class RayAnnotator(Annotator):
    """The `Annotator` of the local executor, with batches dispatched to a pool of actors.

    Same backlog, counters (`annotated`, `accepted`, `stale`, `failures`, `retries`, `fallbacks`, plus
    `requeued`) and lifecycle (`start`, `drain`, `wait_idle`, `close`), so the learners and the trainer's
    checkpointing use it unchanged.
    """

    def __init__(
        self,
        pending: PendingRewards,
        reward_fn: RewardFunction,
        config: AnnotatorConfig,
        ray_config: RayConfig,
        n_envs: int = 1,
    ) -> None:
        self.pool = AnnotatorPool(reward_fn, ray_config)
        super().__init__(pending, self.pool, config, n_envs)
        self._waiting: deque[_Job] = deque()
        self._in_flight: dict[Any, _Job] = {}
        self._pump_lock = threading.Lock()

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        thread = threading.Thread(target=self._loop, name="ray-reward-dispatcher", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _loop(self) -> None:
        while not self._stop.is_set() and not self.pending.closed:
            with self._pump_lock:
                self._pump(wait_s=0.1)

    def drain(self) -> int:
        """Annotate everything pending, dispatching from the calling thread (sync mode)."""
        done_before = self.counts["annotated"]
        with self._pump_lock:
            while self._waiting or self._in_flight or self._has_queued():
                self._pump(wait_s=0.05)
        return int(self.counts["annotated"] - done_before)

    def _has_queued(self) -> bool:
        return len(self.pending) > 0

    # ------------------------------------------------------------------ dispatching

    def _next_job(self, now: float) -> _Job | None:
        if self._waiting and self._waiting[0].not_before <= now:
            return self._waiting.popleft()
        batch = self.pending.take(self.config.batch_size, timeout=0)
        return _Job(batch) if batch else None

    def _submit(self, job: _Job) -> None:
        index = self.pool.least_loaded()
        job.actor, job.generation = index, self.pool.generation[index]
        job.ids = [record.transition_id for record in job.records]
        ref = self.pool.submit(index, job.ids, [record.request for record in job.records])
        self._in_flight[ref] = job

    def _pump(self, wait_s: float) -> None:
        """Fill the actors' free slots, then handle whatever results arrive within `wait_s`."""
        now = time.monotonic()
        while len(self._in_flight) < self.pool.capacity:
            job = self._next_job(now)
            if job is None:
                break
            self._submit(job)
        if not self._in_flight:
            if self._waiting:
                time.sleep(min(wait_s, max(0.0, self._waiting[0].not_before - now)))
            else:
                batch = self.pending.take(self.config.batch_size, timeout=wait_s)
                if batch:
                    self._submit(_Job(batch))
            return
        ready, _ = self.pool.ray.wait(list(self._in_flight), num_returns=1, timeout=wait_s)
        for ref in ready:
            self._finish(ref, self._in_flight.pop(ref))

    def _finish(self, ref: Any, job: _Job) -> None:
        ray = self.pool.ray
        try:
            result: AnnotationResult = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            self.pool.settle(job.actor, None)
            with self._lock:
                self.counts["requeued"] += len(job.records)
                self.last_error = f"annotator actor lost: {type(error).__name__}"
            if self.pool.replace(job.actor, job.generation, f"{type(error).__name__}: {error}"):
                self._waiting.appendleft(job)
                return
            self._fail(job, "annotator actors lost more often than train.ray.max_actor_restarts", final=True)
            return
        self.pool.settle(job.actor, result)
        if result.ids != job.ids:
            self._fail(job, f"actor answered ids {result.ids[:3]}... for batch {job.ids[:3]}...")
        elif result.error is not None or result.terms is None:
            self._fail(job, result.error or "no terms")
        else:
            self._write(job.records, result.terms, fell_back=False)

    def _fail(self, job: _Job, message: str, final: bool = False) -> None:
        job.failures += 1
        with self._lock:
            self.counts["failures"] += 1
            self.last_error = message
        attempts = self.config.max_retries + 1
        log.warning(
            "reward batch of %d failed (try %d/%d): %s", len(job.records), job.failures, attempts, message
        )
        if not final and job.failures < attempts:
            with self._lock:
                self.counts["retries"] += 1
            job.not_before = time.monotonic() + backoff_delay(self.config.backoff_s, job.failures - 1)
            self._waiting.append(job)
            return
        self._write(job.records, [self._fallback(record) for record in job.records], fell_back=True)

    def stats(self) -> dict[str, float]:
        out = super().stats()
        with self._lock:
            out["requeued"] = float(self.counts.get("requeued", 0))
        return out

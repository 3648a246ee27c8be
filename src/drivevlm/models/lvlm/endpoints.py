"""One LVLM behind several OpenAI-compatible servers (e.g. vLLM replicas): load balancing and health.

Annotation throughput grows with the number of servers: every `generate` goes to the healthy endpoint with
the fewest requests outstanding (or the next one in turn), so N servers serve N times the concurrent
requests of one. An endpoint that fails `mark_down_after` times in a row (connection refused, time-out,
HTTP 429/5xx) is marked down and skipped; after `probe_after_s` one request probes it again, and a success
brings it back. A request that fails on one endpoint is moved to another, so a dying server costs
retries, not annotations. Answers that are the request's fault (HTTP 4xx, malformed body) are not retried
elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from drivevlm.models.lvlm.openai_server import TRANSIENT_KINDS, LVLMRequestError, OpenAIChatVLM
from drivevlm.retry import backoff_delay

log = logging.getLogger(__name__)

Strategy = Literal["least_outstanding", "round_robin"]


@dataclass
class Endpoint:
    client: OpenAIChatVLM
    outstanding: int = 0
    calls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    down_since: float | None = None
    probing: bool = False
    latencies: list[float] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.client.base_url


def _split_urls(base_urls: Sequence[str] | str) -> list[str]:
    urls = [u.strip() for u in base_urls.split(",")] if isinstance(base_urls, str) else list(base_urls)
    urls = [u for u in urls if u]
    if not urls:
        raise ValueError("base_urls: at least one OpenAI-compatible base URL is needed")
    if len(set(urls)) != len(urls):
        raise ValueError(f"base_urls: duplicates in {urls}")
    return urls


class EndpointPoolVLM:
    """`VisionLanguageModel` over several OpenAI-compatible servers serving the same model.

    `base_url` accepts a comma-separated list, so the pool takes the same keywords as `OpenAIChatVLM`
    (`models.lvlm` options); `retries` is the number of further endpoints a request may move to.
    """

    def __init__(
        self,
        base_url: Sequence[str] | str = "http://127.0.0.1:8000/v1",
        model: str = "Qwen/Qwen3-VL-2B-Instruct",
        timeout_s: float = 30.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        concurrency: int = 8,
        max_tokens: int = 64,
        temperature: float = 0.0,
        api_key: str | None = None,
        strategy: Strategy = "least_outstanding",
        mark_down_after: int = 2,
        probe_after_s: float = 5.0,
    ) -> None:
        if strategy not in ("least_outstanding", "round_robin"):
            raise ValueError(f"strategy: unknown value {strategy!r}; allowed: least_outstanding, round_robin")
        if mark_down_after < 1:
            raise ValueError(f"mark_down_after: must be >= 1, got {mark_down_after}")
        if probe_after_s < 0:
            raise ValueError(f"probe_after_s: must be >= 0, got {probe_after_s}")
        if retries < 0:
            raise ValueError(f"retries: must be >= 0, got {retries}")
        self.name = model
        self.strategy = strategy
        self.retries = retries
        self.backoff_s = backoff_s
        self.mark_down_after = mark_down_after
        self.probe_after_s = probe_after_s
        self.endpoints = [
            Endpoint(
                OpenAIChatVLM(
                    url,
                    model=model,
                    timeout_s=timeout_s,
                    retries=0,
                    backoff_s=backoff_s,
                    concurrency=concurrency,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    api_key=api_key,
                )
            )
            for url in _split_urls(base_url)
        ]
        self._lock = threading.Lock()
        self._turn = 0

    # ------------------------------------------------------------------ choosing an endpoint

    def _available(self, endpoint: Endpoint, now: float) -> bool:
        if endpoint.down_since is None:
            return True
        # Down: one probing request at a time once the probe delay has passed.
        return not endpoint.probing and now - endpoint.down_since >= self.probe_after_s

    def _acquire(self, exclude: set[int]) -> int | None:
        with self._lock:
            now = time.monotonic()
            n = len(self.endpoints)
            order = [(self._turn + k) % n for k in range(n)]
            candidates = [i for i in order if i not in exclude and self._available(self.endpoints[i], now)]
            if not candidates:
                return None
            # A down endpoint whose probe delay has passed gets the next request: if it fails, the
            # request moves on to a healthy one, so a probe costs latency, never an annotation.
            probes = [i for i in candidates if self.endpoints[i].down_since is not None]
            if probes:
                index = probes[0]
            elif self.strategy == "least_outstanding":
                index = min(candidates, key=lambda i: self.endpoints[i].outstanding)
            else:
                index = candidates[0]
            self._turn = (index + 1) % n
            endpoint = self.endpoints[index]
            if endpoint.down_since is not None:
                endpoint.probing = True
            endpoint.outstanding += 1
            endpoint.calls += 1
            return index

    def _release(self, index: int, ok: bool, latency_s: float) -> None:
        with self._lock:
            endpoint = self.endpoints[index]
            endpoint.outstanding -= 1
            endpoint.probing = False
            if ok:
                if endpoint.down_since is not None:
                    log.info("LVLM endpoint %s is back up", endpoint.base_url)
                endpoint.consecutive_failures = 0
                endpoint.down_since = None
                endpoint.latencies.append(latency_s)
                del endpoint.latencies[:-256]
                return
            endpoint.failures += 1
            endpoint.consecutive_failures += 1
            if endpoint.down_since is not None or endpoint.consecutive_failures >= self.mark_down_after:
                if endpoint.down_since is None:
                    log.warning("LVLM endpoint %s marked down", endpoint.base_url)
                endpoint.down_since = time.monotonic()

    # ------------------------------------------------------------------ VisionLanguageModel

    def generate(self, frames: Sequence[np.ndarray], prompt: str) -> str:
        tried: set[int] = set()
        last: LVLMRequestError | None = None
        for attempt in range(self.retries + 1):
            index = self._acquire(tried)
            if index is None and tried:
                # Every endpoint was tried once for this request: start over after a pause.
                time.sleep(backoff_delay(self.backoff_s, attempt))
                tried.clear()
                index = self._acquire(tried)
            if index is None:
                break
            started = time.monotonic()
            try:
                text = self.endpoints[index].client.generate(frames, prompt)
            except LVLMRequestError as error:
                if error.kind not in TRANSIENT_KINDS:
                    self._release(index, True, time.monotonic() - started)
                    raise
                self._release(index, False, time.monotonic() - started)
                tried.add(index)
                last = error
                continue
            self._release(index, True, time.monotonic() - started)
            return text
        if last is not None:
            raise LVLMRequestError(last.kind, f"every endpoint failed; last: {last.detail}", last.status)
        down = ", ".join(e.base_url for e in self.endpoints)
        raise LVLMRequestError("connection", f"all LVLM endpoints are marked down ({down})")

    def counters(self) -> dict[str, float]:
        """Per-endpoint calls, failures, health and mean latency, for the training logs."""
        out: dict[str, float] = {}
        with self._lock:
            for i, endpoint in enumerate(self.endpoints):
                out[f"endpoint{i}/calls"] = float(endpoint.calls)
                out[f"endpoint{i}/failures"] = float(endpoint.failures)
                out[f"endpoint{i}/up"] = float(endpoint.down_since is None)
                if endpoint.latencies:
                    out[f"endpoint{i}/latency_s"] = float(np.mean(endpoint.latencies))
            out["endpoints_up"] = float(sum(e.down_since is None for e in self.endpoints))
        return out

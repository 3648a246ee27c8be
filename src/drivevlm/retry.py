"""Retries with exponential back-off, the one way the project retries: reward batches, LVLM requests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def backoff_delay(base_s: float, retry: int) -> float:
    """Seconds to wait before retry number `retry` (0 for the first): base_s · 2^retry."""
    return base_s * 2**retry


def call_with_retries(
    call: Callable[[], T],
    retries: int,
    backoff_s: float,
    retryable: Callable[[Exception], bool] = lambda _error: True,
    on_failure: Callable[[Exception, int, bool], None] = lambda _error, _attempt, _again: None,
    wait: Callable[[float], object] | None = None,
) -> T:
    """`call()`, tried again up to `retries` times while it raises a retryable error.

    After each failure `on_failure(error, attempt, will_retry)` runs (attempt counts from 1), then `wait`
    gets the back-off delay (default `time.sleep`; pass a stop event's `wait` to cut it short). The last
    error is re-raised.
    """
    if retries < 0:
        raise ValueError(f"retries: must be >= 0, got {retries}")
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as error:
            again = attempt <= retries and retryable(error)
            on_failure(error, attempt, again)
            if not again:
                raise
            (wait or time.sleep)(backoff_delay(backoff_s, attempt - 1))

"""The one retry helper: how many tries, which errors, which delays."""

from __future__ import annotations

import pytest

from drivevlm.retry import backoff_delay, call_with_retries


def test_retries_transient_errors_with_doubling_delays_then_succeeds() -> None:
    outcomes: list[object] = [OSError("down"), OSError("still down"), "ok"]
    seen: list[tuple[str, int, bool]] = []
    waits: list[float] = []

    def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    result = call_with_retries(
        call, 3, 0.5, on_failure=lambda e, n, again: seen.append((str(e), n, again)), wait=waits.append
    )
    assert result == "ok"
    assert seen == [("down", 1, True), ("still down", 2, True)]
    assert waits == [0.5, 1.0] == [backoff_delay(0.5, 0), backoff_delay(0.5, 1)]


def test_gives_up_after_the_retries_or_at_once_on_an_error_not_retryable() -> None:
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise ValueError("bad request")

    with pytest.raises(ValueError, match="bad request"):
        call_with_retries(failing, 2, 0.0, wait=lambda _s: None)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(ValueError):
        call_with_retries(failing, 5, 0.0, retryable=lambda e: not isinstance(e, ValueError))
    assert len(calls) == 1
    with pytest.raises(ValueError, match="retries: must be >= 0"):
        call_with_retries(lambda: None, -1, 0.0)

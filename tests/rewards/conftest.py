"""Reward tests reuse the 127.0.0.1 chat-completions server of tests/models/chat_server.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_MODELS_TESTS = str(Path(__file__).resolve().parents[1] / "models")
if _MODELS_TESTS not in sys.path:
    sys.path.insert(0, _MODELS_TESTS)


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default result cache lives under ~/.cache; tests must not write to the real home."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

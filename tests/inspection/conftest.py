"""Inspection tests reuse the 127.0.0.1 chat server of tests/models and run with a private HOME."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

for _folder in ("models", "inspection"):
    _path = str(Path(__file__).resolve().parents[1] / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default result cache lives under ~/.cache; tests must not write to the real home."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

"""Fixtures for the deploy tests."""

from __future__ import annotations

import pytest
from deploy_helpers import TinyDictEnv


@pytest.fixture(scope="module")
def tiny_env() -> TinyDictEnv:
    return TinyDictEnv()

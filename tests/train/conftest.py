"""Shared pieces for the training tests: the toy env, travelling by value into subprocesses."""

from __future__ import annotations

import sys
from pathlib import Path

import cloudpickle

sys.path.insert(0, str(Path(__file__).parent))

import toy_env

cloudpickle.register_pickle_by_value(toy_env)

"""The toy env travels by value into simulator subprocesses (they cannot import the tests folder)."""

from __future__ import annotations

import cloudpickle

from support import toy_env

cloudpickle.register_pickle_by_value(toy_env)

"""drivevlm: driving policies from RL with vision-language models as reward teachers (DriveVLM-RL)."""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

ENV_ID = "drivevlm/Town-v0"


def _register(gym: ModuleType) -> None:
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="drivevlm.env:DriveEnv")


class _RegisterWithGymnasium:
    """`import drivevlm` registers the env, as gymnasium packages do, but without importing gymnasium: the
    deployment runtime (numpy and onnxruntime only) imports this package too. This import hook registers
    the env the moment gymnasium itself is first imported."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                load(module)
                _register(module)

            spec.loader.exec_module = exec_module
        return spec


if "gymnasium" in sys.modules:
    _register(sys.modules["gymnasium"])
else:
    sys.meta_path.insert(0, _RegisterWithGymnasium())

"""Reward presets by name: a new baseline is one builder function plus `@register_preset("name")`.

A builder takes the validated `RewardConfig` and a `ModelSource` (which creates the models it asks for,
lazily) and returns a `RewardFunction`. Oracle presets carry "oracle" in their name so they are never
mistaken for a model-based reward.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivevlm.rewards.base import ModelSource, RewardFunction

# The first argument is the validated `rewards.config.RewardConfig`; it is not named here because the
# config imports this registry to check preset names.
PresetBuilder = Callable[[Any, "ModelSource"], "RewardFunction"]

_PRESETS: dict[str, PresetBuilder] = {}
# Modules whose import registers the built-in presets.
_BUILTIN_MODULES = ("drivevlm.rewards.semantic", "drivevlm.rewards.baselines", "drivevlm.rewards.oracle")


def register_preset(name: str) -> Callable[[PresetBuilder], PresetBuilder]:
    def decorate(builder: PresetBuilder) -> PresetBuilder:
        if name in _PRESETS and _PRESETS[name] is not builder:
            raise ValueError(f"reward preset {name!r} is registered twice")
        _PRESETS[name] = builder
        return builder

    return decorate


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def preset_names() -> list[str]:
    _load_builtins()
    return sorted(_PRESETS)


def get_preset(name: str) -> PresetBuilder:
    _load_builtins()
    if name not in _PRESETS:
        raise ValueError(f"reward.preset: unknown value {name!r}; available: {', '.join(sorted(_PRESETS))}")
    return _PRESETS[name]

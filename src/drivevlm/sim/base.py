"""The simulator backend protocol and its registry.

A backend turns a scenario into a `WorldState` and advances it by one control period per `step`.
Backends know nothing of rewards, models or observations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from drivevlm.sim.world import Control, WorldState

CONTROL_HZ = 15.0


class SimulatorError(RuntimeError):
    """The simulator broke (a crashed process, a lost server). The env can be reset afterwards."""


@dataclass(frozen=True)
class EpisodeSpec:
    """What a backend needs to start an episode."""

    town: str
    scenario: str = "random"
    density: str = "regular"
    # Index into the town's fixed evaluation routes; None draws a random training route.
    route_index: int | None = None
    # Extra scenario knobs (a backend ignores what it does not know).
    dt: float = 1.0 / CONTROL_HZ


@runtime_checkable
class SimulatorBackend(Protocol):
    def reset(self, spec: EpisodeSpec, seed: int) -> WorldState: ...

    def step(self, control: Control) -> WorldState: ...

    def close(self) -> None: ...


@runtime_checkable
class CameraBackend(Protocol):
    """A backend with its own cameras (CARLA): photographic frames for the reward models."""

    def camera_frames(self) -> dict[str, np.ndarray]:
        """{"front": (H, W, 3) uint8 RGB, "bev_rgb": (H, W, 3) uint8 RGB} of the last step."""
        ...


BackendFactory = Callable[..., SimulatorBackend]
_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    def decorate(factory: BackendFactory) -> BackendFactory:
        _BACKENDS[name] = factory
        return factory

    return decorate


def make_backend(name: str, **kwargs: object) -> SimulatorBackend:
    """Build a backend by name; importing its module lazily keeps optional extras optional."""
    import importlib

    modules = {"sumo": "drivevlm.sim.sumo", "carla": "drivevlm.sim.carla"}
    if name not in _BACKENDS and name in modules:
        importlib.import_module(modules[name])
    if name not in _BACKENDS:
        raise ValueError(f"simulator: unknown value {name!r}; allowed: {', '.join(sorted(modules))}")
    return _BACKENDS[name](**kwargs)

"""Run an exported driving policy with numpy and onnxruntime only: no torch, no VLMs, no simulator.

`load_policy("policy.onnx")` reads the policy and the observation spec written beside it
(`policy.onnx.spec.json`) and returns a `Policy` whose `act(obs)` checks the observation against the spec
before every decision, so a policy trained on other masks, image sizes or waypoint counts fails loudly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPEC_FORMAT_VERSION = 1
SPEC_SUFFIX = ".spec.json"


class ObservationSpecError(ValueError):
    """An observation (or an environment's observation space) does not match the policy's spec."""


def spec_path_for(policy_path: str | Path) -> Path:
    """Where the observation spec of a policy file lives: `policy.onnx` -> `policy.onnx.spec.json`."""
    path = Path(policy_path)
    return path.with_name(path.name + SPEC_SUFFIX)


@dataclass(frozen=True)
class InputSpec:
    key: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class ObservationSpec:
    """What the policy expects: one entry per observation key, plus what the channels and values mean."""

    inputs: tuple[InputSpec, ...]
    action_shape: tuple[int, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    mask_channels: tuple[str, ...] = ()
    waypoint_count: int | None = None
    # How the env scaled the state vector (EnvConfig.state_units); None in specs written before it existed.
    state_units: str | None = None
    policy_format: str = "onnx"
    algorithm: str = ""
    format_version: int = SPEC_FORMAT_VERSION

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(i.key for i in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "policy_format": self.policy_format,
            "algorithm": self.algorithm,
            "inputs": [{"key": i.key, "shape": list(i.shape), "dtype": i.dtype} for i in self.inputs],
            "action": {
                "shape": list(self.action_shape),
                "low": list(self.action_low),
                "high": list(self.action_high),
                "names": ["steer", "throttle"] if self.action_shape == (2,) else [],
            },
            "mask_channels": list(self.mask_channels),
            "waypoint_count": self.waypoint_count,
            "state_units": self.state_units,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "spec") -> ObservationSpec:
        version = data.get("format_version")
        if version != SPEC_FORMAT_VERSION:
            raise ObservationSpecError(
                f"{source}: format_version {version!r} is not supported "
                f"(this runtime reads {SPEC_FORMAT_VERSION})"
            )
        try:
            inputs = tuple(
                InputSpec(str(i["key"]), tuple(int(d) for d in i["shape"]), str(i["dtype"]))
                for i in data["inputs"]
            )
            action = data["action"]
            return cls(
                inputs=inputs,
                action_shape=tuple(int(d) for d in action["shape"]),
                action_low=tuple(float(v) for v in action["low"]),
                action_high=tuple(float(v) for v in action["high"]),
                mask_channels=tuple(str(c) for c in data.get("mask_channels", [])),
                waypoint_count=data.get("waypoint_count"),
                state_units=data.get("state_units"),
                policy_format=str(data.get("policy_format", "onnx")),
                algorithm=str(data.get("algorithm", "")),
            )
        except (KeyError, TypeError) as err:
            raise ObservationSpecError(f"{source}: malformed observation spec ({err!r})") from err

    @classmethod
    def load(cls, path: str | Path) -> ObservationSpec:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"observation spec not found: {path} (export writes it beside the policy file)"
            )
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), source=str(path))

    def check_observation(self, obs: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], bool]:
        """Validate `obs` and return it as arrays with a batch axis, and whether it came batched."""
        if not isinstance(obs, Mapping):
            raise ObservationSpecError(
                f"observation: expected a dict with keys {list(self.keys)}, got {type(obs).__name__}"
            )
        missing = [k for k in self.keys if k not in obs]
        if missing:
            raise ObservationSpecError(
                f"observation: missing keys {missing}; the policy expects {list(self.keys)}"
            )
        arrays: dict[str, np.ndarray] = {}
        batched: bool | None = None
        for spec in self.inputs:
            value = np.asarray(obs[spec.key])
            if value.shape == spec.shape:
                is_batch = False
                value = value[None]
            elif value.ndim == len(spec.shape) + 1 and value.shape[1:] == spec.shape:
                is_batch = True
            else:
                raise ObservationSpecError(
                    f"observation[{spec.key!r}]: expected shape {spec.shape} "
                    f"(or (N, *{spec.shape})), got {value.shape}"
                )
            if batched is not None and is_batch != batched:
                raise ObservationSpecError(
                    f"observation[{spec.key!r}]: mixes batched and single observations"
                )
            batched = is_batch
            arrays[spec.key] = _cast(spec, value)
        n = {len(a) for a in arrays.values()}
        if len(n) > 1:
            raise ObservationSpecError(f"observation: batch sizes differ between keys: {sorted(n)}")
        return arrays, bool(batched)

    def check_space(self, observation_space: Any) -> None:
        """Check a gymnasium Dict space (duck-typed: `.spaces` of Boxes) against the spec."""
        spaces = getattr(observation_space, "spaces", None)
        if not isinstance(spaces, Mapping):
            raise ObservationSpecError(
                f"observation space: expected a Dict space, got {type(observation_space).__name__}"
            )
        missing = [k for k in self.keys if k not in spaces]
        if missing:
            raise ObservationSpecError(
                f"observation space: missing keys {missing}; the policy expects {list(self.keys)}"
            )
        for spec in self.inputs:
            space = spaces[spec.key]
            shape = tuple(space.shape)
            if shape != spec.shape:
                raise ObservationSpecError(
                    f"observation space[{spec.key!r}]: the policy expects shape {spec.shape}, "
                    f"the environment gives {shape}"
                )
            if np.dtype(space.dtype) != np.dtype(spec.dtype):
                raise ObservationSpecError(
                    f"observation space[{spec.key!r}]: the policy expects dtype {spec.dtype}, "
                    f"the environment gives {space.dtype}"
                )

    def check_environment(
        self, mask_channels: list[str] | tuple[str, ...], waypoint_count: int, state_units: str | None = None
    ) -> None:
        """Check what shapes cannot show: the meaning and order of the BEV channels, the waypoint count,
        the units of the state vector."""
        if None not in (self.state_units, state_units) and state_units != self.state_units:
            raise ObservationSpecError(
                f"state_units: the policy was trained on a {self.state_units} state vector, "
                f"the environment gives a {state_units} one"
            )
        if self.mask_channels and tuple(mask_channels) != self.mask_channels:
            raise ObservationSpecError(
                f"mask_channels: the policy was trained on {list(self.mask_channels)}, "
                f"the environment renders {list(mask_channels)}"
            )
        if self.waypoint_count is not None and waypoint_count != self.waypoint_count:
            raise ObservationSpecError(
                f"waypoint_count: the policy was trained with {self.waypoint_count} waypoints, "
                f"the environment gives {waypoint_count}"
            )


def _cast(spec: InputSpec, value: np.ndarray) -> np.ndarray:
    want = np.dtype(spec.dtype)
    if value.dtype == want:
        return np.ascontiguousarray(value)
    if np.issubdtype(want, np.floating) and (
        np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
    ):
        return np.ascontiguousarray(value, dtype=want)
    # Integer inputs (uint8 masks) are scaled inside the policy; a float image here would be silently wrong.
    raise ObservationSpecError(f"observation[{spec.key!r}]: expected dtype {spec.dtype}, got {value.dtype}")


class Policy:
    """A deterministic driving policy: `act(obs)` -> action in the action space, [steer, throttle]."""

    def __init__(self, session: Any, spec: ObservationSpec, path: Path) -> None:
        self._session = session
        self.spec = spec
        self.path = path
        names = [i.name for i in session.get_inputs()]
        if sorted(names) != sorted(spec.keys):
            raise ObservationSpecError(
                f"{path}: the model's inputs {names} do not match the spec's keys {list(spec.keys)}"
            )
        self._output = session.get_outputs()[0].name

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        """One action for one observation ((2,)), or one per row for a batch ((N, 2))."""
        arrays, batched = self.spec.check_observation(obs)
        (actions,) = self._session.run([self._output], arrays)
        actions = np.asarray(actions, dtype=np.float32)
        return actions if batched else actions[0]

    __call__ = act


def load_policy(path: str | Path, threads: int = 1) -> Policy:
    """Load an exported ONNX policy and its spec; `threads` bounds onnxruntime's intra-op threads."""
    import onnxruntime

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file not found: {path}")
    spec = ObservationSpec.load(spec_path_for(path))
    if spec.policy_format != "onnx" or path.suffix != ".onnx":
        raise ValueError(
            f"{path}: this runtime runs ONNX policies (spec says {spec.policy_format!r}); "
            "load TorchScript files with drivevlm.deploy.export.load_torchscript_policy (needs torch)"
        )
    if threads < 1:
        raise ValueError(f"threads: must be >= 1, got {threads}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return Policy(session, spec, path)

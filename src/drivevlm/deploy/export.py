"""Export a trained SB3 SAC or PPO policy (MultiInputPolicy, dict observations) for VLM-free driving.

Only the deterministic actor is exported: observation dict -> the action `model.predict(obs,
deterministic=True)` would return (SAC: tanh of the mean rescaled to the action bounds; PPO: the mean
clipped to them). Observation preprocessing (uint8 masks / 255) is inside the graph, so the runtime
feeds raw env observations. The observation spec JSON beside the file lets the runtime refuse
observations the policy was not trained on.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from drivevlm.atomic import atomic_output, write_atomic
from drivevlm.deploy.runtime import (
    SPEC_FORMAT_VERSION,
    InputSpec,
    ObservationSpec,
    Policy,
    spec_path_for,
)

FORMATS = ("onnx", "torchscript")
_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_OPSET = 17


class DeterministicActor(nn.Module):
    """The actor of an SB3 policy as a plain module: one tensor per observation key -> action."""

    def __init__(self, model: Any, keys: Sequence[str]) -> None:
        super().__init__()
        from gymnasium import spaces
        from stable_baselines3.common.policies import ActorCriticPolicy
        from stable_baselines3.sac.policies import SACPolicy

        policy = model.policy if hasattr(model, "policy") else model
        space = policy.action_space
        if not isinstance(space, spaces.Box):
            raise TypeError(
                f"action space: export supports continuous Box actions, got {type(space).__name__}"
            )
        if isinstance(policy, SACPolicy):
            self.kind = "sac"
            self.net: nn.Module = policy.actor
            squash = True
        elif isinstance(policy, ActorCriticPolicy):
            self.kind = "ppo"
            self.net = policy
            squash = bool(policy.squash_output)
        else:
            raise TypeError(f"model: export supports SB3 SAC and PPO policies, got {type(policy).__name__}")
        self.policy = policy
        self.keys = list(keys)
        self.squash = squash
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))

    def _mean(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.kind == "sac":
            mean, _, _ = self.policy.actor.get_action_dist_params(obs)
            return mean
        policy = self.policy
        features = policy.extract_features(obs)
        pi_features = features if policy.share_features_extractor else features[0]
        return policy.action_net(policy.mlp_extractor.forward_actor(pi_features))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        mean = self._mean(dict(zip(self.keys, inputs, strict=True)))
        if self.squash:
            return self.low + 0.5 * (torch.tanh(mean) + 1.0) * (self.high - self.low)
        return torch.maximum(torch.minimum(mean, self.high), self.low)


def observation_spec(
    observation_space: Any,
    action_space: Any,
    policy_format: str,
    algorithm: str,
    mask_channels: Sequence[str] | None = None,
    waypoint_count: int | None = None,
    bev_key: str = "bev",
    state_units: str | None = None,
) -> ObservationSpec:
    spaces = getattr(observation_space, "spaces", None)
    if not isinstance(spaces, dict) or not spaces:
        raise TypeError(
            f"observation_space: expected a non-empty gymnasium Dict space, got {observation_space!r}"
        )
    inputs = tuple(
        InputSpec(key, tuple(int(d) for d in s.shape), np.dtype(s.dtype).name) for key, s in spaces.items()
    )
    if mask_channels is not None:
        if bev_key not in spaces:
            raise ValueError(f"mask_channels: given, but the observation space has no {bev_key!r} key")
        channels = spaces[bev_key].shape[0]
        if len(mask_channels) != channels:
            raise ValueError(
                f"mask_channels: {len(mask_channels)} names for {channels} channels "
                f"of observation {bev_key!r}"
            )
    return ObservationSpec(
        inputs=inputs,
        action_shape=tuple(int(d) for d in action_space.shape),
        action_low=tuple(float(v) for v in np.asarray(action_space.low).reshape(-1)),
        action_high=tuple(float(v) for v in np.asarray(action_space.high).reshape(-1)),
        mask_channels=tuple(mask_channels or ()),
        waypoint_count=waypoint_count,
        state_units=state_units,
        policy_format=policy_format,
        algorithm=algorithm,
        format_version=SPEC_FORMAT_VERSION,
    )


def export_policy(
    model: Any,
    observation_space: Any,
    path: str | Path,
    format: str = "onnx",
    mask_channels: Sequence[str] | None = None,
    waypoint_count: int | None = None,
    state_units: str | None = None,
) -> Path:
    """Write the deterministic actor to `path` and its observation spec to `<file name>.spec.json`.

    `mask_channels` (the BEV channel names, in order), `waypoint_count` and `state_units` are recorded
    so that a policy is never driven with masks, a route encoding or a state scale it was not trained on.
    """
    if format not in FORMATS:
        raise ValueError(f"format: unknown value {format!r}; allowed: {', '.join(FORMATS)}")
    path = Path(path)
    if path.suffix != _SUFFIX[format]:
        raise ValueError(f"path: a {format} policy file must end in {_SUFFIX[format]!r}, got {path.name!r}")
    policy = model.policy if hasattr(model, "policy") else model
    actor = DeterministicActor(model, list(observation_space.spaces)).eval()
    spec = observation_spec(
        observation_space,
        policy.action_space,
        format,
        actor.kind.upper(),
        mask_channels,
        waypoint_count,
        state_units=state_units,
    )
    examples = tuple(
        torch.as_tensor(np.zeros((1, *i.shape), dtype=np.dtype(i.dtype)), device=policy.device)
        for i in spec.inputs
    )
    was_training = policy.training
    policy.set_training_mode(False)
    try:
        # torch 2.9+ deprecates both TorchScript tracing and the TorchScript-based ONNX exporter (still
        # present in 2.13); the dynamo exporter would add onnxscript to the deploy extra.
        with torch.no_grad(), warnings.catch_warnings(), atomic_output(path) as tmp:
            warnings.simplefilter("ignore", DeprecationWarning)
            if format == "onnx":
                _export_onnx(actor, examples, spec.keys, tmp)
            else:
                traced = torch.jit.trace(actor, examples, check_trace=False)
                traced.save(str(tmp))
    finally:
        policy.set_training_mode(was_training)
    write_atomic(spec_path_for(path), json.dumps(spec.to_dict(), indent=2) + "\n")
    return path


def _export_onnx(
    actor: nn.Module, examples: tuple[torch.Tensor, ...], keys: Sequence[str], target: Path
) -> None:
    axes = {key: {0: "batch"} for key in keys} | {"action": {0: "batch"}}
    torch.onnx.export(
        actor,
        examples,
        str(target),
        input_names=list(keys),
        output_names=["action"],
        dynamic_axes=axes,
        opset_version=ONNX_OPSET,
        dynamo=False,
        external_data=False,
    )


class _TorchScriptSession:
    """Adapts a TorchScript module to the small part of onnxruntime's session API `Policy` uses."""

    class _Arg:
        def __init__(self, name: str) -> None:
            self.name = name

    def __init__(self, module: torch.jit.ScriptModule, keys: Sequence[str]) -> None:
        self._module = module
        self._keys = list(keys)

    def get_inputs(self) -> list[_TorchScriptSession._Arg]:
        return [self._Arg(k) for k in self._keys]

    def get_outputs(self) -> list[_TorchScriptSession._Arg]:
        return [self._Arg("action")]

    def run(self, _outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            out = self._module(*(torch.from_numpy(feeds[k]) for k in self._keys))
        return [out.numpy()]


def load_torchscript_policy(path: str | Path) -> Policy:
    """A TorchScript policy behind the same `Policy.act` and spec checks as the ONNX runtime (needs torch)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file not found: {path}")
    spec = ObservationSpec.load(spec_path_for(path))
    if spec.policy_format != "torchscript":
        raise ValueError(
            f"{path}: spec says format {spec.policy_format!r}; use drivevlm.deploy.runtime.load_policy"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu").eval()
    return Policy(_TorchScriptSession(module, spec.keys), spec, path)

"""Reading a training run folder (config.yaml, checkpoints/) and turning it, or an exported policy file,
into something that drives: `load_driver(run_dir, policy_file)` -> `Driver`.

Only the policy network is restored from a checkpoint (not the replay buffer nor the optimisers), so
evaluating a run costs the size of the network, not of the 100k-transition buffer SB3's `.load` builds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from drivevlm.config import ConfigError, EnvConfig, apply_overrides, build

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
# The best validated policy (train/validation.py): an SB3 model.zip, named by the record that chose it.
BEST_DIR = "best"
BEST_RECORD = "best.json"


class RunError(ConfigError):
    """A run folder or policy file that cannot be evaluated; the message names the path and the problem."""


def policy_env_path(policy_file: str | Path) -> Path:
    """Beside an exported policy: the env it was trained in, so that it can be driven without its run."""
    policy_file = Path(policy_file)
    return policy_file.with_name(f"{policy_file.name}.env.yaml")


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved preset the trainer wrote to `run_dir/config.yaml`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run_dir: {run_dir} is not a folder")
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunError(f"run_dir: {run_dir} has no config.yaml (not a training run folder)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a mapping at the top level")
    return data


def env_config_from(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> EnvConfig:
    """The `env:` section of a preset, with `env.key=value` overrides applied."""
    env = dict(data.get("env") or {})
    for text in overrides:
        if not text.startswith("env."):
            raise ConfigError(f"override {text!r}: only env.* values can be changed for evaluation")
    wrapped = apply_overrides({"env": env}, list(overrides))
    return build(EnvConfig, wrapped["env"], "env")  # type: ignore[no-any-return]


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The folder of the run's latest complete checkpoint (named by checkpoints/latest.json)."""
    folder = Path(run_dir) / CHECKPOINTS
    pointer = folder / LATEST
    if not pointer.is_file():
        raise RunError(f"run_dir: {run_dir} has no checkpoint ({pointer} is missing); train it first")
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(f"{pointer}: unreadable checkpoint pointer ({err!r})") from err
    model = folder / str(name) / "model.zip"
    if not model.is_file():
        raise RunError(f"run_dir: checkpoint {name} named in {pointer} has no model.zip")
    return model.parent


def best_policy(run_dir: str | Path) -> Path | None:
    """The run's best validated policy (an SB3 model.zip), None where it has validated none."""
    record = Path(run_dir) / BEST_DIR / BEST_RECORD
    if not record.is_file():
        return None
    try:
        path = record.parent / str(json.loads(record.read_text(encoding="utf-8"))["policy"])
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(f"{record}: unreadable best-policy record ({err!r})") from err
    return path if path.is_file() else None


def run_policy_file(run_dir: str | Path, checkpoint: str = "auto") -> Path:
    """The model.zip that drives for a run: `latest` checkpoint, `best` validated policy, or `auto` (the
    best where the run validated its checkpoints, else the latest)."""
    if checkpoint not in ("auto", "best", "latest"):
        raise RunError(f"checkpoint: expected auto, best or latest, got {checkpoint!r}")
    best = best_policy(run_dir) if checkpoint != "latest" else None
    if best is not None:
        return best
    if checkpoint == "best":
        raise RunError(f"run_dir: {run_dir} has no validated policy ({Path(run_dir) / BEST_DIR} is missing)")
    return latest_checkpoint(run_dir) / "model.zip"


def load_policy_file(path: str | Path, device: str = "cpu") -> Any:
    """The SB3 policy (SAC or PPO MultiInputPolicy) saved in a model.zip, in eval mode."""
    from stable_baselines3.common.save_util import load_from_zip_file

    data, params, _ = load_from_zip_file(path, device=device)
    if data is None or "policy_class" not in data or "policy" not in params:
        raise RunError(f"{path}: not an SB3 model file (no policy class or weights)")
    kwargs = {k: v for k, v in (data.get("policy_kwargs") or {}).items() if k != "device"}
    policy = data["policy_class"](
        data["observation_space"], data["action_space"], lambda _progress: 0.0, **kwargs
    )
    policy.load_state_dict(params["policy"])
    policy.to(device)
    policy.set_training_mode(False)
    return policy


@dataclass
class Driver:
    """What drives: deterministic `act(obs) -> [steer, throttle]`, and the env config to drive it in."""

    act: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    env_config: EnvConfig
    source: str
    # The SB3 policy when loaded from a checkpoint (export needs it); None for an exported policy file.
    policy: Any = None


def sb3_act(policy: Any) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    """An SB3 policy's deterministic action for one observation."""

    def act(obs: Mapping[str, np.ndarray]) -> np.ndarray:
        action, _ = policy.predict(dict(obs), deterministic=True)
        return np.asarray(action, dtype=np.float32).reshape(-1)

    return act


def load_exported_policy(path: str | Path) -> Any:
    """An exported policy file: ONNX through the numpy+onnxruntime runtime, TorchScript (.pt) with torch."""
    path = Path(path)
    if not path.is_file():
        from drivevlm.policies import POLICIES_DIR, policy_names

        shipped = ", ".join(policy_names()) or "none yet"
        raise RunError(f"policy: file not found: {path} (shipped policies in {POLICIES_DIR}: {shipped})")
    try:
        if path.suffix == ".pt":
            from drivevlm.deploy.export import load_torchscript_policy

            return load_torchscript_policy(path)
        from drivevlm.deploy.runtime import load_policy

        return load_policy(path)
    except (FileNotFoundError, ValueError) as err:
        raise RunError(f"policy {path}: {err}") from err


def export_driver(driver: Driver, path: str | Path, format: str = "onnx") -> Path:
    """Write a run's policy as a VLM-free file with its observation spec, and the env it was trained in
    beside it (`policy_env_path`), so that the file drives without its run."""
    from drivevlm.atomic import write_atomic
    from drivevlm.deploy.export import export_policy
    from drivevlm.env import DriveEnv

    if driver.policy is None:
        raise RunError(f"export: {driver.source} is already an exported policy; export a run folder")
    env = DriveEnv(driver.env_config)
    try:
        channels = env.mask_channels
    finally:
        env.close()
    config = driver.env_config
    written = export_policy(
        driver.policy,
        driver.policy.observation_space,
        path,
        format,
        mask_channels=channels,
        waypoint_count=config.route_waypoints,
        state_units=config.state_units,
    )
    env_text = yaml.safe_dump({"env": config.model_dump(mode="json")}, sort_keys=False)
    write_atomic(policy_env_path(written), env_text)
    return written


def check_policy_matches(policy: Any, env_config: EnvConfig) -> None:
    """Refuse a policy file whose observation spec differs from what `env_config` renders."""
    from drivevlm.deploy.runtime import ObservationSpecError
    from drivevlm.env import DriveEnv

    env = DriveEnv(env_config)
    try:
        policy.spec.check_space(env.observation_space)
        policy.spec.check_environment(env.mask_channels, env_config.route_waypoints, env_config.state_units)
    except ObservationSpecError as err:
        raise RunError(f"policy {policy.path}: does not match the environment: {err}") from err
    finally:
        env.close()


def load_driver(
    run_dir: str | Path | None = None,
    policy_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    device: str = "cpu",
    checkpoint: str = "auto",
) -> Driver:
    """A run's policy (`run_policy_file`: its best validated one, else its latest checkpoint), or an
    exported policy (a file, or a shipped policy by name), driven in the run's env, else in the env
    recorded beside it, else in the default env."""
    if run_dir is None and policy_file is None:
        raise RunError("give a run folder or --policy FILE")
    if policy_file is not None:
        from drivevlm.policies import resolve_policy_file

        policy_file = resolve_policy_file(policy_file)
    if run_dir is not None:
        data = load_run_config(run_dir)
    elif policy_file is not None and policy_env_path(policy_file).is_file():
        data = yaml.safe_load(policy_env_path(policy_file).read_text(encoding="utf-8")) or {}
    else:
        data = {}
    env_config = env_config_from(data, overrides)
    if policy_file is not None:
        policy = load_exported_policy(policy_file)
        check_policy_matches(policy, env_config)
        return Driver(policy.act, env_config, str(policy_file))
    assert run_dir is not None
    path = run_policy_file(run_dir, checkpoint)
    sb3_policy = load_policy_file(path, device)
    return Driver(sb3_act(sb3_policy), env_config, str(path.parent), sb3_policy)

"""The method presets shipped inside the package (one YAML per method), so a pip install has them too.

`--config` takes a preset name (`drivevlm_rl`, `real_models/drivevlm_rl`) or the path of any YAML file.

A recipe (`recipes/<name>.yaml`) is how to train, not what to learn: `env` and `train` values for a budget
or a machine, applied over any method preset with `--set recipe=<name>` (or a `recipe:` key in a YAML
file), under the other `--set` values. The composed config records it as `applied_recipe`.

`load_preset` returns a `Preset`: the composed mapping with its four sections (`env`, `train`, `reward`,
`models`) validated once, which the CLI, the trainer, evaluation and inspection take. The section schemas
live beside what they configure (`config.EnvConfig`, `presets.training`, `rewards.config`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivevlm.config import (
    ConfigError,
    EnvConfig,
    apply_overrides,
    build,
    parse_override,
    read_yaml,
    set_path,
)
from drivevlm.models.config import ModelsConfig
from drivevlm.presets.training import TrainConfig, train_section
from drivevlm.rewards.config import RewardConfig, reward_sections

PRESETS_DIR = Path(__file__).resolve().parent
RECIPES_DIR = PRESETS_DIR / "recipes"
RECIPE_SECTIONS = ("env", "train")


def preset_names() -> list[str]:
    """Every shipped preset by name, the real-weight variants as `real_models/<name>`."""
    return sorted(
        p.relative_to(PRESETS_DIR).with_suffix("").as_posix()
        for p in PRESETS_DIR.rglob("*.yaml")
        if RECIPES_DIR not in p.parents
    )


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def read_recipe(value: str | Path) -> dict[str, Any]:
    """A shipped recipe by name or a recipe YAML file; only `env` and `train` sections are allowed."""
    path = Path(value)
    if not path.is_file():
        path = RECIPES_DIR / f"{path.as_posix().removesuffix('.yaml')}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"recipe: no such file or recipe {str(value)!r}; recipes: {', '.join(recipe_names())}"
            )
    data = read_yaml(path)
    extra = sorted(set(data) - set(RECIPE_SECTIONS))
    if extra:
        raise ConfigError(
            f"recipe {str(value)!r}: only {' and '.join(RECIPE_SECTIONS)} sections allowed, got {extra}"
        )
    return data


def _leaves(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []
    for key, value in data.items():
        path = (*prefix, str(key))
        found += _leaves(value, path) if isinstance(value, dict) and value else [(path, value)]
    return found


def compose(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A preset mapping with its recipe (its `recipe:` key, or one set by an override) applied, then the
    other overrides."""
    requested = apply_overrides(copy.deepcopy(data), list(overrides)).pop("recipe", None)
    if requested is None:
        return apply_overrides(data, list(overrides))
    composed = copy.deepcopy({key: value for key, value in data.items() if key != "recipe"})
    for path, value in _leaves(read_recipe(str(requested))):
        set_path(composed, path, value, f"recipe {requested!r}: {'.'.join(path)}")
    composed = apply_overrides(
        composed, [text for text in overrides if parse_override(text)[0] != ["recipe"]]
    )
    composed["applied_recipe"] = str(requested)
    return composed


def resolve_preset(value: str | Path) -> Path:
    """An existing YAML file as given, else the shipped preset of that name; a clear error otherwise."""
    path = Path(value)
    if path.is_file():
        return path
    name = path.as_posix().removesuffix(".yaml")
    shipped = PRESETS_DIR / f"{name}.yaml"
    if not path.is_absolute() and shipped.is_file():
        return shipped
    raise ConfigError(f"config: no such file or preset {str(value)!r}; presets: {', '.join(preset_names())}")


def preset_summary(name: str) -> str:
    """The shipped preset's first comment line: what the method is and where it comes from."""
    first = (PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[:1]
    return first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""


@dataclass(frozen=True)
class Preset:
    """A composed preset with every section validated (an invalid value is an error naming its field).

    `data` is the composed mapping itself: a run saves it as its config.yaml, a benchmark job as job.json.
    """

    data: dict[str, Any]
    env: EnvConfig
    train: TrainConfig
    reward: RewardConfig
    models: ModelsConfig

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Preset:
        mapping = dict(data)
        reward, models = reward_sections(mapping)
        return cls(mapping, env_section(mapping), train_section(mapping), reward, models)


def as_preset(config: Preset | Mapping[str, Any]) -> Preset:
    """A `Preset` as it is, a whole preset mapping validated (what notebooks and tests pass)."""
    return config if isinstance(config, Preset) else Preset.parse(config)


def load_preset(config: str | Path | None, overrides: Sequence[str] = ()) -> Preset:
    """A preset (shipped name or YAML path; None: the built-in defaults) with its recipe, if one is asked
    for, and `--set a.b=value` applied, every section validated."""
    data = read_yaml(resolve_preset(config)) if config is not None else {}
    return Preset.parse(compose(data, list(overrides)))


def env_section(data: Mapping[str, Any]) -> EnvConfig:
    """The preset's `env` section, validated."""
    env = {} if data.get("env") is None else data["env"]
    if not isinstance(env, dict):
        raise ConfigError("env: expected a mapping")
    return build(EnvConfig, env, "env")  # type: ignore[no-any-return]

"""Presets ship inside the package and resolve by name, by name with `.yaml`, or as any YAML path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivevlm.cli import app
from drivevlm.config import ConfigError
from drivevlm.eval.jobs import DEFAULT_METHODS, job_config, preset_path
from drivevlm.presets import (
    PRESETS_DIR,
    load_preset,
    preset_names,
    preset_summary,
    read_recipe,
    recipe_names,
    resolve_preset,
)
from drivevlm.presets.training import train_section


def test_every_benchmark_method_and_real_model_variant_is_shipped() -> None:
    names = preset_names()
    assert set(DEFAULT_METHODS) <= set(names)
    assert "real_models/drivevlm_rl" in names
    assert all(preset_summary(name) for name in names), "every preset starts with a comment saying what it is"


def test_names_and_paths_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_preset("vlm_rl") == PRESETS_DIR / "vlm_rl.yaml"
    assert resolve_preset("vlm_rl.yaml") == PRESETS_DIR / "vlm_rl.yaml"
    assert resolve_preset("real_models/vlm_rl") == PRESETS_DIR / "real_models" / "vlm_rl.yaml"
    own = tmp_path / "vlm_rl.yaml"
    own.write_text("reward: {preset: tirl}\n")
    monkeypatch.chdir(tmp_path)
    # A file of that name in the working directory wins over the shipped preset.
    assert resolve_preset("vlm_rl.yaml") == Path("vlm_rl.yaml")
    assert resolve_preset(own) == own
    no_penalty = preset_path("drivevlm_rl", "no_collision_penalty")
    assert no_penalty == PRESETS_DIR / "drivevlm_rl_no_collision_penalty.yaml"


def test_unknown_preset_names_the_value_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"no such file or preset 'drivevlm'.*drivevlm_rl, "):
        resolve_preset("drivevlm")
    with pytest.raises(ConfigError, match="no such file or preset"):
        resolve_preset(PRESETS_DIR / "missing.yaml")


def test_presets_command_lists_them() -> None:
    result = CliRunner().invoke(app, ["presets", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output.strip().splitlines()[-1])
    assert listed["presets"]["tirl_sac"].startswith("TIRL")
    assert set(listed["presets"]) == set(preset_names())
    assert listed["recipes"]["laptop"].startswith("Training on a 2-core laptop")
    assert isinstance(listed["policies"], list)
    text = CliRunner().invoke(app, ["presets"])
    assert "real_models/drivevlm_rl" in text.output and "recipe=NAME" in text.output


def test_a_recipe_applies_over_the_preset_and_under_the_other_overrides(tmp_path: Path) -> None:
    assert "laptop" in recipe_names() and not any(name.startswith("recipes") for name in preset_names())
    preset = load_preset("drivevlm_rl", ["train.sac.batch_size=64", "recipe=laptop"])
    assert preset.train.sac.batch_size == 64  # the --set value wins, wherever it stands
    assert preset.train.sac.gradient_steps == read_recipe("laptop")["train"]["sac"]["gradient_steps"]
    assert preset.env.state_units == "normalized" and preset.env.simulator == "sumo"
    assert preset.reward.preset == "drivevlm_rl"  # what to learn stays the preset's
    assert preset.data["applied_recipe"] == "laptop" and "recipe" not in preset.data
    assert train_section(preset.data) == preset.train
    # The same from a YAML key, and in the benchmark's job configs.
    own = tmp_path / "mine.yaml"
    own.write_text("recipe: laptop\ntrain: {algo: sac, sac: {batch_size: 32}}\n")
    assert load_preset(own).train.sac.batch_size == 128
    job = job_config("vlm_rl", seed=3, steps=500, overrides=["recipe=laptop"])
    assert job["train"]["sac"]["gradient_steps"] == 16 and job["train"]["total_timesteps"] == 500
    assert load_preset("vlm_rl") == load_preset("vlm_rl", [])  # no recipe: the preset as it is


def test_bad_recipes_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such file or recipe 'desktop'; recipes: .*laptop"):
        load_preset("vlm_rl", ["recipe=desktop"])
    greedy = tmp_path / "greedy.yaml"
    greedy.write_text("reward: {preset: tirl}\ntrain: {n_envs: 1}\n")
    with pytest.raises(ConfigError, match=r"only env and train sections allowed, got \['reward'\]"):
        load_preset("vlm_rl", [f"recipe={greedy}"])


def test_train_with_an_unknown_preset_is_one_error_line() -> None:
    result = CliRunner().invoke(app, ["train", "--config", "no_such_method"])
    assert result.exit_code == 2
    assert "no such file or preset 'no_such_method'" in result.output

"""`drivevlm presets`: the shipped method presets, by the name `--config` and `--methods` take, the
training recipes `--set recipe=NAME` takes, and the pretrained policies `--policy NAME` takes."""

from __future__ import annotations

import typer

from drivevlm.cli.common import JsonFlag, emit


def presets_command(as_json: JsonFlag = False) -> None:
    """List the shipped presets and recipes with what each one is."""
    from drivevlm.policies import POLICIES_DIR, policy_names
    from drivevlm.presets import PRESETS_DIR, RECIPES_DIR, preset_names, preset_summary, recipe_names

    presets = {name: preset_summary(name) for name in preset_names()}
    recipes = {name: preset_summary(f"recipes/{name}") for name in recipe_names()}
    policies = policy_names()
    if as_json:
        emit(
            {"folder": str(PRESETS_DIR), "presets": presets, "recipes": recipes, "policies": policies},
            as_json,
        )
        return
    width = max(map(len, [*presets, *recipes]))
    for name, summary in presets.items():
        typer.echo(f"{name:<{width}}  {summary}")
    typer.echo(f"\n(in {PRESETS_DIR}; `--config NAME` or `--config path/to/your.yaml`)\n\nRecipes:")
    for name, summary in recipes.items():
        typer.echo(f"{name:<{width}}  {summary}")
    typer.echo(f"\n(in {RECIPES_DIR}; `--set recipe=NAME` over any preset)")
    typer.echo(f"\nPretrained policies: {', '.join(policies) or 'none shipped yet'}")
    typer.echo(f"(in {POLICIES_DIR}; `drivevlm drive --policy NAME`, `drivevlm evaluate --policy NAME`)")

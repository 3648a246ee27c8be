"""`drivevlm presets`: the shipped method presets, by the name `--config` and `--methods` take."""

from __future__ import annotations

import typer

from drivevlm.cli.common import JsonFlag, emit


def presets_command(as_json: JsonFlag = False) -> None:
    """List the shipped presets with what each one is."""
    from drivevlm.presets import PRESETS_DIR, preset_names, preset_summary

    presets = {name: preset_summary(name) for name in preset_names()}
    if as_json:
        emit({"folder": str(PRESETS_DIR), "presets": presets}, as_json)
        return
    width = max(map(len, presets))
    for name, summary in presets.items():
        typer.echo(f"{name:<{width}}  {summary}")
    typer.echo(f"\n(in {PRESETS_DIR}; `--config NAME` or `--config path/to/your.yaml`)")

"""Helpers shared by the command groups: JSON output, env configs from options, PNG writing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line.")]


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Print a result as aligned lines, or (with --json) as one JSON object on the last line."""
    if as_json:
        typer.echo(json.dumps(result, default=float))
        return
    for key, value in result.items():
        typer.echo(f"{key:>28}: {value:.2f}" if isinstance(value, float) else f"{key:>28}: {value}")


def env_config(town: str, scenario: str, density: str, seed: int, **extra: Any) -> Any:
    from drivevlm.config import EnvConfig, build

    return build(
        EnvConfig, {"town": town, "scenario": scenario, "density": density, "seed": seed, **extra}, "env"
    )


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)

"""Helpers shared by the command groups: JSON output, env configs from options, PNG writing."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line.")]
F = TypeVar("F", bound=Callable[..., Any])


def clean_errors(command: F) -> F:
    """Turn the errors bad input raises (a config value, a missing file or model, a network the simulator
    cannot use) into one line on stderr and exit status 2."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from drivevlm.deploy.runtime import ObservationSpecError
        from drivevlm.models.base import ModelNotFoundError
        from drivevlm.sim.base import SimulatorError

        try:
            return command(*args, **kwargs)
        except (
            ValueError,
            FileNotFoundError,
            ModelNotFoundError,
            ObservationSpecError,
            SimulatorError,
        ) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


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

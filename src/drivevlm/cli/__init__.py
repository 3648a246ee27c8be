"""The `drivevlm` command line: one module per command group, joined here.

Each measuring command has `--json` and then prints one JSON object as its last line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from drivevlm.cli import data, evaluation, models, reward, sim, train
from drivevlm.cli.common import JsonFlag
from drivevlm.config import ConfigError
from drivevlm.models.base import ModelNotFoundError

app = typer.Typer(
    help="DriveVLM-RL: RL driving policies taught by vision-language rewards.", no_args_is_help=True
)
app.add_typer(sim.app, name="sim")
app.add_typer(reward.app, name="reward")
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
evaluation.register(app)
app.command("train")(train.train_command)


@app.command("quickstart")
def quickstart(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out/quickstart"),
    steps: int = 400,
    as_json: JsonFlag = False,
) -> None:
    """The main job on the embedded default: drive each scripted scenario and write images and metrics."""
    from drivevlm.sim.scenarios import SCENARIOS

    results = {}
    for name, scenario in SCENARIOS.items():
        town = scenario.default_town or "grid"
        config = sim.env_config(town, name, "regular", 0)
        summary = sim.run_episode_with_images(config, out / name, steps, 20, 0)
        results[name] = summary
        typer.echo(
            f"{name:>22}: {summary.get('steps', 0):4d} steps, {summary.get('distance_m', 0.0):6.1f} m, "
            f"reason={summary.get('reason')}, events={summary['triggered']}"
        )
    typer.echo(f"images and summaries in {out}")
    if as_json:
        typer.echo(json.dumps(results, default=float))


def main() -> None:
    try:
        app()
    except (ConfigError, ModelNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None

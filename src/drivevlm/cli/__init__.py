"""The `drivevlm` command line: one module per command group, joined here.

Each measuring command has `--json` and then prints one JSON object as its last line.
"""

from __future__ import annotations

import os

import typer

from drivevlm.cli import data, evaluation, models, presets, quickstart, reward, sim, train
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
app.command("quickstart")(quickstart.quickstart)
app.command("presets")(presets.presets_command)


def main() -> None:
    # One math thread per process unless the user says otherwise: envs, annotator and learner share the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        app()
    except (ConfigError, ModelNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None

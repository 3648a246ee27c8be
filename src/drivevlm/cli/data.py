"""`drivevlm data generate|merge`: drive the simulator and store the bundled models' training data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from drivevlm.cli.common import JsonFlag, emit

app = typer.Typer(
    help="Training data for the bundled models, generated from the simulator.", no_args_is_help=True
)


def fail(option: str, message: str) -> NoReturn:
    """Bad input: one `error:` line naming the option on stderr, exit code 2 (no traceback)."""
    typer.echo(f"error: {option}: {message}", err=True)
    raise typer.Exit(2)


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(part.strip() for part in text.split(",") if part.strip())


@app.command("generate")
def generate(
    out: Annotated[Path, typer.Option(help="Output folder (dataset.json, train/, heldout/).")],
    frames: Annotated[int, typer.Option(help="Frames to store in all (train and held-out towns).")],
    seed: int = 0,
    size: Annotated[int, typer.Option(help="Side of the square BEV and front frames, pixels.")] = 160,
    step_stride: Annotated[int, typer.Option(help="Keep one frame every STEP_STRIDE env steps.")] = 2,
    max_episode_steps: int = 300,
    towns: Annotated[str | None, typer.Option(help="Comma-separated towns; default: all.")] = None,
    scenarios: Annotated[str | None, typer.Option(help="Comma-separated scenarios; default: all.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Drive scripted and noisy drivers through the scenarios; store frames, boxes and descriptions.

    The training town goes to `train/`, the unseen towns (other seeds) to `heldout/`.
    """
    from drivevlm.data.generate import generate_dataset

    if (out / "dataset.json").exists():
        fail("--out", f"{out} already holds a data set (dataset.json); pick another folder")
    try:
        manifest = generate_dataset(
            out,
            frames,
            seed=seed,
            size=size,
            step_stride=step_stride,
            max_episode_steps=max_episode_steps,
            towns=_names(towns),
            scenarios=_names(scenarios),
        )
    except ValueError as error:
        fail("generate", str(error))
    emit(_summary(out, manifest), as_json)


@app.command("merge")
def merge(
    out: Annotated[Path, typer.Option(help="Output folder for the merged data set.")],
    sources: Annotated[list[Path], typer.Argument(help="Two or more data sets made by `data generate`.")],
    as_json: JsonFlag = False,
) -> None:
    """One data set from several (e.g. town frames and the highway's hazards, for one detector)."""
    from drivevlm.data.merge import merge_datasets

    try:
        manifest = merge_datasets(out, sources)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        fail("merge", str(error))
    emit(_summary(out, manifest), as_json)


def _summary(out: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "out": str(out),
        "frames": manifest["frames"],
        "train_frames": manifest["splits"]["train"]["frames"],
        "heldout_frames": manifest["splits"]["heldout"]["frames"],
        "episodes": len(manifest["episodes"]),
        "size": manifest["size"],
        "seconds": manifest["seconds"],
    }

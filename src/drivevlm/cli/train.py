"""`drivevlm train`: train a policy from a preset, or continue a killed run with `--resume RUN_DIR`.

A bad config, a missing model or a run folder in the wrong state is one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from drivevlm.cli.common import JsonFlag, emit
from drivevlm.config import ConfigError
from drivevlm.models.base import ModelNotFoundError

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="A preset name (see `drivevlm presets`) or a YAML file.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value, e.g. --set train.total_timesteps=20000."),
]
RunDirOption = Annotated[
    Path | None, typer.Option("--run-dir", help="Run folder (default: runs/<preset>-<date>-<time>).")
]
ResumeOption = Annotated[
    Path | None, typer.Option("--resume", help="Continue the run in this folder from its last checkpoint.")
]
QuietFlag = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]
ExecutorOption = Annotated[str | None, typer.Option("--executor", help="local or ray (sets train.executor).")]
AddressOption = Annotated[
    str | None, typer.Option("--address", help="Ray cluster: auto or HOST:PORT (sets train.ray.address).")
]


class ProgressBar:
    """A tqdm bar over environment steps, fed by train()'s progress hook."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def __call__(self, snapshot: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=int(snapshot["total_steps"]),
                initial=int(snapshot["steps"]),
                unit="step",
                dynamic_ncols=True,
            )
        self._bar.n = min(int(snapshot["steps"]), self._bar.total)
        eta = snapshot["eta_s"]
        self._bar.set_postfix(
            episodes=int(snapshot["episodes"]),
            collisions=f"{snapshot['collision_rate']:.0%}",
            lag=int(snapshot["annotator_steps_behind"]),
            eta=time.strftime("%H:%M:%S", time.gmtime(max(eta, 0.0))) if math.isfinite(eta) else "?",
            refresh=False,
        )
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _default_run_dir(config: Path | None) -> Path:
    name = config.stem if config is not None else "drivevlm_rl"
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def train_command(
    config: ConfigOption = None,
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    resume: ResumeOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
    executor: ExecutorOption = None,
    address: AddressOption = None,
) -> None:
    """Train a policy with the preset's reward (annotated asynchronously), logging and checkpointing."""
    import os

    from drivevlm.presets import load_preset

    overrides = [*(overrides or [])]
    overrides += [f"train.executor={executor}"] if executor is not None else []
    overrides += [f"train.ray.address={address}"] if address is not None else []
    if resume is not None and (config is not None or overrides or run_dir is not None):
        raise _fail("--resume: continues a run with its own saved config; drop --config, --set and --run-dir")
    if resume is None and config is None:
        raise _fail("--config: required (a preset name or a YAML file), or --resume RUN_DIR")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    bar = ProgressBar(enabled=not quiet and not as_json)
    try:
        from drivevlm.train.trainer import train

        if resume is not None:
            summary = train(None, resume, resume=True, progress=bar)
        else:
            preset = load_preset(config, overrides or [])
            summary = train(preset, run_dir or _default_run_dir(config), progress=bar)
    except (ConfigError, ModelNotFoundError) as error:
        raise _fail(str(error)) from None
    finally:
        bar.close()
    result = {
        "run_dir": summary["run_dir"],
        "steps": summary["steps"],
        "episodes": summary["episodes"],
        "collision_rate": summary["collision_rate"],
        "steps_per_s": summary["steps_per_s"],
        "annotator_fallbacks": summary["annotator"].get("fallbacks", 0.0),
        "checkpoint": summary["checkpoint"],
    }
    if "gate_rate" in summary:
        result["gate_rate"] = summary["gate_rate"]
    best = (summary.get("validation") or {}).get("best")
    if best is not None:
        result["best_validated"] = f"step {best['step']}, score {best['score']:.3f}"
    if as_json:
        typer.echo(json.dumps(summary, default=float))
    else:
        emit(result, False)

"""`drivevlm reward calibrate|inspect`: look at a preset's reward on simulator frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from drivevlm.cli.common import JsonFlag

app = typer.Typer(
    help="Reward presets: calibrate θ on simulator frames, inspect one episode.", no_args_is_help=True
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="A preset name or YAML file; default: built-in DriveVLM-RL."),
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config value, e.g. --set reward.alpha=0.5.")
]


def _format_distribution(name: str, values: dict[str, Any]) -> str:
    if not values.get("count"):
        return f"{name:>18}: (no samples)"
    keys = ("mean", "std", "min", "p5", "p50", "p95", "max")
    return f"{name:>18}: n={values['count']:<5d}" + "  ".join(f"{k}={values[k]:+.4f}" for k in keys)


def _print_calibration(result: dict[str, Any]) -> None:
    label = " (ORACLE: ground truth, no model)" if result["oracle"] else ""
    typer.echo(
        f"preset {result['preset']}{label}: {result['frames']} frames from {', '.join(result['scenarios'])}"
    )
    if "combined" in result:
        typer.echo(_format_distribution("R_static", result["r_static"]))
        typer.echo(_format_distribution("R_dynamic (gated)", result["r_dynamic_gated"]))
        typer.echo(_format_distribution("sum", result["combined"]))
        typer.echo(f"{'gate rate':>18}: {result['gate_rate']:.3f}")
        for scenario, rate in result.get("gate_rate_by_scenario", {}).items():
            typer.echo(f"{scenario:>18}: {rate:.3f}")
        reasons = ", ".join(f"{k}={v}" for k, v in result["lvlm_fallback_reasons"].items()) or "none"
        typer.echo(f"{'LVLM fallbacks':>18}: {result['lvlm_fallbacks']} ({reasons})")
        typer.echo(
            f"{'current θ':>18}: [{result['current_theta'][0]:+.4f}, {result['current_theta'][1]:+.4f}]"
        )
        typer.echo(
            f"{'suggested θ':>18}: [{result['suggested_theta_min']:+.4f}, "
            f"{result['suggested_theta_max']:+.4f}] "
            f"(p{result['low_pct']:g}..p{result['high_pct']:g} of the sum)"
        )
    else:
        typer.echo(_format_distribution("final", result["final"]))
        for name, values in result["terms"].items():
            typer.echo(_format_distribution(name, values))
        typer.echo(f"{'θ':>18}: {result['theta_note']}")
    typer.echo(
        f"{'time':>18}: sampling {result['seconds_sampling']:.1f} s, "
        f"scoring {result['seconds_scoring']:.1f} s ({result['scored_frames_per_s']:.1f} frames/s)"
    )


@app.command("calibrate")
def reward_calibrate(
    config: ConfigOption = None,
    overrides: SetOption = None,
    frames: Annotated[int, typer.Option(help="Sample frames in all.")] = 64,
    scenarios: Annotated[
        str | None,
        typer.Option(help="Comma-separated scenarios; default: the VRU scenarios and car_following."),
    ] = None,
    seed: int = 0,
    stride: Annotated[int, typer.Option(help="Keep one frame every STRIDE env steps.")] = 5,
    low_pct: Annotated[float, typer.Option(help="Percentile of R_static + R_dynamic mapped to 0.")] = 5.0,
    high_pct: Annotated[float, typer.Option(help="Percentile of R_static + R_dynamic mapped to 1.")] = 95.0,
    write: Annotated[
        Path | None, typer.Option(help="Write a copy of the config with the suggested θ to this YAML file.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the preset's models on scripted-driving frames; report R_static, R_dynamic and a suggested θ."""
    from drivevlm.inspection.calibrate import load_preset, run_calibration, write_calibrated_config
    from drivevlm.inspection.frames import DEFAULT_SAMPLE_SCENARIOS

    data = load_preset(config, overrides or [])
    names = [s.strip() for s in scenarios.split(",") if s.strip()] if scenarios is not None else None
    result = run_calibration(
        data,
        frames=frames,
        scenarios=names if names is not None else DEFAULT_SAMPLE_SCENARIOS,
        seed=seed,
        stride=stride,
        low_pct=low_pct,
        high_pct=high_pct,
    )
    if write is not None:
        result["written"] = str(write_calibrated_config(data, result, write))
    if as_json:
        typer.echo(json.dumps(result, default=float))
        return
    _print_calibration(result)
    if write is not None:
        typer.echo(f"{'written':>18}: {write}")


@app.command("inspect")
def reward_inspect(
    scenario: Annotated[str, typer.Option(help="The scenario to drive, e.g. pedestrian_crossing.")],
    out: Annotated[Path, typer.Option(help="Folder for images/, steps.csv, summary.json and index.html.")],
    config: ConfigOption = None,
    overrides: SetOption = None,
    steps: Annotated[int, typer.Option(help="Most steps to drive (the episode may end sooner).")] = 200,
    seed: int = 0,
    every: Annotated[int, typer.Option(help="Write the images of every EVERY-th step (1: all).")] = 1,
    batch: Annotated[int, typer.Option(help="Steps scored per reward call.")] = 16,
    as_json: JsonFlag = False,
) -> None:
    """Drive one scripted episode; write per-step frames, detections, LVLM text and reward terms."""
    from drivevlm.inspection.calibrate import load_preset
    from drivevlm.inspection.inspect import run_inspection

    data = load_preset(config, overrides or [])
    result = run_inspection(data, scenario, out, steps=steps, seed=seed, every=every, batch=batch)
    summary = result.summary
    if as_json:
        typer.echo(json.dumps(summary, default=float))
        return
    for key, value in summary.items():
        typer.echo(f"{key:>14}: {value:.3f}" if isinstance(value, float) else f"{key:>14}: {value}")

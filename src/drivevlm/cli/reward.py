"""`drivevlm reward calibrate|inspect|fidelity`: look at a preset's reward on simulator frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drivevlm.cli.common import JsonFlag

if TYPE_CHECKING:
    from drivevlm.presets import Preset

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
        typer.Option(
            help="Comma-separated scenarios; default: the preset's env.scenario_mix, else the VRU "
            "scenarios and car_following."
        ),
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
    from drivevlm.inspection.calibrate import run_calibration, write_calibrated_config
    from drivevlm.presets import load_preset

    preset = load_preset(config, overrides or [])
    names = [s.strip() for s in scenarios.split(",") if s.strip()] if scenarios is not None else None
    result = run_calibration(
        preset,
        frames=frames,
        scenarios=names,
        seed=seed,
        stride=stride,
        low_pct=low_pct,
        high_pct=high_pct,
    )
    if write is not None:
        result["written"] = str(write_calibrated_config(preset, result, write))
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
    from drivevlm.inspection.inspect import run_inspection
    from drivevlm.presets import load_preset

    preset = load_preset(config, overrides or [])
    result = run_inspection(preset, scenario, out, steps=steps, seed=seed, every=every, batch=batch)
    summary = result.summary
    if as_json:
        typer.echo(json.dumps(summary, default=float))
        return
    for key, value in summary.items():
        typer.echo(f"{key:>14}: {value:.3f}" if isinstance(value, float) else f"{key:>14}: {value}")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_fidelity(result: dict[str, Any]) -> None:
    from drivevlm.inspection.fidelity import BANDS, POOLED

    presets = result["presets"]
    width = max(len(name) for name in presets)
    typer.echo(
        f"{result['seeds']} seeds per scenario from {result['first_seed']}, "
        f"a frame every {result['stride']} steps; v_des in km/h by distance to the nearest person in the path"
    )
    head = " ".join(f"{'v_des ' + band:>12}" for band in BANDS)
    typer.echo(
        f"{'preset':<{width}}  {'AUC':>5}  {'raw':>5}  {'AUC*':>5}  {head}  {'clear':>6}  {'gate':>5}  frames"
    )
    for name, summary in presets.items():
        pooled = summary[POOLED]
        bands = " ".join(f"{_fmt(pooled['v_des_by_band'][band]):>12}" for band in BANDS)
        typer.echo(
            f"{name:<{width}}  {_fmt(pooled['auc_near_vs_clear'], 3):>5}  "
            f"{_fmt(pooled['auc_raw_near_vs_clear'], 3):>5}  "
            f"{_fmt(pooled['auc_near_vs_none'], 3):>5}  {bands}  "
            f"{_fmt(pooled['v_des_clear']):>6}  {_fmt(pooled['gate_rate'], 2):>5}  {pooled['frames']}"
        )
    typer.echo(
        "AUC: a person within 12 m in the path against nothing in the path within 20 m (no risk ahead); "
        "raw: the same on the score before θ; AUC*: against no person within 20 m (cars ahead among the "
        "negatives)"
    )
    scenarios = result["scenarios"]
    typer.echo("\nAUC per scenario")
    typer.echo(f"{'preset':<{width}}  " + "  ".join(f"{s[:12]:>12}" for s in scenarios))
    for name, summary in presets.items():
        cells = "  ".join(f"{_fmt(summary[s]['auc_near_vs_clear'], 3):>12}" for s in scenarios)
        typer.echo(f"{name:<{width}}  {cells}")
    suggestions = {name: s[POOLED]["theta_from_truth"] for name, s in presets.items()}
    if any(suggestions.values()):
        typer.echo("\nθ from ground truth (θmin: p5 of the raw score, all frames; θmax: p25 on clear road)")
    for name, theta in suggestions.items():
        if theta is not None:
            note = "" if theta["usable"] else "  (not usable: clear road scores among the lowest)"
            bounds = f"theta_min {theta['theta_min']:+.4f}  theta_max {theta['theta_max']:+.4f}"
            typer.echo(f"{name:<{width}}  {bounds}{note}")


def _preset_with_overrides(spec: str, overrides: list[str]) -> Preset:
    """`name` or `name+key=value+key=value`: one preset with its own overrides after the shared ones."""
    from drivevlm.presets import load_preset

    name, *own = spec.split("+")
    return load_preset(name, [*overrides, *own])


@app.command("fidelity")
def reward_fidelity(
    presets: Annotated[
        str,
        typer.Option(
            help="Comma-separated presets to score on the same frames; `name+key=value` gives one preset "
            "its own overrides (e.g. drivevlm_rl+reward.gate.mode=path)."
        ),
    ] = "drivevlm_rl,vlm_rl,drivevlm_rl_oracle",
    overrides: SetOption = None,
    scenarios: Annotated[
        str | None,
        typer.Option(help="Comma-separated scenarios; default: the VRU suites, car_following, random."),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Episodes (seeds) per scenario.")] = 20,
    seed: Annotated[
        int | None, typer.Option(help="First seed (default: one no model or θ was set on).")
    ] = None,
    stride: Annotated[int, typer.Option(help="Score one frame every STRIDE env steps.")] = 5,
    max_steps: Annotated[int, typer.Option(help="Most steps per episode.")] = 300,
    out: Annotated[Path | None, typer.Option(help="Also write the result as JSON to this file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """How well each preset's reward slows the car for people in its path, measured on the same frames."""
    from drivevlm.atomic import write_atomic
    from drivevlm.inspection.fidelity import DEFAULT_SEED, FIDELITY_SCENARIOS, run_fidelity
    from drivevlm.rewards.build import build_reward

    names = [p.strip() for p in presets.split(",") if p.strip()]
    configs = {name: _preset_with_overrides(name, overrides or []) for name in names}
    reward_fns = {name: build_reward(preset.reward, preset.models) for name, preset in configs.items()}
    window = max(preset.reward.window_frames for preset in configs.values())
    chosen = [s.strip() for s in scenarios.split(",") if s.strip()] if scenarios else list(FIDELITY_SCENARIOS)

    def progress(scenario: str, episode: int) -> None:
        if not as_json:
            typer.echo(f"  {scenario} episode {episode + 1}/{seeds}", err=True)

    result = run_fidelity(
        reward_fns,
        configs[names[0]].env,
        window,
        chosen,
        seeds=seeds,
        seed=DEFAULT_SEED if seed is None else seed,
        stride=stride,
        max_steps=max_steps,
        progress=progress,
    )
    if out is not None:
        write_atomic(out, json.dumps(result, indent=1, default=float))
    if as_json:
        typer.echo(json.dumps(result, default=float))
        return
    _print_fidelity(result)

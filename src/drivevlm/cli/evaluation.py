"""`drivevlm evaluate | benchmark | report | export | drive`: test trained policies, run the paper's
experiments, write reports, ship a VLM-free policy.

Bad input (a run folder without a checkpoint, an unknown suite or method, a policy file whose observation
spec does not fit the env) ends the command with one `error: ...` line and exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from drivevlm.cli.common import JsonFlag, clean_errors, emit

SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config value, e.g. --set env.density=dense.")
]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="An exported policy file (.onnx, or .pt for TorchScript), or a shipped policy by name.",
    ),
]

CheckpointOption = Annotated[
    str,
    typer.Option(
        "--checkpoint",
        help="Which policy of the run: best (validated during training), latest, or auto (best where the "
        "run validated its checkpoints, else latest).",
    ),
]


def _print_metrics(result: dict[str, Any]) -> None:
    metrics = result["metrics"]
    typer.echo(f"suite {result['suite']}: {result['description']} ({result['episodes']} episodes)")
    typer.echo(f"policy {result['policy']}")
    columns = ("AS", "RC", "TD", "CS", "SR", "AC", "DS", "IPK")
    typer.echo(" | ".join(f"{c:>7}" for c in columns))
    typer.echo(" | ".join(f"{metrics[c]:7.3f}" for c in columns))
    for row in result["per_episode"]:
        typer.echo(
            f"  {row['town']:>9} {row['scenario']:>20} route {row['route_index']!s:>4} seed {row['seed']:<3} "
            f"{row['steps']:5d} steps {row['distance_m']:7.1f} m RC {row['route_completion']:.2f} "
            f"collisions {row['collisions']} {row['reason']}"
        )
    typer.echo(f"written: {result['path']}")


@clean_errors
def evaluate(
    run_dir: Annotated[Path | None, typer.Argument(help="A training run folder.")] = None,
    suite: Annotated[str, typer.Option(help="Evaluation suite, e.g. unseen_routes, density_dense.")] = (
        "unseen_routes"
    ),
    episodes: Annotated[int, typer.Option(help="Episodes to drive.")] = 10,
    policy: PolicyOption = None,
    overrides: SetOption = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Step limit per episode (default: the run's).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default RUN_DIR/eval).")] = None,
    checkpoint: CheckpointOption = "auto",
    as_json: JsonFlag = False,
) -> None:
    """Drive a trained policy deterministically through a suite; print and write the testing metrics."""
    from drivevlm.eval.evaluate import evaluate_run

    result = evaluate_run(
        run_dir, suite, episodes, policy, overrides or [], max_steps, out, checkpoint=checkpoint
    )
    _print_metrics(result)
    if as_json:
        compact = {k: v for k, v in result.items() if k != "per_episode"}
        typer.echo(json.dumps(compact, default=float))


@clean_errors
def benchmark(
    methods: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated preset names (`drivevlm presets`); default: the experiment's "
            "(main: drivevlm_rl,vlm_rl,chen_sac,tirl_sac; no_collision_penalty: drivevlm_rl,vlm_rl; "
            "highway: drivevlm_rl,vlm_rl,chen_sac)."
        ),
    ] = None,
    seeds: int = 3,
    steps: Annotated[int, typer.Option(help="Training steps per run.")] = 100_000,
    suite: Annotated[
        str | None,
        typer.Option(
            help="Suites each run is evaluated on, comma-separated; the first fills the testing table, `vru` "
            "names the five scenario suites with pedestrians and cyclists, `highway_hazards` the motorway "
            "hazards; default: the experiment's (unseen_routes,unseen_towns,vru; highway: "
            "highway,highway_hazards)."
        ),
    ] = None,
    episodes: Annotated[int, typer.Option(help="Evaluation episodes per suite and run.")] = 10,
    out: Annotated[Path, typer.Option(help="Benchmark folder.")] = Path("out/benchmark"),
    jobs: Annotated[int, typer.Option(help="Runs in parallel (one process each).")] = 1,
    overrides: SetOption = None,
    experiment: Annotated[
        str,
        typer.Option(
            help="main (Tables 1-2), no_collision_penalty (Tables 3-4) or highway (the `*_highway` presets "
            "on the motorway and its hazards, beyond the paper)."
        ),
    ] = "main",
    configs: Annotated[Path | None, typer.Option(help="Folder of preset YAMLs (default: shipped).")] = None,
    eval_max_steps: Annotated[int | None, typer.Option(help="Step limit per evaluation episode.")] = None,
    tables_only: Annotated[
        bool,
        typer.Option(
            "--tables-only",
            help="Write the tables from the runs finished so far; start nothing, list the rest.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train and evaluate every method x seed (resumable), then write the paper's tables and curves."""
    from drivevlm.eval.experiments import run_benchmark
    from drivevlm.eval.jobs import experiment_spec
    from drivevlm.eval.suites import suite_list

    spec = experiment_spec(experiment)
    names = list(spec.methods) if methods is None else [m.strip() for m in methods.split(",") if m.strip()]
    suites = suite_list(spec.suites if suite is None else suite)
    result = run_benchmark(
        out, names, seeds, steps, suites, episodes, overrides or [], experiment, jobs, configs,
        eval_max_steps, progress=typer.echo, run=not tables_only,
    )  # fmt: skip
    for path in result.tables.values():
        if path.endswith(".md"):
            typer.echo(Path(path).read_text(encoding="utf-8"))
    typer.echo(f"curves: {result.curves}")
    for line in result.missing:
        typer.echo(f"missing: {line}")
    typer.echo(f"benchmark folder: {out} ({result.seconds:.1f} s)")
    if result.failed:
        typer.echo(f"error: runs failed: {', '.join(result.failed)} (see job.log in each)", err=True)
    if as_json:
        typer.echo(json.dumps({"out": str(out), "tables": result.tables, "curves": result.curves,
                               "failed": result.failed, "missing": result.missing,
                               "seconds": result.seconds}))  # fmt: skip
    if result.failed:
        raise typer.Exit(1)


@clean_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A training run folder.")],
    format: Annotated[str, typer.Option("--format", help="onnx or torchscript.")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="Policy file (default RUN_DIR/policy.onnx|.pt).")] = None,
    checkpoint: CheckpointOption = "auto",
    as_json: JsonFlag = False,
) -> None:
    """Write the run's policy as a VLM-free ONNX/TorchScript file plus its observation spec."""
    from drivevlm.deploy.export import FORMATS
    from drivevlm.eval.runs import export_driver, load_driver

    if format not in FORMATS:
        raise ValueError(f"format: unknown value {format!r}; allowed: {', '.join(FORMATS)}")
    driver = load_driver(run_dir, checkpoint=checkpoint)
    path = out or run_dir / ("policy.onnx" if format == "onnx" else "policy.pt")
    written = export_driver(driver, path, format)
    emit({"policy": str(written), "format": format, "checkpoint": driver.source}, as_json)


@clean_errors
def drive(
    run_dir: Annotated[Path | None, typer.Argument(help="A training run folder.")] = None,
    policy: PolicyOption = None,
    scenario: Annotated[str, typer.Option(help="Scripted scenario, e.g. pedestrian_crossing.")] = "random",
    town: Annotated[str | None, typer.Option(help="Town (default: the scenario's, else the run's).")] = None,
    density: str = "regular",
    route: Annotated[int | None, typer.Option(help="Evaluation route index (default 0).")] = 0,
    seed: int = 0,
    steps: Annotated[int | None, typer.Option(help="Step limit (default: the run's episode limit).")] = None,
    video: Annotated[
        Path, typer.Option(help="Output video: .webm (plays in browsers) or .mp4 (mp4v, desktop players).")
    ] = Path("out/drive.webm"),
    overrides: SetOption = None,
    checkpoint: CheckpointOption = "auto",
    as_json: JsonFlag = False,
) -> None:
    """Drive one episode and write a video: front camera | BEV with speed, action and reward terms."""
    from drivevlm.eval.runs import load_driver
    from drivevlm.eval.suites import SuiteEpisode
    from drivevlm.eval.video import drive_video
    from drivevlm.sim.scenarios import SCENARIOS, check_choice

    check_choice("scenario", scenario, SCENARIOS)
    driver = load_driver(run_dir, policy, overrides or [], checkpoint=checkpoint)
    chosen_town = town or SCENARIOS[scenario].default_town or driver.env_config.town
    episode = SuiteEpisode(chosen_town, scenario, density, route, seed)
    result = drive_video(driver.act, driver.env_config, episode, video, steps)
    if result.fallback_reason:
        typer.echo(f"note: {result.fallback_reason}; wrote an animated GIF instead: {result.video}")
    emit({"video": str(result.video), "frames": result.frames, **result.episode}, as_json)


@clean_errors
def report(
    folder: Annotated[Path, typer.Argument(help="A run folder or a benchmark folder.")],
    videos: Annotated[int, typer.Option(help="Episode videos to record when the folder has none.")] = 2,
    video_steps: Annotated[int, typer.Option(help="Step limit of each recorded video.")] = 300,
    out: Annotated[Path | None, typer.Option(help="HTML file (default FOLDER/report.html).")] = None,
    beside: Annotated[
        str | None,
        typer.Option(help="A shipped policy (name) or policy file to drive each video's episode too."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write one HTML page: the metrics tables, the training curves and a few episode videos."""
    from drivevlm.eval.report import write_report

    written = write_report(folder, out, videos, video_steps, beside)
    emit({"report": str(written["path"]), "tables": written["tables"], "videos": written["videos"]}, as_json)


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to the top-level app."""
    app.command("evaluate")(evaluate)
    app.command("benchmark")(benchmark)
    app.command("export")(export)
    app.command("drive")(drive)
    app.command("report")(report)

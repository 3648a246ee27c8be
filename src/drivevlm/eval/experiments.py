"""The paper's experiments as one command: train every preset x seed, evaluate each, write Tables 1-4.

Layout of a benchmark folder:
    <out>/runs/<method>/seed-<n>/   one training run each (trainer layout) plus
        job.json                    what the job trains and evaluates (written before it starts)
        job.log                     the job's stdout and stderr
        training/episodes-rank<r>.jsonl   every training episode (EpisodeLog + the step it ended at)
        training/episodes.csv       the same as a per-episode curve log (TrainingCurveLog columns)
        eval/<suite>.json           the testing metrics
    <out>/table1_training.md/.csv, table2_testing.md/.csv (or table3/table4 for no_collision_penalty),
    <out>/training_curves.png, <out>/benchmark.json

Planning and running the jobs: `eval.jobs`; the per-episode training logs that Table 1 and the curves
come from: `eval.training_episodes`; the HTML report: `eval.report.write_report`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivevlm.eval.jobs import DEFAULT_METHODS, DISPLAY_NAMES, Job, eval_path, plan_jobs, run_jobs
from drivevlm.eval.training_episodes import EPISODES_FILE, read_training_episodes


@dataclass
class BenchmarkResult:
    out: Path
    experiment: str
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    curves: str | None = None
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def collect_tables(jobs: Sequence[Job], out: Path, experiment: str) -> BenchmarkResult:
    """Tables (training and testing, mean ± std over seeds), curves and benchmark.json from finished jobs."""
    from drivevlm.eval.metrics import training_metrics
    from drivevlm.eval.report import TABLE1_COLUMNS as T1
    from drivevlm.eval.report import TABLE2_COLUMNS, TABLE3_COLUMNS, plot_training_curves, write_table

    result = BenchmarkResult(out, experiment)
    training: dict[str, list[dict[str, float]]] = {}
    testing: dict[str, list[dict[str, float]]] = {}
    curves: dict[str, list[Path]] = {}
    for job in jobs:
        run = Path(job.run_dir)
        name = DISPLAY_NAMES.get(job.method, job.method)
        evaluation = eval_path(job)
        episodes = [log for _, log in read_training_episodes(run)]
        if not evaluation.is_file():
            result.failed.append(job.run_dir)
            continue
        tested = json.loads(evaluation.read_text())["metrics"]
        trained = training_metrics(episodes) if episodes else None
        testing.setdefault(name, []).append(tested)
        if trained is not None:
            training.setdefault(name, []).append(trained)
            curves.setdefault(name, []).append(run / "training" / EPISODES_FILE)
        result.runs[f"{job.method}/seed-{job.seed}"] = {
            "run_dir": job.run_dir,
            "training": trained,
            "training_episodes": len(episodes),
            "testing": tested,
        }
    if experiment == "no_collision_penalty":
        specs = [("table3_training", training, TABLE3_COLUMNS, "Training, no reward after collision")]
        specs.append(("table4_testing", testing, TABLE2_COLUMNS, "Testing, no reward after collision"))
    else:
        specs = [
            ("table1_training", training, T1, "Training"),
            ("table2_testing", testing, TABLE2_COLUMNS, "Testing"),
        ]
    for name, results, columns, title in specs:
        if results:
            md, csv_path = write_table(results, columns, out / f"{name}.md", out / f"{name}.csv", title)
            result.tables[name] = str(md)
            result.tables[f"{name}_csv"] = str(csv_path)
    if curves:
        result.curves = str(plot_training_curves(curves, out / "training_curves.png"))
    return result


def run_benchmark(
    out: str | Path,
    methods: Sequence[str] = DEFAULT_METHODS,
    seeds: int = 3,
    steps: int = 100_000,
    suite: str = "unseen_routes",
    eval_episodes: int = 10,
    overrides: Sequence[str] = (),
    experiment: str = "main",
    parallel: int = 1,
    configs: Path | None = None,
    eval_max_steps: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchmarkResult:
    """Train and evaluate every method x seed (resumable, `parallel` processes), then write the tables."""
    started = time.monotonic()
    out = Path(out)
    jobs = plan_jobs(
        out, methods, seeds, steps, suite, eval_episodes, overrides, experiment, configs, eval_max_steps
    )
    failed = run_jobs(jobs, parallel, progress)
    result = collect_tables(jobs, out, experiment)
    result.failed = sorted(set(result.failed) | set(failed))
    result.seconds = time.monotonic() - started
    summary = {
        "experiment": experiment,
        "methods": list(methods),
        "seeds": seeds,
        "steps": steps,
        "suite": suite,
        "eval_episodes": eval_episodes,
        "overrides": list(overrides),
        "runs": result.runs,
        "tables": result.tables,
        "curves": result.curves,
        "failed": result.failed,
        "seconds": result.seconds,
    }
    from drivevlm.eval.evaluate import write_json_atomic

    write_json_atomic(out / "benchmark.json", summary)
    return result

"""The paper's experiments as one command: train every preset x seed, evaluate each, write Tables 1-4.

Layout of a benchmark folder:
    <out>/runs/<method>/seed-<n>/   one training run each (trainer layout) plus
        job.json                    what the job trains and evaluates (written before it starts)
        job.log                     the job's stdout and stderr
        training/episodes-rank<r>.jsonl   every training episode (EpisodeLog + the step it ended at)
        training/episodes.csv       the same as a per-episode curve log (TrainingCurveLog columns)
        eval/<suite>.json           the testing metrics, one file per suite
        metrics.json                once finished: the training metrics and the VRU suites pooled, so
                                    that the tables can be rebuilt without the per-step logs (*.jsonl)
    <out>/table1_training.md/.csv, table2_testing.md/.csv (table3/table4 for no_collision_penalty,
    highway_training/highway_testing for highway) on the first suite, testing_<suite>.md/.csv on each
    other suite, vru_collisions.md/.csv (the VRU suites pooled), hazard_AC.md/.csv and hazard_CS.md/.csv
    (collision rate and speed per motorway hazard),
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

from drivevlm.eval.jobs import (
    DEFAULT_METHODS,
    DISPLAY_NAMES,
    Job,
    eval_path,
    evaluated,
    experiment_spec,
    job_finished,
    plan_jobs,
    run_jobs,
    trained_steps,
)
from drivevlm.eval.training_episodes import EPISODES_FILE, read_training_episodes


@dataclass
class BenchmarkResult:
    out: Path
    experiment: str
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    curves: str | None = None
    # Run folders whose job process failed in this call.
    failed: list[str] = field(default_factory=list)
    # What the tables still lack: "<method>/seed-<n>: <why>" for every job not trained and evaluated yet.
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0


RUN_METRICS_FILE = "metrics.json"


def _vru_pooled(job: Job) -> dict[str, float] | None:
    """Testing metrics over the episodes of every VRU suite of the job; None until all are evaluated."""
    from drivevlm.eval.episode_log import load_episode_logs
    from drivevlm.eval.metrics import testing_metrics
    from drivevlm.eval.suites import VRU_SUITES

    suites = [suite for suite in job.suites if suite in VRU_SUITES]
    if not suites or not all(evaluated(job, suite) for suite in suites):
        return None
    folder = Path(job.run_dir) / "eval"
    return testing_metrics([log for s in suites for log in load_episode_logs(folder / f"{s}.episodes.jsonl")])


def run_metrics(job: Job) -> dict[str, Any]:
    """The training metrics and the VRU suites pooled: from the run's per-step logs while it has them (kept
    in metrics.json once the job is finished), else from that file, e.g. after results from other machines
    were gathered without their logs."""
    from drivevlm.eval.evaluate import write_json_atomic
    from drivevlm.eval.metrics import training_metrics

    run = Path(job.run_dir)
    kept = run / RUN_METRICS_FILE
    episodes = [log for _, log in read_training_episodes(run)]
    if not episodes and kept.is_file():
        return dict(json.loads(kept.read_text()))
    record = {
        "training": training_metrics(episodes) if episodes else None,
        "training_episodes": len(episodes),
        "vru_pooled": _vru_pooled(job),
    }
    if job_finished(job):
        write_json_atomic(kept, record)
    return record


def collect_tables(jobs: Sequence[Job], out: Path, experiment: str) -> BenchmarkResult:
    """Tables (training, testing per suite, VRU collisions; mean ± std over seeds), curves and the runs
    summary from the jobs evaluated so far. A job is in `missing` until trained and evaluated on every
    suite; its rows appear once its first suite is evaluated."""
    from drivevlm.eval.report import (
        HAZARD_METRICS,
        TABLE2_COLUMNS,
        TABLE3_COLUMNS,
        VRU_COLUMNS,
        hazard_tables,
        plot_training_curves,
        write_table,
    )
    from drivevlm.eval.report import TABLE1_COLUMNS as T1
    from drivevlm.eval.suites import VRU_SUITES

    result = BenchmarkResult(out, experiment)
    training: dict[str, list[dict[str, float]]] = {}
    testing: dict[str, dict[str, list[dict[str, float]]]] = {s: {} for job in jobs for s in job.suites}
    vru: dict[str, list[dict[str, float]]] = {}
    curves: dict[str, list[Path]] = {}
    evaluations: list[tuple[str, dict[str, Any]]] = []
    for job in jobs:
        run = Path(job.run_dir)
        name = DISPLAY_NAMES.get(job.method, job.method)
        key = f"{job.method}/seed-{job.seed}"
        lacking = [suite for suite in job.suites if not evaluated(job, suite)]
        if not job_finished(job):
            done = trained_steps(run)
            trained = done >= job.steps
            what = (
                f"not evaluated on {', '.join(lacking)}"
                if trained
                else f"trained {done} of {job.steps} steps"
            )
            result.missing.append(f"{key}: {what}")
        if job.suites[0] in lacking:
            continue
        suites = {
            suite: json.loads(eval_path(job, suite).read_text())["metrics"]
            for suite in job.suites
            if evaluated(job, suite)
        }
        for suite, metrics in suites.items():
            testing[suite].setdefault(name, []).append(metrics)
        evaluations.append((name, suites))
        record = run_metrics(job)
        pooled, trained = record["vru_pooled"], record["training"]
        if pooled is not None:
            vru.setdefault(name, []).append(pooled)
        if trained is not None:
            training.setdefault(name, []).append(trained)
            if (run / "training" / EPISODES_FILE).is_file():
                curves.setdefault(name, []).append(run / "training" / EPISODES_FILE)
        result.runs[key] = {
            "run_dir": job.run_dir,
            "training": trained,
            "training_episodes": record["training_episodes"],
            "testing": suites[job.suites[0]],
            "suites": suites,
            "vru_pooled": pooled,
        }
    first = jobs[0].suites[0] if jobs else ""
    extreme = experiment == "no_collision_penalty"
    training_table, testing_table = experiment_spec(experiment).tables
    specs = [
        (training_table, training, TABLE3_COLUMNS if extreme else T1,
         "Training, no reward after collision" if extreme else "Training"),
        (testing_table, testing.get(first, {}), TABLE2_COLUMNS,
         f"Testing on {first}" + (", no reward after collision" if extreme else "")),
    ]  # fmt: skip
    for suite, results in testing.items():
        if suite != first:
            columns = (*TABLE2_COLUMNS, "VCR", "VCS") if suite in VRU_SUITES else TABLE2_COLUMNS
            specs.append((f"testing_{suite}", results, columns, f"Testing on {suite}"))
    specs.append(
        ("vru_collisions", vru, VRU_COLUMNS, "Collisions with pedestrians and riders, all VRU suites pooled")
    )
    hazard_columns, hazards = hazard_tables(evaluations, jobs[0].suites if jobs else ())
    for metric, results in hazards.items():
        # Lower is better in every column: both metrics count collisions.
        specs.append((f"hazard_{metric}", results, hazard_columns, f"{HAZARD_METRICS[metric]} per hazard"))
    for name, results, columns, title in specs:
        if results:
            lower = hazard_columns if name.startswith("hazard_") else ()
            md, csv_path = write_table(
                results, columns, out / f"{name}.md", out / f"{name}.csv", title, lower=lower
            )
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
    suites: Sequence[str] = ("unseen_routes",),
    eval_episodes: int = 10,
    overrides: Sequence[str] = (),
    experiment: str = "main",
    parallel: int = 1,
    configs: Path | None = None,
    eval_max_steps: int | None = None,
    progress: Callable[[str], None] | None = None,
    run: bool = True,
) -> BenchmarkResult:
    """Train and evaluate every method x seed (resumable, `parallel` processes), then write the tables.

    `run=False` only writes the tables from the jobs finished so far (`result.missing` names the rest).
    """
    started = time.monotonic()
    out = Path(out)
    jobs = plan_jobs(
        out, methods, seeds, steps, suites, eval_episodes, overrides, experiment, configs, eval_max_steps
    )
    failed = run_jobs(jobs, parallel, progress) if run else []
    result = collect_tables(jobs, out, experiment)
    result.failed = sorted(failed)
    result.seconds = time.monotonic() - started
    summary = {
        "experiment": experiment,
        "methods": list(methods),
        "seeds": seeds,
        "steps": steps,
        "suites": list(jobs[0].suites),
        "eval_episodes": eval_episodes,
        "overrides": list(overrides),
        "runs": result.runs,
        "tables": result.tables,
        "curves": result.curves,
        "failed": result.failed,
        "missing": result.missing,
        "seconds": result.seconds,
    }
    from drivevlm.eval.evaluate import write_json_atomic

    write_json_atomic(out / "benchmark.json", summary)
    return result

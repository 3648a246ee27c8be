"""The paper's tables (mean ± std over seeds) as Markdown and CSV, training curves as PNG, an HTML report.

Every function takes results as `{method: [one metrics dict per seed]}` (the dicts `training_metrics` /
`testing_metrics` return), so the benchmark command, the CLI and notebooks share one layout.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import warnings
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivevlm.atomic import write_atomic
from drivevlm.eval.episode_log import read_training_log

Results = Mapping[str, Sequence[Mapping[str, float]]]

TABLE1_COLUMNS = ("AS", "RC", "TD", "CS", "CR", "ICT", "DCF", "TCF")
TABLE2_COLUMNS = ("AS", "RC", "TD", "CS", "SR", "AC")
TABLE3_COLUMNS = ("AS", "RC", "TD", "CR", "ICT", "ExtCR", "ExtCol")

# Decimals as the paper prints them; None for metrics the paper does not report.
DECIMALS = {
    "AS": 2, "RC": 2, "TD": 2, "CS": 3, "CR": 3, "ICT": 0, "DCF": 2, "TCF": 3,
    "SR": 2, "AC": 2, "ExtCR": 3, "ExtCol": 1, "DS": 3, "IPK": 2, "VCR": 2, "VCS": 2,
}  # fmt: skip
HIGHER_IS_BETTER = frozenset({"AS", "RC", "TD", "ICT", "SR", "DS"})
LOWER_IS_BETTER = frozenset({"CS", "CR", "DCF", "TCF", "AC", "ExtCR", "ExtCol", "IPK", "VCR", "VCS"})
# Collisions with pedestrians and riders (VCR, VCS) beside the paper's testing columns, for VRU suites.
VRU_COLUMNS = ("VCR", "VCS", "SR", "AC", "CS")
# The highway experiment's per-hazard tables: one per metric, one column per motorway hazard.
HAZARD_METRICS = {"AC": "Collision rate (AC)", "CS": "Collision speed at impact (CS, km/h)"}

# Not episode_reward: in training the env returns provisional rewards, the learner's come later from the
# annotator, so the training curve has no episode return to plot.
CURVE_METRICS = ("collision_rate", "average_speed_kmh", "routes_completed", "distance_m")
# Panels of a run over time, from the trainer's progress.csv (means per log interval): how its training
# episodes went, then every term of the reward, the desired speed the semantic score sets, and how often
# the attention gate opened.
TRAINING_PANELS: dict[str, tuple[str, ...]] = {
    "route completion (training episodes)": ("episode/route_completion",),
    "average speed (km/h)": ("episode/average_speed_kmh",),
    "collision rate": ("rollout/collision_rate",),
}
_TERMS = (
    "final",
    "r_shaping",
    "r_norm",
    "r_static",
    "r_dynamic",
    "f_speed",
    "f_center",
    "f_angle",
    "f_stability",
)
REWARD_PANELS: dict[str, tuple[str, ...]] = {
    "reward terms": tuple(f"reward/{term}" for term in _TERMS),
    "desired speed v_des (km/h)": ("reward/v_des",),
    "gate rate": ("reward/gate_rate",),
}


@dataclass(frozen=True)
class MeanStd:
    mean: float
    std: float
    # Seeds with a finite value (ICT is NaN for a seed that never collided).
    n: int

    def format(self, decimals: int = 2) -> str:
        if self.n == 0:
            return "n/a"
        if self.n == 1:
            return f"{self.mean:.{decimals}f}"
        return f"{self.mean:.{decimals}f}±{self.std:.{decimals}f}"


def aggregate(
    per_seed: Sequence[Mapping[str, float]], columns: Sequence[str] | None = None
) -> dict[str, MeanStd]:
    """Mean and sample standard deviation (ddof=1) over seeds, per metric; non-finite values are left out."""
    if not per_seed:
        raise ValueError("per_seed: need at least one metrics dict, got none")
    keys = list(columns) if columns is not None else sorted({k for d in per_seed for k in d})
    out: dict[str, MeanStd] = {}
    for key in keys:
        missing = [i for i, d in enumerate(per_seed) if key not in d]
        if missing:
            raise ValueError(f"metric {key!r}: missing from the metrics of seed(s) {missing}")
        values = np.array([float(d[key]) for d in per_seed])
        finite = values[np.isfinite(values)]
        std = float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0
        out[key] = MeanStd(float(finite.mean()) if finite.size else math.nan, std, int(finite.size))
    return out


def hazard_tables(
    runs: Iterable[tuple[str, Mapping[str, Mapping[str, float]]]], suites: Sequence[str]
) -> tuple[tuple[str, ...], dict[str, dict[str, list[dict[str, float]]]]]:
    """The columns (each motorway-hazard suite among `suites`, named by its scenario) and, per metric of
    HAZARD_METRICS, one row per run of (method, {suite: metrics}) under its method; NaN where a run is not
    evaluated on a hazard yet."""
    from drivevlm.eval.suites import HIGHWAY_HAZARD_SUITES

    chosen = [suite for suite in suites if suite in HIGHWAY_HAZARD_SUITES]
    columns = tuple(suite.removeprefix("scenario_") for suite in chosen)
    tables: dict[str, dict[str, list[dict[str, float]]]] = {metric: {} for metric in HAZARD_METRICS}
    for method, metrics in runs:
        for metric, rows in tables.items():
            row = {
                column: float(metrics[suite][metric]) if suite in metrics else math.nan
                for suite, column in zip(chosen, columns, strict=True)
            }
            rows.setdefault(method, []).append(row)
    return columns, tables if chosen else {}


def _aggregate_all(results: Results, columns: Sequence[str]) -> dict[str, dict[str, MeanStd]]:
    if not results:
        raise ValueError("results: no methods given")
    out = {}
    for method, per_seed in results.items():
        try:
            out[method] = aggregate(per_seed, columns)
        except ValueError as err:
            raise ValueError(f"results[{method!r}]: {err}") from err
    return out


def _best(table: Mapping[str, Mapping[str, MeanStd]], column: str, lower: Collection[str] = ()) -> str | None:
    means = {m: row[column].mean for m, row in table.items() if row[column].n > 0}
    lower_better = column in LOWER_IS_BETTER or column in lower
    if len(means) < 2 or not (lower_better or column in HIGHER_IS_BETTER):
        return None
    pick = min if lower_better else max
    return pick(means, key=lambda m: means[m])


def table_markdown(
    results: Results, columns: Sequence[str], bold_best: bool = True, lower: Collection[str] = ()
) -> str:
    """A Markdown table, one row per method, cells `mean±std`; the best mean per column in bold (`lower`:
    columns beside the known metrics where lower is better)."""
    table = _aggregate_all(results, columns)
    lines = ["| Method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    best = {c: _best(table, c, lower) if bold_best else None for c in columns}
    for method, row in table.items():
        cells = []
        for column in columns:
            text = row[column].format(DECIMALS.get(column, 2))
            cells.append(f"**{text}**" if best[column] == method else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_csv(results: Results, columns: Sequence[str]) -> str:
    """CSV with full precision: method, seeds, then `<metric>_mean`, `<metric>_std` per column."""
    table = _aggregate_all(results, columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "seeds", *[f"{c}_{s}" for c in columns for s in ("mean", "std")]])
    for method, row in table.items():
        cells: list[object] = [method, len(results[method])]
        for column in columns:
            cells += [repr(row[column].mean), repr(row[column].std)]
        writer.writerow(cells)
    return buffer.getvalue()


def table_html(
    results: Results, columns: Sequence[str], caption: str = "", lower: Collection[str] = ()
) -> str:
    table = _aggregate_all(results, columns)
    best = {c: _best(table, c, lower) for c in columns}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for method, row in table.items():
        cells = []
        for column in columns:
            text = html.escape(row[column].format(DECIMALS.get(column, 2)))
            cells.append(f"<td><b>{text}</b></td>" if best[column] == method else f"<td>{text}</td>")
        rows.append(f"<tr><th scope='row'>{html.escape(method)}</th>{''.join(cells)}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr><th>Method</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def write_table(
    results: Results,
    columns: Sequence[str],
    markdown_path: str | Path,
    csv_path: str | Path,
    title: str = "",
    lower: Collection[str] = (),
) -> tuple[Path, Path]:
    """Write one table as Markdown (with an optional `## title`) and as CSV, each atomically."""
    text = (f"## {title}\n\n" if title else "") + table_markdown(results, columns, lower=lower)
    md = write_atomic(Path(markdown_path), text.encode())
    return md, write_atomic(Path(csv_path), table_csv(results, columns).encode())


def write_training_table(
    results: Results, folder: str | Path, name: str = "table1_training"
) -> tuple[Path, Path]:
    """The paper's Table 1 layout: AS / RC / TD / CS / CR / ICT / DCF / TCF (CS per step, incl. zeros)."""
    folder = Path(folder)
    return write_table(results, TABLE1_COLUMNS, folder / f"{name}.md", folder / f"{name}.csv", "Training")


def write_testing_table(
    results: Results, folder: str | Path, name: str = "table2_testing"
) -> tuple[Path, Path]:
    """The paper's Table 2 layout: AS / RC / TD / CS / SR / AC (RC clipped to 1, CS per collision event)."""
    folder = Path(folder)
    return write_table(results, TABLE2_COLUMNS, folder / f"{name}.md", folder / f"{name}.csv", "Testing")


def _binned(rows: Sequence[Mapping[str, float]], metric: str, edges: np.ndarray) -> np.ndarray:
    steps = np.array([r["step"] for r in rows])
    values = np.array([r.get(metric, math.nan) for r in rows])
    index = np.clip(np.digitize(steps, edges) - 1, 0, len(edges) - 2)
    out = np.full(len(edges) - 1, math.nan)
    for b in range(len(edges) - 1):
        chosen = values[(index == b) & np.isfinite(values)]
        if chosen.size:
            out[b] = chosen.mean()
    return out


def _save_png(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return write_atomic(Path(path), buffer.getvalue())


def plot_training_curves(
    logs: Mapping[str, Sequence[str | Path]],
    path: str | Path,
    metrics: Sequence[str] = CURVE_METRICS,
    bins: int = 50,
) -> Path:
    """One panel per metric: per method, the mean over seeds of episode values binned by step, ± std band.

    `logs` maps a method to its per-seed training CSVs (`TrainingCurveLog` files).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not logs:
        raise ValueError("logs: no methods given")
    if bins < 1:
        raise ValueError(f"bins: must be >= 1, got {bins}")
    runs = {m: [read_training_log(p) for p in paths] for m, paths in logs.items()}
    for method, seeds in runs.items():
        if not seeds or not any(seeds):
            raise ValueError(f"logs[{method!r}]: no training rows in {list(map(str, logs[method]))}")
    top = max(r["step"] for seeds in runs.values() for rows in seeds for r in rows)
    edges = np.linspace(0.0, max(top, 1.0), bins + 1)
    centers = 0.5 * (edges[:-1] + edges[1:])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for method, seeds in runs.items():
            curves = np.array([_binned(rows, metric, edges) for rows in seeds if rows])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # bins no seed reached are NaN, by design
                mean = np.nanmean(curves, axis=0)
                std = np.nanstd(curves, axis=0) if len(curves) > 1 else np.zeros_like(mean)
            ok = np.isfinite(mean)
            (line,) = ax.plot(centers[ok], mean[ok], label=method, linewidth=1.6)
            ax.fill_between(
                centers[ok], (mean - std)[ok], (mean + std)[ok], color=line.get_color(), alpha=0.2
            )
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return _save_png(fig, path)


def read_progress(run_dir: str | Path, log_interval: int) -> list[dict[str, float]]:
    """The trainer's progress.csv rows of every session, in order, each with its env step as `step`
    (`time/total_steps`; runs logged before that column: the row's position times `log_interval`)."""
    sessions = sorted(
        Path(run_dir).glob("logs/session-*/progress.csv"), key=lambda p: int(p.parent.name.split("-")[1])
    )
    rows: list[dict[str, float]] = []
    for path in sessions:
        with path.open(newline="", encoding="utf-8") as handle:
            for raw in csv.DictReader(handle):
                row = {key: float(value) for key, value in raw.items() if value not in ("", None)}
                row["step"] = row.get("time/total_steps", (len(rows) + 1) * log_interval)
                rows.append(row)
    return rows


def plot_progress(
    rows: Sequence[Mapping[str, float]], panels: Mapping[str, Sequence[str]], path: str | Path
) -> Path:
    """One panel per `panels` entry (title: columns) that the run logged, one line per column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logged = {
        title: [c for c in columns if any(c in row for row in rows)] for title, columns in panels.items()
    }
    logged = {title: columns for title, columns in logged.items() if columns}
    if not logged:
        raise ValueError(f"rows: none of the columns {sorted(c for cs in panels.values() for c in cs)}")
    fig, axes = plt.subplots(1, len(logged), figsize=(5.0 * len(logged), 3.4), squeeze=False)
    for ax, (title, columns) in zip(axes[0], logged.items(), strict=True):
        for column in columns:
            points = [(row["step"], row[column]) for row in rows if column in row]
            marker = "." if len(points) < 30 else None
            ax.plot(*zip(*points, strict=True), label=column.split("/")[-1], linewidth=1.4, marker=marker)
        ax.set_title(title)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
        if len(columns) > 1:
            ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _save_png(fig, path)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}"
    "table{border-collapse:collapse;margin:12px 0 24px}th,td{border:1px solid #bbb;padding:4px 10px;"
    "text-align:right}thead th{background:#eef}tbody th{text-align:left}caption{font-weight:600;"
    "text-align:left;padding:4px 0}img{max-width:100%}video,img.episode{max-width:48%;margin:4px}"
)


def html_page(title: str, body: str, style: str = _STYLE) -> str:
    """The one page shell every HTML report of the project uses: head, style, the title as h1, the body."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
        f"<style>{style}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def write_html_report(
    path: str | Path,
    title: str,
    tables: Mapping[str, tuple[Results, Sequence[str]]],
    images: Sequence[str | Path] = (),
    videos: Sequence[str | Path] = (),
    notes: str = "",
    lower: Collection[str] = (),
) -> Path:
    """One self-contained HTML page: the tables, the PNG curves embedded, videos linked by relative path
    (WebM as players, GIF fallbacks as images, MP4 (mp4v, which browsers cannot decode) as download links)."""
    path = Path(path)
    parts = []
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    for caption, (results, columns) in tables.items():
        parts.append(table_html(results, columns, caption, lower))
    for image in images:
        image = Path(image)
        if not image.is_file():
            raise FileNotFoundError(f"images: {image} not found")
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        parts.append(
            f"<figure><img alt='{html.escape(image.stem)}' src='data:image/png;base64,{data}'></figure>"
        )
    if videos:
        parts.append("<h2>Episodes</h2><div>")
        for video in videos:
            video = Path(video)
            if not video.is_file():
                raise FileNotFoundError(f"videos: {video} not found")
            rel = html.escape(Path(os.path.relpath(video.resolve(), path.parent.resolve())).as_posix())
            if video.suffix == ".gif":
                parts.append(f"<img class='episode' alt='{html.escape(video.stem)}' src='{rel}'>")
            elif video.suffix == ".mp4":
                parts.append(f"<p><a href='{rel}'>{html.escape(video.name)}</a> (MP4: a desktop player)</p>")
            else:
                parts.append(f"<video controls muted src='{rel}'></video>")
        parts.append("</div>")
    return write_atomic(path, html_page(title, "".join(parts)).encode())


# ---------------------------------------------------------------- the HTML report of a folder

REPORT_SCENARIOS = ("pedestrian_crossing", "cyclist_merge", "slow_cyclist", "occluded_pedestrian")
# A policy trained on a motorway is shown on its hazards instead.
HIGHWAY_REPORT_SCENARIOS = ("broken_down_vehicle_triangle", "lost_cargo", "cut_in", "person_on_shoulder")


def _record_videos(
    runs: Sequence[tuple[str, Path]], folder: Path, count: int, steps: int, beside: str | None = None
) -> list[Path]:
    """One short episode video per (label, run folder), cycling over the VRU scenarios (the motorway hazards
    for a policy trained on a highway town); with `beside` (a shipped policy's name or a policy file), that
    policy drives each of the same episodes too."""
    from drivevlm.eval.runs import load_driver
    from drivevlm.eval.suites import SuiteEpisode
    from drivevlm.eval.video import drive_video
    from drivevlm.sim.scenarios import SCENARIOS, TOWNS

    other = None if beside is None else (Path(beside).stem or beside, load_driver(None, beside))
    written = []
    for index, (label, run) in enumerate(runs[:count]):
        driver = load_driver(run)
        trained_on = driver.env_config.town
        highway = trained_on in TOWNS and TOWNS[trained_on].kind == "highway"
        choices = HIGHWAY_REPORT_SCENARIOS if highway else REPORT_SCENARIOS
        scenario = choices[index % len(choices)]
        town = SCENARIOS[scenario].default_town or trained_on
        episode = SuiteEpisode(town, scenario, "regular", 0, 0)
        for name, each in [(label, driver), *([other] if other else [])]:
            video = folder / f"{name}-{scenario}.webm"
            written.append(drive_video(each.act, each.env_config, episode, video, steps).video)
    return written


def write_report(
    folder: str | Path,
    out: str | Path | None = None,
    videos: int = 2,
    video_steps: int = 300,
    beside: str | None = None,
) -> dict[str, Any]:
    """One HTML page for a benchmark folder (benchmark.json) or a single run folder (config.yaml).

    Videos already under FOLDER/videos are linked; when there are none, `videos` are recorded first, each
    with a second one of the `beside` policy (a shipped policy's name or a policy file) on the same episode.
    """
    from drivevlm.eval.jobs import DISPLAY_NAMES
    from drivevlm.eval.metrics import training_metrics
    from drivevlm.eval.runs import RunError, load_run_config
    from drivevlm.eval.suites import VRU_SUITES
    from drivevlm.eval.training_episodes import read_training_episodes, write_episode_curve
    from drivevlm.presets.training import train_section

    folder = Path(folder)
    target = Path(out) if out is not None else folder / "report.html"
    video_dir = folder / "videos"
    tables: dict[str, tuple[Any, Sequence[str]]] = {}
    images: list[Path] = []
    runs_for_video: list[tuple[str, Path]] = []
    bench_file = folder / "benchmark.json"
    if bench_file.is_file():
        bench = json.loads(bench_file.read_text())
        training: dict[str, list[dict[str, float]]] = {}
        testing: dict[str, dict[str, list[dict[str, float]]]] = {suite: {} for suite in bench["suites"]}
        vru: dict[str, list[dict[str, float]]] = {}
        evaluations: list[tuple[str, dict[str, Any]]] = []
        for key, run in bench["runs"].items():
            method = key.split("/")[0]
            name = DISPLAY_NAMES.get(method, method)
            for suite, metrics in run["suites"].items():
                testing[suite].setdefault(name, []).append(metrics)
            evaluations.append((name, run["suites"]))
            if run.get("vru_pooled"):
                vru.setdefault(name, []).append(run["vru_pooled"])
            if run.get("training"):
                training.setdefault(name, []).append(run["training"])
            if key.endswith("seed-0"):
                runs_for_video.append((method, Path(run["run_dir"])))
        extreme = bench.get("experiment") == "no_collision_penalty"
        if training:
            tables["Training" + (" (no reward after collision)" if extreme else "")] = (
                training,
                TABLE3_COLUMNS if extreme else TABLE1_COLUMNS,
            )
        for suite, results in testing.items():
            vru_columns = ("VCR", "VCS") if suite in VRU_SUITES else ()
            if results:
                tables[f"Testing on {suite}"] = (results, (*TABLE2_COLUMNS, "DS", "IPK", *vru_columns))
        if vru:
            tables["Collisions with pedestrians and riders, all VRU suites pooled"] = (vru, VRU_COLUMNS)
        hazard_columns, hazards = hazard_tables(evaluations, bench["suites"])
        for metric, results in hazards.items():
            tables[f"{HAZARD_METRICS[metric]} per hazard"] = (results, hazard_columns)
        lower: Collection[str] = hazard_columns
        if bench.get("curves") and Path(bench["curves"]).is_file():
            images.append(Path(bench["curves"]))
        methods = ", ".join(bench["methods"])
        title = f"DriveVLM benchmark: {methods}, {bench['seeds']} seed(s), {bench['steps']} steps"
    else:
        try:
            run_config = load_run_config(folder)
        except RunError as err:
            raise RunError(
                f"report: {folder} is neither a benchmark folder (benchmark.json) nor a run ({err})"
            ) from err
        suites = {
            p.stem: json.loads(p.read_text())["metrics"] for p in sorted((folder / "eval").glob("*.json"))
        }
        if suites:
            tables["Testing (one row per suite)"] = (
                {s: [m] for s, m in suites.items()},
                (*TABLE2_COLUMNS, "DS", "IPK"),
            )
        episodes = [log for _, log in read_training_episodes(folder)]
        if episodes:
            tables["Training"] = ({folder.name: [training_metrics(episodes)]}, TABLE1_COLUMNS)
            curve = write_episode_curve(folder)
            images.append(plot_training_curves({folder.name: [curve]}, folder / "training_curves.png"))
        progress = read_progress(folder, train_section(run_config).log_interval)
        if progress:
            if not episodes:
                images.append(plot_progress(progress, TRAINING_PANELS, folder / "training_progress.png"))
            images.append(plot_progress(progress, REWARD_PANELS, folder / "reward_terms.png"))
        runs_for_video.append((folder.name, folder))
        title = f"DriveVLM run {folder.name}"
        lower = ()
    found = sorted(p for p in video_dir.glob("*") if p.suffix in (".webm", ".mp4", ".gif"))
    if not found and videos > 0:
        found = _record_videos(runs_for_video, video_dir, videos, video_steps, beside)
    if not tables:
        raise RunError(f"report: {folder} has no evaluation results yet; run `drivevlm evaluate` first")
    notes = "Tables: mean ± std over seeds (sample std); best mean per column in bold."
    path = write_html_report(target, title, tables, images, found, notes, lower)
    return {"path": path, "tables": list(tables), "videos": [str(v) for v in found]}

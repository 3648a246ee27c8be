"""Tables over seeds, training curves and the HTML report (opened in headless Chromium when installed)."""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drivevlm.eval.episode_log import EpisodeLog, TrainingCurveLog
from drivevlm.eval.report import (
    REWARD_PANELS,
    TABLE1_COLUMNS,
    TABLE2_COLUMNS,
    aggregate,
    hazard_tables,
    plot_progress,
    plot_training_curves,
    read_progress,
    table_csv,
    table_markdown,
    write_html_report,
    write_testing_table,
    write_training_table,
)
from support.browser import chromium

TESTING = {
    "VLM-RL": [
        {"AS": 14.0, "RC": 0.5, "TD": 130.0, "CS": 10.0, "SR": 0.4, "AC": 0.2},
        {"AS": 15.0, "RC": 0.6, "TD": 150.0, "CS": 8.0, "SR": 0.4, "AC": 0.0},
    ],
    "DriveVLM-RL": [
        {"AS": 16.0, "RC": 0.7, "TD": 200.0, "CS": 2.0, "SR": 0.6, "AC": 0.1},
        {"AS": 12.0, "RC": 0.5, "TD": 180.0, "CS": 0.0, "SR": 0.5, "AC": 0.3},
    ],
}


def test_aggregate_is_mean_and_sample_std_over_seeds() -> None:
    agg = aggregate(TESTING["DriveVLM-RL"])
    assert agg["AS"].mean == pytest.approx(14.0)
    assert agg["AS"].std == pytest.approx(np.sqrt(8.0))  # (2² + 2²) / (2 - 1)
    assert agg["AS"].n == 2
    ict = aggregate([{"ICT": 100.0}, {"ICT": float("nan")}, {"ICT": 300.0}])["ICT"]
    assert (ict.mean, ict.n) == (200.0, 2)
    assert aggregate([{"SR": 0.5}])["SR"].format(2) == "0.50"
    with pytest.raises(ValueError, match=r"'CR'.*seed\(s\) \[1\]"):
        aggregate([{"CR": 0.1}, {"AS": 1.0}], ["CR"])
    with pytest.raises(ValueError, match="per_seed"):
        aggregate([])


def test_markdown_and_csv_tables_hold_the_paper_layout(tmp_path: Path) -> None:
    text = table_markdown(TESTING, TABLE2_COLUMNS)
    lines = text.splitlines()
    assert lines[0] == "| Method | AS | RC | TD | CS | SR | AC |"
    assert (
        lines[2].startswith("| VLM-RL | 14.50±0.71 | 0.55±0.07 | 140.00±14.14 | **9.000±1.414** |") is False
    )
    # CS: lower is better -> DriveVLM-RL (1.0) is bold; SR: higher is better -> DriveVLM-RL (0.55).
    assert (
        "| DriveVLM-RL | 14.00±2.83 | **0.60±0.14** | **190.00±14.14** | **1.000±1.414** | **0.55±0.07** |"
        in text
    )
    assert "| VLM-RL | **14.50±0.71** |" in text
    rows = list(csv.DictReader(io.StringIO(table_csv(TESTING, TABLE2_COLUMNS))))
    assert rows[1]["method"] == "DriveVLM-RL" and rows[1]["seeds"] == "2"
    assert float(rows[1]["TD_mean"]) == 190.0 and float(rows[0]["CS_std"]) == pytest.approx(np.sqrt(2.0))
    md, csv_path = write_testing_table(TESTING, tmp_path)
    assert md.read_text().startswith("## Testing\n\n| Method | AS |")
    assert csv_path.name == "table2_testing.csv"
    with pytest.raises(ValueError, match=r"results\['VLM-RL'\].*'CR'"):
        write_training_table(TESTING, tmp_path)


def _training_csvs(folder: Path, method: str, crash_every: int) -> list[Path]:
    paths = []
    for seed in range(2):
        path = folder / f"{method}-{seed}.csv"
        curve = TrainingCurveLog(path)
        step = 0
        for episode in range(60):
            steps = 20 + episode + seed
            collided = episode % crash_every == 0
            log = EpisodeLog.from_steps(
                speed_kmh=[10.0 + episode * 0.2] * steps,
                distance_m=np.linspace(1, steps, steps),
                collision=[False] * (steps - 1) + [collided],
                collision_kind=[""] * (steps - 1) + ["car" if collided else ""],
                route_completion=np.linspace(0, 0.01 * episode, steps),
                rewards=[0.1 * episode] * steps,
            )
            step += steps
            curve.append(step, log)
        paths.append(path)
    return paths


def test_hazard_tables_have_a_column_per_hazard_and_bold_the_fewest_collisions() -> None:
    def run(ac_cargo: float, cs_cargo: float) -> dict[str, dict[str, float]]:
        return {
            "highway": {"AC": 0.5, "CS": 40.0},
            "scenario_lost_cargo": {"AC": ac_cargo, "CS": cs_cargo},
        }

    runs = [("DriveVLM-RL", run(0.0, 0.0)), ("DriveVLM-RL", run(0.5, 30.0)), ("Chen-SAC", run(1.0, 80.0))]
    suites = ["highway", "scenario_lost_cargo", "scenario_cut_in"]
    columns, tables = hazard_tables(runs, suites)
    assert columns == ("lost_cargo", "cut_in") and set(tables) == {"AC", "CS"}
    assert tables["CS"]["DriveVLM-RL"][1]["lost_cargo"] == 30.0
    text = table_markdown(tables["AC"], columns, lower=columns)
    assert "| DriveVLM-RL | **0.25±0.35** | n/a |" in text  # cut_in not evaluated yet
    assert "| Chen-SAC | 1.00 | n/a |" in text
    assert hazard_tables(runs, ["highway", "unseen_routes"]) == ((), {})


def test_training_curves_png(tmp_path: Path) -> None:
    logs = {"A": _training_csvs(tmp_path, "A", 2), "B": _training_csvs(tmp_path, "B", 7)}
    png = plot_training_curves(logs, tmp_path / "curves.png", bins=20)
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[1] > 4 * image.shape[0] / 2
    assert image.std() > 10
    # Matplotlib's first two colours (C0 blue, C1 orange) draw the two methods.
    for rgb in ((31, 119, 180), (255, 127, 14)):
        assert np.any(np.all(np.abs(image.astype(int) - rgb) < 12, axis=-1)), rgb
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        plot_training_curves({"A": [tmp_path / "missing.csv"]}, tmp_path / "x.png")


def _report(tmp_path: Path) -> Path:
    curves = plot_training_curves({"A": _training_csvs(tmp_path, "A", 3)}, tmp_path / "curves.png", bins=10)
    training = {"A": [{c: 1.0 + i for c in TABLE1_COLUMNS} for i in range(3)]}
    return write_html_report(
        tmp_path / "report" / "index.html",
        "Benchmark <test>",
        {"Table 1: training": (training, TABLE1_COLUMNS), "Table 2: testing": (TESTING, TABLE2_COLUMNS)},
        images=[curves],
        notes="Two methods, two seeds.",
    )


def _progress(folder: Path, rows: list[dict[str, float]]) -> None:
    folder.mkdir(parents=True)
    with (folder / "progress.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)


def test_reward_terms_over_time_from_every_session(tmp_path: Path) -> None:
    # Session 0 was logged before time/total_steps existed; session 1 (a resume) has it; "10" sorts after "1".
    _progress(tmp_path / "logs" / "session-0", [{"reward/final": 0.2, "reward/v_des": 20.0}] * 2)
    _progress(
        tmp_path / "logs" / "session-1",
        [{"reward/final": 0.5, "reward/v_des": 18.0, "reward/gate_rate": 0.3, "time/total_steps": 3000.0}],
    )
    _progress(tmp_path / "logs" / "session-10", [{"reward/final": 0.6, "time/total_steps": 4000.0}])
    rows = read_progress(tmp_path, log_interval=1000)
    assert [r["step"] for r in rows] == [1000, 2000, 3000, 4000]
    assert [r["reward/final"] for r in rows] == [0.2, 0.2, 0.5, 0.6]
    png = plot_progress(rows, REWARD_PANELS, tmp_path / "terms.png")
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[1] > 3 * image.shape[0]  # three panels side by side: terms, v_des, gate rate
    with pytest.raises(ValueError, match="none of the columns"):
        plot_progress([{"step": 1.0, "train/actor_loss": 1.0}], REWARD_PANELS, tmp_path / "none.png")


def test_html_report_holds_tables_and_embedded_curves(tmp_path: Path) -> None:
    page = _report(tmp_path).read_text()
    assert page.count("<table>") == 2
    assert "<title>Benchmark &lt;test&gt;</title>" in page
    assert "<td><b>0.55±0.07</b></td>" in page
    assert "data:image/png;base64," in page
    with pytest.raises(FileNotFoundError, match="videos"):
        write_html_report(tmp_path / "r.html", "t", {}, videos=[tmp_path / "none.mp4"])


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="needs headless Chromium (Debian package `chromium`)")
def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = _report(tmp_path)
    browser = str(chromium())
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'p'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert dom.count("<table>") == 2, dom[:500]
    assert "DriveVLM-RL" in dom and "<caption>Table 1: training</caption>" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1200,1400", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.std() > 5, "blank screenshot"
    # The embedded curve PNG was decoded and drawn: its blue line shows up in the screenshot.
    assert np.any(np.all(np.abs(image - (31, 119, 180)) < 20, axis=-1))

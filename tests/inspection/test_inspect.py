"""Inspection of one episode: per-step CSV, images with detections, LVLM text, the HTML page and its plot."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drivevlm.config import ConfigError
from drivevlm.inspection.inspect import run_inspection
from drivevlm.inspection.report_html import svg_panel, term_columns
from drivevlm.rewards.signals import SIGNAL_FIELDS
from support.chat_server import ChatServer, Reply
from support.tiny_presets import GOAL, server_lvlm, tiny_preset

SEMANTIC_TERMS = {"r_static", "r_dynamic", "gate", "lvlm_fallback", "r_norm", "v_des", "f_speed", "f_center"}
SEMANTIC_TERMS |= {"f_angle", "f_stability", "r_shaping"}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def inspected(tiny_clip_dir: Path, tiny_rtdetr_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("inspect")
    with ChatServer([Reply(GOAL)]) as server:
        data = tiny_preset(tiny_clip_dir, tiny_rtdetr_dir, out / "cache", server_lvlm(server.base_url))
        result = run_inspection(data, "pedestrian_crossing", out / "run", steps=24, every=5, batch=8)
    return result


def test_csv_has_one_row_per_step_with_signals_terms_detections_and_texts(inspected) -> None:
    rows = read_csv(inspected.csv_path)
    assert [int(r["step"]) for r in rows] == list(range(1, 25)) and inspected.summary["steps"] == 24
    columns = set(rows[0])
    assert set(SIGNAL_FIELDS) <= columns
    assert {
        "final",
        "n_detections",
        "n_critical",
        "detections",
        "text_dynamic_goal",
        "text_lvlm_raw",
    } <= columns
    assert columns >= SEMANTIC_TERMS
    opened = [r for r in rows if float(r["gate"]) == 1.0]
    assert opened, "threshold 0 and every class critical: the gate must open"
    for row in opened:
        assert row["text_dynamic_goal"] == GOAL and row["text_lvlm_raw"] == GOAL
        assert int(row["n_critical"]) > 0 and row["detections"].count("@") == int(row["n_detections"])
    for row in rows:
        assert math.isfinite(float(row["final"])) and 0.0 <= float(row["r_norm"]) <= 1.0


def test_images_every_kth_step_with_detection_boxes_drawn(inspected) -> None:
    rows = {int(r["step"]): r for r in read_csv(inspected.csv_path)}
    with_images = sorted(step for step, r in rows.items() if r["front_png"])
    assert with_images == [5, 10, 15, 20]
    for step in with_images:
        row = rows[step]
        front = np.asarray(Image.open(inspected.out / row["front_png"]))
        drawn = np.asarray(Image.open(inspected.out / row["detections_png"]))
        bev = np.asarray(Image.open(inspected.out / row["bev_rgb_png"]))
        assert front.shape == drawn.shape == bev.shape == (96, 96, 3)
        assert int(row["n_detections"]) > 0 and not np.array_equal(front, drawn)
    assert not rows[1]["front_png"]


def test_html_references_every_image_and_plots_every_term(inspected) -> None:
    page = inspected.html_path.read_text()
    rows = read_csv(inspected.csv_path)
    images = [r[c] for r in rows for c in ("front_png", "bev_rgb_png", "detections_png") if r[c]]
    assert len(images) == 12 == inspected.summary["images"]
    for image in images:
        assert f'src="{image}"' in page and (inspected.out / image).is_file()
    labels = re.findall(r'aria-label="([^"]+) over steps"', page)
    assert labels[0] == "final" and {"r_static", "r_dynamic", "gate", "r_norm"} <= set(labels)
    assert GOAL in page and 'href="steps.csv"' in page
    assert (inspected.out / "summary.json").is_file()


def test_oracle_preset_is_labelled_and_needs_no_model(tmp_path: Path) -> None:
    result = run_inspection(
        {"env": {"rgb_size": 64}, "reward": {"preset": "drivevlm_rl_oracle"}},
        "slow_cyclist",
        tmp_path,
        steps=10,
        every=10,
    )
    rows = read_csv(result.csv_path)
    assert len(rows) == 10 and all(r["oracle"] == "1.0" for r in rows)
    assert rows[0]["n_detections"] == "" and rows[-1]["front_png"] and not rows[-1]["detections_png"]
    assert "ORACLE preset" in result.html_path.read_text() and result.summary["oracle"] is True


def test_svg_panel_skips_non_finite_values_and_shades_gate_steps() -> None:
    svg = svg_panel("r_dynamic", [1, 2, 3, 4], [0.5, math.inf, -0.25, 0.0], [False, True, True, False])
    points = re.search(r'polyline points="([^"]+)"', svg).group(1).split()
    assert len(points) == 3
    assert svg.count('fill="#fde2e2"') == 2
    assert "no finite values" in svg_panel("x", [1], [math.nan])
    assert term_columns(["step", "speed_kmh", "r_static", "final", "text_dynamic_goal", "gate"]) == [
        "final",
        "r_static",
        "gate",
    ]


def test_bad_inspection_inputs_name_the_field(tmp_path: Path) -> None:
    baseline = {"reward": {"preset": "chen"}}
    with pytest.raises(ConfigError, match="scenario: unknown value 'moon_landing'"):
        run_inspection(baseline, "moon_landing", tmp_path)
    with pytest.raises(ConfigError, match="every: must be >= 1"):
        run_inspection(baseline, "car_following", tmp_path, every=0)
    with pytest.raises(ConfigError, match="steps: must be >= 1"):
        run_inspection(baseline, "car_following", tmp_path, steps=0)

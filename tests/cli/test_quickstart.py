"""The main job end to end (trained with the oracle preset here: no models, so it fits the suite), and its
report opened in headless Chromium: the plots decode and the video plays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivevlm.cli import app
from support.browser import chromium, rendered


@pytest.mark.slow
def test_quickstart_writes_a_report_whose_plots_and_video_render(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    args = ["quickstart", "--preset", "drivevlm_rl_oracle", "--steps", "200", "--episodes", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["train_steps"] >= 200 and summary["eval_episodes"] == 1
    page = Path(summary["report"])
    assert page == out / "report.html"
    text = page.read_text()
    assert "unseen_routes" in text and text.count("data:image/png;base64,") == 2  # training, reward terms
    videos = sorted(p.name for p in (out / "run" / "videos").glob("*.webm"))
    assert videos == ["drivevlm_rl_laptop-pedestrian_crossing.webm", "run-pedestrian_crossing.webm"]
    assert all(f"run/videos/{name}" in text for name in videos)  # its policy beside the shipped one
    config = (out / "run" / "config.yaml").read_text()
    assert "applied_recipe: laptop" in config
    if chromium() is None:
        pytest.skip("needs headless Chromium (Debian package `chromium`) to check what renders")
    seen = rendered(page, tmp_path / "profile")
    assert len(seen["images"]) == 2 and all(width > 500 for width in seen["images"]), seen
    assert len(seen["videos"]) == 2, seen
    for video in seen["videos"]:
        assert video["error"] == 0 and video["ready"] >= 2 and video["width"] > 0, seen

"""`drivevlm sim` on the user's own roads: a hand-written OpenStreetMap extract as the town."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from drivevlm.cli import app

OSM = Path(__file__).parents[1] / "sim" / "data" / "small_grid.osm"


def test_render_takes_an_openstreetmap_file_as_town(tmp_path: Path) -> None:
    out = tmp_path / "render"
    args = ["sim", "render", "--town", str(OSM), "--scenario", "pedestrian_crossing", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--steps", "20", "--every", "10", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])
    # Three images at steps 0 and 10.
    assert summary["town"] == str(OSM.resolve()) and summary["frames_written"] == 6
    assert sorted(p.name for p in out.glob("00000_*.png")) == [
        "00000_bev_masks.png",
        "00000_bev_rgb.png",
        "00000_front.png",
    ]
    bad = CliRunner().invoke(app, ["sim", "render", "--town", "mars", "--out", str(out)])
    assert bad.exit_code == 2 and "or the path of a SUMO network or OpenStreetMap file" in bad.output

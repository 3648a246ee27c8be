"""`drivevlm reward calibrate|inspect` end to end: tiny real models, the 127.0.0.1 chat server, a baseline,
and bad input reported as one `error:` line with exit code 2 (no traceback)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from drivevlm.cli import app, main
from drivevlm.presets import PRESETS_DIR
from support.chat_server import ChatServer, Reply
from support.tiny_presets import GOAL, server_lvlm, tiny_preset, write_preset

runner = CliRunner()


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def run_main(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """The console script's own entry point, in process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["drivevlm", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    captured = capsys.readouterr()
    return stopped.value.code, captured.out, captured.err


def test_calibrate_json_on_tiny_models(tiny_clip_dir: Path, tiny_rtdetr_dir: Path, tmp_path: Path) -> None:
    with ChatServer([Reply(GOAL)]) as server:
        config = write_preset(
            tmp_path / "tiny.yaml",
            tiny_preset(tiny_clip_dir, tiny_rtdetr_dir, tmp_path, server_lvlm(server.base_url)),
        )
        written = tmp_path / "calibrated.yaml"
        args = ["reward", "calibrate", "--config", str(config), "--frames", "8", "--stride", "4"]
        args += ["--scenarios", "pedestrian_crossing,car_following", "--write", str(written), "--json"]
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {"r_static", "r_dynamic_gated", "combined", "gate_rate", "lvlm_fallbacks"}
    assert expected | {"suggested_theta_min", "suggested_theta_max", "current_theta"} <= set(report)
    assert report["frames"] == 8 and report["gate_rate"] > 0 and report["lvlm_fallbacks"] == 0
    saved = yaml.safe_load(written.read_text())["reward"]
    assert saved["theta_min"] == pytest.approx(report["suggested_theta_min"])
    assert saved["theta_max"] == pytest.approx(report["suggested_theta_max"])


def test_inspect_on_tiny_models_with_in_process_qwen3vl(
    tiny_clip_dir: Path, tiny_rtdetr_dir: Path, tiny_qwen3vl_dir: Path, tmp_path: Path
) -> None:
    """The LVLM is the tiny random Qwen3-VL: its text (or the fallback it forces) is recorded per step."""
    lvlm = {"backend": "qwen3vl", "model": str(tiny_qwen3vl_dir), "max_tokens": 8}
    config = write_preset(tmp_path / "tiny.yaml", tiny_preset(tiny_clip_dir, tiny_rtdetr_dir, tmp_path, lvlm))
    out = tmp_path / "out"
    args = ["reward", "inspect", "--scenario", "slow_cyclist", "--out", str(out), "--config", str(config)]
    result = runner.invoke(app, [*args, "--steps", "20", "--every", "4", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 20 and summary["gate_rate"] > 0
    with (out / "steps.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20
    opened = [r for r in rows if r["gate"] == "1.0"]
    assert opened and all(r["text_dynamic_goal"] for r in opened)
    assert all("text_lvlm_raw" in r for r in rows)
    page = (out / "index.html").read_text()
    for row in rows:
        for column in ("front_png", "bev_rgb_png", "detections_png"):
            if row[column]:
                assert f'src="{row[column]}"' in page and (out / row[column]).is_file()
    assert sum(bool(r["front_png"]) for r in rows) == 5


def test_baseline_preset_works_without_frames_or_models(tmp_path: Path) -> None:
    config = str(PRESETS_DIR / "chen_sac.yaml")
    calibrated = runner.invoke(
        app, ["reward", "calibrate", "--config", config, "--frames", "4", "--scenarios", "car_following"]
    )
    assert calibrated.exit_code == 0, calibrated.output
    assert "v_lon" in calibrated.output and "does not normalise" in calibrated.output
    out = tmp_path / "chen"
    args = ["reward", "inspect", "--scenario", "car_following", "--out", str(out), "--config", config]
    inspected = runner.invoke(app, [*args, "--steps", "12", "--every", "6", "--set", "env.rgb_size=64"])
    assert inspected.exit_code == 0, inspected.output
    with (out / "steps.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and {"v_lon", "r_steer", "final"} <= set(rows[0])
    assert rows[5]["front_png"] and not rows[5]["detections_png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reward", "inspect", "--scenario", "moon_landing", "--out", "{tmp}/x"], "scenario: unknown value"),
        (["reward", "calibrate", "--config", "{tmp}/missing.yaml"], "config: no such file"),
        (["reward", "calibrate", "--config", "{tmp}/nope.yaml"], "reward.preset: unknown preset 'nope'"),
        (["reward", "calibrate", "--config", "{chen}", "--scenarios", "car_following,moon"], "scenarios:"),
        (["reward", "calibrate", "--config", "{chen}", "--set", "env.density=jammed"], "env.density:"),
    ],
)
def test_bad_input_is_one_error_line_naming_the_field(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_preset(tmp_path / "nope.yaml", {"reward": {"preset": "nope"}})
    args = [a.format(tmp=tmp_path, chen=PRESETS_DIR / "chen_sac.yaml") for a in args]
    code, _, err = run_main(args, monkeypatch, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


MISSING_CLIP_ID = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
MISSING_CLIP = f"error: model '{MISSING_CLIP_ID}' not found; looked in:"


@pytest.mark.slow
def test_a_real_model_id_without_weights_fails_with_the_model_not_found_message(tmp_path: Path) -> None:
    """The console entry point in a fresh process: a real model id, offline, no such weights here."""
    env = {**os.environ, "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("HF_HOME", None)
    real_clip = ["--set", "models.clip.backend=transformers", "--set", f"models.clip.model={MISSING_CLIP_ID}"]
    args = ["reward", "calibrate", "--config", "drivevlm_rl", "--frames", "2", *real_clip]
    done = subprocess.run(
        [sys.executable, "-c", "from drivevlm.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr and lines[0].startswith(MISSING_CLIP)


def test_inspect_with_the_built_in_default_preset_names_the_missing_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["reward", "inspect", "--scenario", "pedestrian_crossing", "--out", str(tmp_path / "out")]
    code, out, err = run_main(args, monkeypatch, capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(MISSING_CLIP) and "huggingface" in lines[0]

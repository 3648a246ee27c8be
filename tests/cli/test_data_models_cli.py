"""`drivevlm data generate` and `drivevlm models train|eval` end to end on a tiny data set (seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivevlm.cli import app
from drivevlm.data.dataset import load_split
from drivevlm.models.clip.aligned import AlignedClipEncoder
from drivevlm.models.detectors.tiny import TinyDetector

runner = CliRunner()


def last_json(output: str) -> dict:
    """The command's last stdout line, parsed as strict JSON (no NaN)."""
    return json.loads(output.strip().splitlines()[-1], parse_constant=lambda name: pytest.fail(name))


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cli") / "data"
    args = ["data", "generate", "--out", str(out), "--frames", "40", "--size", "64", "--seed", "3"]
    args += ["--max-episode-steps", "16", "--scenarios", "pedestrian_crossing,slow_cyclist", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, last_json(result.stdout)


def test_generate_writes_both_splits(tiny_set: tuple[Path, dict]) -> None:
    out, summary = tiny_set
    assert summary["train_frames"] > 0 and summary["heldout_frames"] > 0
    assert summary["frames"] == summary["train_frames"] + summary["heldout_frames"] >= 40
    frames = load_split(out, "heldout")
    assert frames.front.shape[1:] == (64, 64, 3) and len(frames) == summary["heldout_frames"]
    assert {r["town"] for r in frames.records}.isdisjoint({"grid"})


def test_generate_refuses_an_existing_data_set(tiny_set: tuple[Path, dict]) -> None:
    out, _ = tiny_set
    result = runner.invoke(app, ["data", "generate", "--out", str(out), "--frames", "10"])
    assert result.exit_code == 2 and "already holds a data set" in result.output


def test_merge_joins_two_sets_and_names_what_is_wrong(tiny_set: tuple[Path, dict], tmp_path: Path) -> None:
    out, summary = tiny_set
    other = tmp_path / "other"
    args = ["data", "generate", "--out", str(other), "--frames", "12", "--size", "64", "--seed", "4"]
    assert runner.invoke(app, [*args, "--max-episode-steps", "12", "--towns", "grid"]).exit_code == 0
    result = runner.invoke(
        app, ["data", "merge", "--out", str(tmp_path / "both"), str(out), str(other), "--json"]
    )
    assert result.exit_code == 0, result.output
    merged = last_json(result.stdout)
    assert merged["frames"] == summary["frames"] + len(load_split(other, "train"))
    result = runner.invoke(app, ["data", "merge", "--out", str(tmp_path / "again"), str(out), str(out)])
    assert result.exit_code == 2 and "error: merge:" in result.output and "more than one set" in result.output


def test_generate_rejects_bad_frames(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "generate", "--out", str(tmp_path / "d"), "--frames", "0"])
    assert result.exit_code == 2 and "frames" in result.output


def test_train_then_eval_clip_and_detector(tiny_set: tuple[Path, dict], tmp_path: Path) -> None:
    data, _ = tiny_set
    out = tmp_path / "models"
    args = ["models", "train", "--data", str(data), "--out", str(out), "--models", "clip,detector"]
    args += ["--clip-epochs", "1", "--detector-epochs", "1", "--detector-pin-threshold", "0.25"]
    classes = "person,bicycle,car,motorcycle,obstacle,warning_triangle"
    trained = runner.invoke(app, [*args, "--detector-classes", classes, "--threads", "1", "--json"])
    assert trained.exit_code == 0, trained.output
    summary = last_json(trained.stdout)
    assert summary["aligned_clip"]["epochs"] == 1 and summary["tiny_detector"]["epochs"] == 1
    # What was written loads through the real backends.
    AlignedClipEncoder(out / "aligned_clip")
    detector = TinyDetector(out / "tiny_detector")
    assert detector.threshold == 0.25 and detector.classes[-2:] == ("obstacle", "warning triangle")
    wrong = runner.invoke(app, [*args, "--detector-classes", "person,debris"])
    assert wrong.exit_code == 2 and "--detector-classes: 'debris' is not a COCO class name" in wrong.output
    twice = runner.invoke(app, [*args, "--detector-classes", "person,car,person"])
    assert (
        twice.exit_code == 2 and "--detector-classes: need one or more distinct class names" in twice.output
    )
    evaluated = runner.invoke(
        app,
        ["models", "eval", "--data", str(data), "--root", str(out), "--models", "clip,detector", "--json"],
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = last_json(evaluated.stdout)
    assert report["data"]["frames"] == tiny_set[1]["frames"]
    assert report["aligned_clip"]["frames"] == tiny_set[1]["heldout_frames"]
    assert 0.0 <= report["tiny_detector"]["vru_recall_30m"] <= 1.0
    assert set(report["aligned_clip"]) >= {"bev", "front", "meets_bar"}


def test_eval_of_the_bundled_models_on_given_data(tiny_set: tuple[Path, dict]) -> None:
    data, _ = tiny_set
    result = runner.invoke(app, ["models", "eval", "--data", str(data), "--models", "detector", "--json"])
    assert result.exit_code == 0, result.output
    report = last_json(result.stdout)
    assert report["root"].endswith("bundled") and "aligned_clip" not in report
    assert report["tiny_detector"]["frames"] == tiny_set[1]["heldout_frames"]
    args = ["models", "eval", "--data", str(data), "--models", "detector", "--detector-threshold"]
    at_half = runner.invoke(app, [*args, "0.5", "--json"])
    assert at_half.exit_code == 0, at_half.output
    assert last_json(at_half.stdout)["tiny_detector"]["threshold"] == 0.5
    wrong = runner.invoke(app, [*args, "1.5"])
    assert wrong.exit_code == 2 and "--detector-threshold" in wrong.output
    args = ["models", "eval", "--data", str(data), "--models", "detector", "--detector-precision"]
    fast = runner.invoke(app, [*args, "bfloat16", "--json"])
    assert fast.exit_code == 0, fast.output
    assert last_json(fast.stdout)["tiny_detector"]["dtype"] == "bfloat16"
    wrong = runner.invoke(app, [*args, "half"])
    assert wrong.exit_code == 2 and "--detector-precision" in wrong.output


def test_eval_generates_held_out_frames_of_the_chosen_size() -> None:
    args = ["models", "eval", "--models", "detector", "--frames", "6", "--size", "96", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = last_json(result.stdout)
    assert report["data"]["frames"] >= 6 and report["data"]["size"] == 96


def test_train_and_eval_the_tiny_vlm(tmp_path: Path) -> None:
    out = tmp_path / "models"
    args = ["models", "train", "--out", str(out), "--models", "vlm", "--vlm-steps", "2"]
    args += ["--vlm-windows", "6", "--vlm-batch-size", "2", "--threads", "1", "--json"]
    trained = runner.invoke(app, args)
    assert trained.exit_code == 0, trained.output
    assert last_json(trained.stdout)["tiny_qwen3vl"]["steps"] == 2
    evaluated = runner.invoke(
        app, ["models", "eval", "--root", str(out), "--models", "vlm", "--vlm-windows", "4", "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    result = last_json(evaluated.stdout)["tiny_qwen3vl"]
    assert result["windows"] >= 1 and 0.0 <= result["category_accuracy"] <= 1.0
    assert result["meets_bar"] == (result["category_accuracy"] >= 0.85)
    # Held-out windows of the motorway's debris, more of them than chance would give.
    args = ["models", "eval", "--root", str(out), "--models", "vlm", "--vlm-windows", "4", "--json"]
    args += ["--vlm-scenarios", "lost_cargo", "--vlm-keep-categories", "obstacle_near,obstacle_far"]
    evaluated = runner.invoke(app, args)
    assert evaluated.exit_code == 0, evaluated.output
    scored = last_json(evaluated.stdout)["tiny_qwen3vl"]["per_category"]
    assert {"obstacle_near", "obstacle_far"} & set(scored)
    first = out / "tiny_qwen3vl"
    args = ["models", "train", "--out", str(tmp_path / "again"), "--models", "vlm", "--vlm-steps", "1"]
    args += ["--vlm-windows", "4", "--vlm-batch-size", "2", "--threads", "1", "--json"]
    args += ["--vlm-frame-size", "64", "--vlm-labels", "field_of_view"]
    args += ["--vlm-init", str(first), "--vlm-flip", "--vlm-lr", "1e-4", "--vlm-save-every", "1"]
    continued = runner.invoke(app, args)
    assert continued.exit_code == 0, continued.output
    summary = last_json(continued.stdout)["tiny_qwen3vl"]
    assert (summary["init"], summary["flip"], summary["learning_rate"]) == (str(first), True, 1e-4)
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["tiny_qwen3vl"]  # resume point gone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "train", "--models", "clip,resnet"], "unknown model 'resnet'"),
        (["models", "train", "--models", "clip"], "pass --data"),
        (["models", "train", "--models", "vlm", "--vlm-steps", "1", "--vlm-labels", "all"], "--vlm-labels"),
        (
            ["models", "train", "--models", "vlm", "--vlm-steps", "1", "--vlm-frame-size", "100"],
            "--vlm-frame-size",
        ),
        (
            ["models", "train", "--models", "vlm", "--vlm-steps", "1", "--vlm-vision-hidden", "63"],
            "--vlm-vision-hidden",
        ),
        (["models", "train", "--models", "vlm"], "--vlm-steps"),
        (
            ["models", "train", "--models", "vlm", "--vlm-steps", "1", "--vlm-save-every", "-1"],
            "--vlm-save-every",
        ),
        (
            ["models", "train", "--models", "detector", "--detector-pin-threshold", "2"],
            "--detector-pin-threshold",
        ),
        (
            ["models", "eval", "--models", "detector", "--root", "/nonexistent"],
            "no tiny_detector/config.json",
        ),
    ],
)
def test_bad_options_name_the_option(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output, result.output

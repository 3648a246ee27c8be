"""`drivevlm evaluate | export | drive | report | benchmark` through the real command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from drivevlm.cli import app
from support.browser import chromium, rendered
from support.tiny_runs import make_tiny_run

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("runs") / "run")


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_evaluate_json_and_table(tiny_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(tiny_run, tmp_path / "run")
    code, out, _ = _run(
        "evaluate", run, "--suite", "unseen_routes", "--episodes", "2", "--max-steps", "60", "--json"
    )
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["episodes"] == 2 and result["suite"] == "unseen_routes"
    assert "SR" in result["metrics"] and "DS" in result["metrics"]
    assert "AS" in out and "written:" in out
    assert (run / "eval" / "unseen_routes.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "nope"], "suite: unknown value 'nope'; allowed: unseen_routes"),
        (["--episodes", "0"], "episodes: must be >= 1"),
    ],
)
def test_evaluate_bad_input_is_one_line_and_exit_2(tiny_run: Path, args: list[str], message: str) -> None:
    code, _, err = _run("evaluate", tiny_run, *args, "--out", tiny_run.parent / "bad")
    assert code == 2
    assert err.strip().count("\n") == 0 and message in err


def test_evaluate_without_checkpoint(tiny_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(tiny_run, tmp_path / "run")
    shutil.rmtree(run / "checkpoints")
    code, _, err = _run("evaluate", run)
    assert code == 2 and "has no checkpoint" in err and err.strip().count("\n") == 0


def test_export_then_drive_the_policy_file(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.onnx"
    code, out, _ = _run("export", tiny_run, "--format", "onnx", "--out", policy, "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["policy"] == str(policy)
    assert policy.is_file() and (tmp_path / "policy.onnx.spec.json").is_file()
    video = tmp_path / "drive.mp4"
    env = ["--set", "env.bev_size=32", "--set", "env.route_waypoints=4", "--set", "env.rgb_size=64"]
    code, out, err = _run(
        "drive",
        "--policy",
        policy,
        "--scenario",
        "slow_cyclist",
        "--steps",
        "20",
        "--video",
        video,
        *env,
        "--json",
    )
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["frames"] == 21
    assert int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT)) == 21
    # Export records the policy's env beside it, so the file drives on its own ...
    assert (tmp_path / "policy.onnx.env.yaml").is_file()
    code, out, err = _run(
        "drive", "--policy", policy, "--steps", "5", "--video", tmp_path / "x.webm", "--json"
    )
    assert code == 0, err
    # ... and an env it was not trained for is refused: 96 px masks for a 32 px policy.
    code, _, err = _run(
        "drive", "--policy", policy, "--set", "env.bev_size=96", "--video", tmp_path / "y.webm"
    )
    assert code == 2 and "does not match the environment" in err and "(12, 32, 32)" in err
    # A shipped policy goes by its name: a folder in the package's policies/ with the same files.
    shipped = tmp_path / "shipped"
    (shipped / "tiny").mkdir(parents=True)
    for name in ("policy.onnx", "policy.onnx.spec.json", "policy.onnx.env.yaml"):
        shutil.copy(tmp_path / name, shipped / "tiny" / name)
    monkeypatch.setattr("drivevlm.policies.POLICIES_DIR", shipped)
    code, out, err = _run(
        "drive", "--policy", "tiny", "--steps", "5", "--video", tmp_path / "z.webm", "--json"
    )
    assert code == 0, err
    code, _, err = _run("evaluate", "--policy", "tiny", "--episodes", "1")
    assert code == 2 and "out_dir (--out): needed when evaluating a policy without a run folder" in err
    code, _, err = _run("drive", "--policy", "huge", "--video", tmp_path / "z.webm")
    assert code == 2 and "file not found: huge (shipped policies in" in err and ": tiny)" in err
    code, _, err = _run("export", tiny_run, "--format", "tflite")
    assert code == 2 and "format: unknown value 'tflite'" in err


def test_drive_from_run_and_unknown_scenario(tiny_run: Path, tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    code, out, _ = _run(
        "drive", tiny_run, "--scenario", "cyclist_merge", "--steps", "10", "--video", video, "--json"
    )
    assert code == 0 and json.loads(out.splitlines()[-1])["town"] == "tee"
    code, _, err = _run("drive", tiny_run, "--scenario", "flying_car")
    assert code == 2 and "scenario: unknown value 'flying_car'" in err


def test_report_opens_in_a_headless_browser(tiny_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(tiny_run, tmp_path / "run")
    assert _run("evaluate", run, "--episodes", "1", "--max-steps", "30")[0] == 0
    code, out, err = _run("report", run, "--videos", "1", "--video-steps", "20", "--json")
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])
    page = Path(result["report"])
    assert len(result["videos"]) == 1 and Path(result["videos"][0]).is_file()
    text = page.read_text()
    assert "<table>" in text and "unseen_routes" in text and "videos/run-pedestrian_crossing.webm" in text
    if chromium() is None:
        pytest.skip("no headless browser installed")
    (video,) = rendered(page, tmp_path / "profile")["videos"]
    assert video["error"] == 0 and video["ready"] >= 2 and video["width"] > 0


def test_report_videos_show_another_policy_on_the_same_episode(tiny_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(tiny_run, tmp_path / "run")
    assert _run("evaluate", run, "--episodes", "1", "--max-steps", "10")[0] == 0
    policy = tmp_path / "other.onnx"
    assert _run("export", tiny_run, "--out", policy)[0] == 0
    code, out, err = _run("report", run, "--videos", "1", "--video-steps", "10", "--beside", policy, "--json")
    assert code == 0, err
    videos = sorted(Path(v).name for v in json.loads(out.splitlines()[-1])["videos"])
    assert videos == ["other-pedestrian_crossing.webm", "run-pedestrian_crossing.webm"]


def test_report_on_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    code, _, err = _run("report", tmp_path)
    assert code == 2 and "neither a benchmark folder" in err


TINY_TRAIN = [
    "train.sac.learning_starts=64", "train.sac.batch_size=32", "train.sac.train_freq=32",
    "train.sac.gradient_steps=4", "train.sac.net_arch=[32,32]", "train.sac.buffer_size=2000",
    "train.policy.cnn_channels=[4,8]", "train.policy.cnn_kernels=[5,3]", "train.policy.cnn_strides=[4,2]",
    "train.policy.bev_features=16", "train.checkpoint_interval=128", "train.log_interval=100",
    "train.device=cpu", "env.bev_size=32", "env.max_episode_steps=150",
]  # fmt: skip


@pytest.mark.slow
def test_benchmark_trains_evaluates_resumes_and_writes_tables(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    sets = [arg for s in TINY_TRAIN for arg in ("--set", s)]
    args = ["benchmark", "--methods", "chen_sac,tirl_sac", "--seeds", "2", "--steps", "320",
            "--episodes", "2", "--eval-max-steps", "100", "--jobs", "2", "--out", out, *sets,
            "--suite", "unseen_routes", "--json"]  # fmt: skip
    code, out_text, err = _run(*args)
    assert code == 0, err + out_text
    summary = json.loads(out_text.splitlines()[-1])
    assert summary["failed"] == []
    table1 = (out / "table1_training.md").read_text()
    table2 = (out / "table2_testing.md").read_text()
    assert "| Chen-SAC |" in table1 and "| TIRL-SAC |" in table1 and "| ICT |" in table1
    assert "| SR |" in table2 and "±" in table2
    assert (out / "table1_training.csv").read_text().startswith("method,seeds,AS_mean")
    assert (out / "training_curves.png").stat().st_size > 1000
    bench = json.loads((out / "benchmark.json").read_text())
    assert len(bench["runs"]) == 4
    run = out / "runs" / "chen_sac" / "seed-1"
    assert json.loads((run / "summary.json").read_text())["steps"] >= 320
    assert bench["runs"]["chen_sac/seed-1"]["training_episodes"] >= 1
    # A second call finds every run finished and only rewrites the tables.
    code, out_text, _ = _run(*args)
    assert code == 0 and out_text.count("skip ") == 4
    # Asking for more suites evaluates the trained runs on them (no training) and adds their tables.
    before = (run / "summary.json").read_text()
    more = [*args[:-3], "--suite", "unseen_routes,scenario_pedestrian_crossing", "--json"]
    code, out_text, err = _run(*more)
    assert code == 0, err + out_text
    assert (run / "summary.json").read_text() == before
    assert "| VCR | VCS |" in (out / "testing_scenario_pedestrian_crossing.md").read_text()
    assert "| VCR | VCS | SR |" in (out / "vru_collisions.md").read_text()
    bench = json.loads((out / "benchmark.json").read_text())
    suites = set(bench["runs"]["tirl_sac/seed-0"]["suites"])
    assert suites == {"unseen_routes", "scenario_pedestrian_crossing"} and bench["missing"] == []
    # The benchmark's HTML page: a testing table per suite and the pooled VRU collisions.
    code, out_text, err = _run("report", out, "--videos", "0")
    assert code == 0, err + out_text
    page = (out / "report.html").read_text()
    assert "Testing on scenario_pedestrian_crossing" in page and "all VRU suites pooled" in page
    # --tables-only starts nothing and names what is missing: here a third seed.
    third = [*more[:-1], "--tables-only", "--json"]
    third[third.index("--seeds") + 1] = "3"
    code, out_text, err = _run(*third)
    assert code == 0, err + out_text
    assert not (out / "runs" / "tirl_sac" / "seed-2").exists()
    assert json.loads(out_text.splitlines()[-1])["missing"] == [
        "chen_sac/seed-2: trained 0 of 320 steps",
        "tirl_sac/seed-2: trained 0 of 320 steps",
    ]
    # The tables rebuild from each run's small files alone (metrics.json beside eval/<suite>.json), e.g.
    # from results gathered off other machines without their per-step logs.
    names = ("table1_training.md", "table2_testing.md", "vru_collisions.md")
    tables = {name: (out / name).read_text() for name in names}
    logs = list(out.glob("runs/*/seed-*/**/*.jsonl"))
    assert logs and all(
        (out / "runs" / m / f"seed-{i}" / "metrics.json").is_file()
        for m in ("chen_sac", "tirl_sac")
        for i in (0, 1)
    )
    for path in logs:
        path.unlink()
    code, out_text, err = _run(*third)
    assert code == 0, err + out_text
    assert {name: (out / name).read_text() for name in names} == tables
    bad = _run("benchmark", "--methods", "no_such_method", "--out", tmp_path / "b2")
    assert bad[0] == 2 and "methods: unknown value 'no_such_method'" in bad[2]


@pytest.mark.slow
def test_highway_benchmark_writes_collisions_per_hazard(tmp_path: Path) -> None:
    out = tmp_path / "highway"
    # The experiment's own methods and suites when none are named; --tables-only plans without training.
    code, out_text, err = _run("benchmark", "--experiment", "highway", "--seeds", "1", "--steps", "320",
                               "--out", out, "--tables-only", "--json")  # fmt: skip
    assert code == 0, err + out_text
    missing = json.loads(out_text.splitlines()[-1])["missing"]
    planned = [line.split(":")[0] for line in missing]
    assert planned == ["drivevlm_rl/seed-0", "vlm_rl/seed-0", "chen_sac/seed-0"]
    sets = [arg for s in TINY_TRAIN for arg in ("--set", s)]
    code, out_text, err = _run("benchmark", "--experiment", "highway", "--methods", "chen_sac",
                               "--seeds", "1", "--steps", "320", "--episodes", "1", "--eval-max-steps", "60",
                               "--out", out, "--suite", "scenario_lost_cargo,scenario_cut_in",
                               *sets)  # fmt: skip
    assert code == 0, err + out_text
    assert "| Chen-SAC |" in (out / "highway_training.md").read_text()
    assert "Testing on scenario_lost_cargo" in (out / "highway_testing.md").read_text()
    rate = (out / "hazard_AC.md").read_text()
    assert "| Method | lost_cargo | cut_in |" in rate and "| Chen-SAC |" in rate
    assert (out / "hazard_CS.csv").read_text().startswith("method,seeds,lost_cargo_mean")
    config = (out / "runs" / "chen_sac" / "seed-0" / "config.yaml").read_text()
    assert "town: highway" in config

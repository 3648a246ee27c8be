"""Suite evaluation of a real (tiny, briefly trained) SAC run folder and of its exported ONNX policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from drivevlm.config import EnvConfig
from drivevlm.eval import metrics
from drivevlm.eval.episode_log import load_episode_logs
from drivevlm.eval.evaluate import NO_PROGRESS_REASON, evaluate_run, evaluate_suite, evaluation_config
from drivevlm.eval.runs import RunError, load_driver
from drivevlm.eval.suites import get_suite
from support.tiny_runs import make_tiny_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("runs") / "run")


def test_evaluate_run_writes_metrics_and_episode_logs(tiny_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(tiny_run, tmp_path / "run")
    result = evaluate_run(run, "density_dense", 3, max_episode_steps=120)
    written = json.loads((run / "eval" / "density_dense.json").read_text())
    assert written["metrics"] == pytest.approx(result["metrics"])
    logs = load_episode_logs(run / "eval" / "density_dense.episodes.jsonl")
    assert len(logs) == 3
    assert metrics.testing_metrics(logs) == pytest.approx(written["metrics"])
    assert set(written["metrics"]) >= {"AS", "RC", "TD", "CS", "SR", "AC", "DS", "IPK"}
    assert [e["route_index"] for e in written["per_episode"]] == [0, 1, 2]
    assert all(e["density"] == "dense" for e in written["per_episode"])
    assert all(log.steps <= 120 for log in logs)


def test_evaluation_uses_the_papers_rules_whatever_training_used() -> None:
    trained = EnvConfig(stopped_seconds=20.0, training=True, render_frames=True)
    evaluated = evaluation_config(trained, max_episode_steps=1500)
    assert evaluated.stopped_seconds == 90.0 and evaluated.training is False
    assert evaluated.render_frames is False and evaluated.max_episode_steps == 1500


def test_a_policy_that_never_moves_is_stopped_after_150_steps() -> None:
    config = EnvConfig(density="empty", bev_size=32, route_waypoints=4, training=False)
    result = evaluate_suite(lambda obs: np.array([0.0, -1.0]), config, get_suite("unseen_routes", episodes=2))
    assert [log.termination_reason for log in result.logs] == [NO_PROGRESS_REASON] * 2
    assert [log.steps for log in result.logs] == [150, 150]
    assert result.metrics["SR"] == 0.0


def test_evaluation_is_deterministic_and_onnx_drives_the_same(tiny_run: Path, tmp_path: Path) -> None:
    from drivevlm.deploy.export import export_policy
    from drivevlm.env import DriveEnv

    driver = load_driver(tiny_run)
    suite = get_suite("scenario_pedestrian_crossing", episodes=1)
    config = driver.env_config.model_copy(update={"training": False, "max_episode_steps": 80})
    first = evaluate_suite(driver.act, config, suite)
    second = evaluate_suite(driver.act, config, suite)
    np.testing.assert_array_equal(first.logs[0].speed_kmh, second.logs[0].speed_kmh)
    env = DriveEnv(config)
    policy_file = export_policy(
        driver.policy, driver.policy.observation_space, tmp_path / "p.onnx", "onnx", env.mask_channels, 4
    )
    exported = load_driver(tiny_run, policy_file)
    onnx = evaluate_suite(exported.act, config, suite)
    np.testing.assert_allclose(onnx.logs[0].speed_kmh, first.logs[0].speed_kmh, atol=1e-3)


def test_bad_run_folders_and_policy_files(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"no config\.yaml"):
        evaluate_run(tmp_path, "unseen_routes", 1)
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "checkpoints" / "latest.json").unlink()
    with pytest.raises(RunError, match="has no checkpoint"):
        evaluate_run(run, "unseen_routes", 1)
    with pytest.raises(RunError, match="policy: file not found"):
        load_driver(tiny_run, tmp_path / "missing.onnx")
    with pytest.raises(RunError, match=r"observation\['bev'\]: the checkpoint was trained on shape"):
        evaluate_run(tiny_run, "unseen_routes", 1, overrides=["env.bev_size=48"], out_dir=tmp_path / "o")

"""Validation during training: every checkpoint's policy drives the validation episodes in a background
process, the best one becomes the run's `best` policy, and evaluation drives it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from drivevlm.eval.runs import RunError, best_policy, load_driver, run_policy_file
from drivevlm.train.trainer import train
from drivevlm.train.validation import VALIDATION_DIR, Validator, read_results, validation_score
from support.tiny_runs import TINY_ENV, TINY_POLICY


def test_score_is_route_completion_with_crashes_counting_zero() -> None:
    logs = [
        SimpleNamespace(collided=False, routes_completed=1.0),
        SimpleNamespace(collided=True, routes_completed=0.9),
        SimpleNamespace(collided=False, routes_completed=0.5),
    ]
    assert validation_score(logs) == pytest.approx(0.5)  # type: ignore[arg-type]
    assert validation_score([]) == 0.0


def test_each_checkpoint_is_validated_and_the_best_one_drives(tmp_path: Path) -> None:
    sac = {"buffer_size": 500, "batch_size": 16, "train_freq": 16, "gradient_steps": 2, "learning_starts": 32}
    config = {
        "env": {**TINY_ENV, "max_episode_steps": 40, "seed": 0},
        "reward": {"preset": "tirl"},
        "train": {
            "total_timesteps": 128,
            "checkpoint_interval": 64,
            "seed": 0,
            "sac": {**sac, "net_arch": [16, 16]},
            "policy": TINY_POLICY,
            "validation": {"episodes": 2, "seed": 5000},
        },
    }
    run = tmp_path / "run"
    summary = train(config, run)
    records = read_results(run)
    # The checkpoint at 64 steps and the final one at 128 (not also a periodic one: written once).
    assert [r["step"] for r in records] == [64, 128]
    assert all({"RC", "SR", "AS"} <= set(r["metrics"]) for r in records)
    best = max(records[::-1], key=lambda r: r["score"])  # ties go to the later checkpoint
    name = f"step-{best['step']:010d}"
    assert summary["validation"] == {
        "validations": 2,
        "failures": 0,
        "best": {**best, "policy": f"{name}.zip"},
    }
    chosen = run / "checkpoints" / name / "model.zip"
    assert best_policy(run) == run / "best" / f"{name}.zip" and len(list((run / "best").glob("*.zip"))) == 1
    assert best_policy(run).read_bytes() == chosen.read_bytes()  # type: ignore[union-attr]
    assert not list((run / VALIDATION_DIR).glob("*.zip")), "the copies validated are removed"
    assert load_driver(run).source == str(run / "best")
    assert load_driver(run, checkpoint="latest").source == str(run / "checkpoints" / "step-0000000128")


def test_a_run_without_validation_has_no_best_and_a_failed_validation_is_counted(tmp_path: Path) -> None:
    from support.tiny_runs import make_tiny_run

    run = make_tiny_run(tmp_path / "run", steps=32)
    assert run_policy_file(run) == run_policy_file(run, "latest")
    with pytest.raises(RunError, match="no validated policy"):
        run_policy_file(run, "best")
    with pytest.raises(RunError, match="checkpoint: expected auto, best or latest"):
        run_policy_file(run, "first")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.zip").write_bytes(b"not a zip")
    validator = Validator(run, episodes=1, seed=0)
    validator.submit(broken, 32)
    result = validator.finish()
    assert result == {"validations": 0, "failures": 1, "best": None}
    log = run / VALIDATION_DIR / "step-0000000032.log"
    assert "wasn't a zip-file" in log.read_text(), "the failed validation's log stays, saying why"
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["num_timesteps"] == 32

"""EpisodeRecorder against the real env's step infos, log files and the training CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivevlm.eval import metrics as m
from drivevlm.eval.episode_log import (
    EpisodeLog,
    EpisodeRecorder,
    TrainingCurveLog,
    load_episode_logs,
    read_training_log,
    save_episode_logs,
)


def _info(
    speed: float,
    distance: float,
    completion: float,
    collision: bool = False,
    red: bool = False,
    **extra: object,
) -> dict:
    metrics = {
        "speed_kmh": speed,
        "distance_m": distance,
        "collision": float(collision),
        "collision_speed_kmh": speed if collision else 0.0,
        "route_completion": completion,
        "lane_invasion": 0.0,
        "red_light": float(red),
    }
    return {"metrics": metrics, "collision_kind": "bicycle" if collision else None, **extra}


def test_recorder_builds_the_log_and_ends_on_episode_metrics() -> None:
    rec = EpisodeRecorder()
    assert rec.record(_info(10, 1, 0.1, red=True), reward=0.5) is None
    end = {"reason": "collision", "success": False}
    log = rec.record(_info(20, 3, 0.2, collision=True, episode_metrics=end), reward=-10)
    assert log is not None
    assert log.steps == 2
    assert log.collision_kind == ("", "bicycle")
    assert log.collision_speed_kmh.tolist() == [0.0, 20.0]
    assert log.termination_reason == "collision"
    assert log.episode_reward == pytest.approx(-9.5)
    assert log.red_light.tolist() == [True, False] and log.red_light_count == 1
    assert rec.steps == 0


def test_recorder_rejects_reset_infos_and_can_be_finished_early() -> None:
    rec = EpisodeRecorder()
    with pytest.raises(ValueError, match="metrics"):
        rec.record({"spec": None})
    with pytest.raises(ValueError, match="finish"):
        rec.finish("no_progress")
    rec.record(_info(0, 0, 0))
    log = rec.finish("no_progress")
    assert log.termination_reason == "no_progress" and not log.success
    assert len(log.rewards) == 0


def test_recorder_matches_the_env_episode_metrics() -> None:
    from drivevlm.env import DriveEnv

    env = DriveEnv({"max_episode_steps": 40})
    try:
        env.reset(seed=3)
        rec = EpisodeRecorder()
        log = None
        while log is None:
            _, reward, _, _, info = env.step(np.array([0.0, 0.6], dtype=np.float32))
            log = rec.record(info, reward)
        summary = info["episode_metrics"]
    finally:
        env.close()
    assert log.steps == summary["steps"]
    assert log.distance_total_m == pytest.approx(summary["distance_m"])
    assert m.average_speed([log]) == pytest.approx(summary["average_speed_kmh"])
    assert log.routes_completed == pytest.approx(summary["route_completion"])
    assert log.collided == summary["collided"]
    assert log.termination_reason == summary["reason"]
    assert log.red_light_count == summary["red_lights"]


def test_logs_round_trip_through_jsonl(tmp_path: Path) -> None:
    logs = [
        EpisodeLog.from_steps(
            [1.0, 2.0],
            [0.5, 1.0],
            collision=[False, True],
            collision_kind=["", "car"],
            collision_speed_kmh=[0, 2],
            termination_reason="collision",
            rewards=[1, -10],
            red_light=[True, False],
        ),
        EpisodeLog.from_steps([3.0], [1.0], success=True, termination_reason="route_finished"),
    ]
    path = save_episode_logs(tmp_path / "eval" / "episodes.jsonl", logs)
    back = load_episode_logs(path)
    assert [b.to_dict() for b in back] == [log.to_dict() for log in logs]
    assert not list(path.parent.glob("*.tmp"))
    path.write_text('{"format_version": 99}\n')
    with pytest.raises(ValueError, match="format_version"):
        load_episode_logs(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        load_episode_logs(tmp_path / "missing.jsonl")


def test_mismatched_columns_name_the_field() -> None:
    with pytest.raises(ValueError, match="distance_m"):
        EpisodeLog.from_steps([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="red_light"):
        EpisodeLog.from_steps([1.0, 2.0], [1.0, 2.0], red_light=[True])


def test_training_curve_log_appends_resumes_and_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "train_log.csv"
    curve = TrainingCurveLog(path, window=2)
    crash = EpisodeLog.from_steps(
        [10.0], [3.0], collision=[True], collision_kind=["car"], collision_speed_kmh=[10]
    )
    clean = EpisodeLog.from_steps([20.0, 20.0], [5.0, 10.0], route_completion=[0.5, 1.0], rewards=[1.0, 2.0])
    curve.append(1, crash)
    curve.append(3, clean)
    resumed = TrainingCurveLog(path, window=2)
    row = resumed.append(5, clean)
    assert row["episode"] == 2
    assert row["collision_rate"] == 0.0  # the last two episodes were both clean
    with path.open("a") as handle:
        handle.write("7,3,1.0")  # a crash mid-write
    rows = read_training_log(path)
    assert [r["step"] for r in rows] == [1, 3, 5]
    assert [r["collision_rate"] for r in rows] == [1.0, 0.5, 0.0]
    assert rows[1]["episode_reward"] == 3.0 and rows[1]["average_speed_kmh"] == 20.0
    # No rewards recorded (training: the annotator scores the steps later) is "unknown", not a zero return.
    assert np.isnan(rows[0]["episode_reward"])

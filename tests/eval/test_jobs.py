"""Benchmark jobs: planning order and the lock that keeps one job from running twice."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drivevlm.config import ConfigError
from drivevlm.eval import jobs as jobs_module
from drivevlm.eval.jobs import EXPERIMENTS, LOCKED_EXIT, plan_jobs, run_jobs, running_elsewhere


def test_jobs_are_planned_seed_by_seed_with_every_suite(tmp_path: Path) -> None:
    planned = plan_jobs(tmp_path, ["tirl_sac", "chen_sac"], 2, 100, ["unseen_routes", "vru"], 1)
    assert [(job.method, job.seed) for job in planned] == [
        ("tirl_sac", 0),
        ("chen_sac", 0),
        ("tirl_sac", 1),
        ("chen_sac", 1),
    ]
    assert planned[0].suites[0] == "unseen_routes" and len(planned[0].suites) == 6


def test_the_highway_experiment_trains_its_methods_on_the_motorway(tmp_path: Path) -> None:
    spec = EXPERIMENTS["highway"]
    planned = plan_jobs(tmp_path, spec.methods, 1, 100, spec.suites.split(","), 1, experiment="highway")
    assert [job.method for job in planned] == ["drivevlm_rl", "vlm_rl", "chen_sac"]
    assert planned[0].suites[0] == "highway" and "scenario_lost_cargo" in planned[0].suites
    for job in planned:
        assert job.config["env"]["town"] == "highway" and "cut_in" in job.config["env"]["scenario_mix"]
    chen = planned[2].config["reward"]
    assert chen["preset"] == "chen" and chen["chen_fast_kmh"] == pytest.approx(100 * 28.8 / 25)
    with pytest.raises(ConfigError, match=r"'tirl_sac' for experiment 'highway'.*allowed: chen_sac, drive"):
        plan_jobs(tmp_path, ["tirl_sac"], 1, 100, ["highway"], 1, experiment="highway")
    with pytest.raises(ConfigError, match="experiment: unknown value 'moon'; allowed: main, no_coll"):
        plan_jobs(tmp_path, ["chen_sac"], 1, 100, ["highway"], 1, experiment="moon")


def test_a_job_running_in_another_process_is_left_to_it(tmp_path: Path) -> None:
    (job,) = plan_jobs(tmp_path, ["tirl_sac"], 1, 100, ["unseen_routes"], 1)
    assert not running_elsewhere(job)
    held = jobs_module._try_lock(Path(job.run_dir))
    assert held is not None
    try:
        assert running_elsewhere(job)
        said: list[str] = []
        assert run_jobs([job], progress=said.append) == []
        assert any("another process is running it" in line for line in said)
        assert not (Path(job.run_dir) / "job.log").exists()
        job_file = Path(job.run_dir) / "job.json"
        data = {**job.__dict__, "suites": list(job.suites)}
        job_file.write_text(json.dumps(data))
        assert jobs_module.main([str(job_file)]) == LOCKED_EXIT
    finally:
        os.close(held)
    assert not running_elsewhere(job)

"""`drivevlm quickstart`: the main job on the embedded default, sized for a laptop CPU.

Trains a policy with the DriveVLM-RL preset (bundled offline reward models, asynchronous annotation),
evaluates it on unseen routes of the training town, exports the VLM-free policy and times it, and shows it
driving beside the shipped pretrained policy.
A short run shows the whole method working end to end; it is not a converged policy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from drivevlm.cli.common import JsonFlag, emit
from drivevlm.cli.train import ProgressBar

# How to train on a laptop CPU: src/drivevlm/presets/recipes/laptop.yaml (README, "Learning on a laptop").
RECIPE = "laptop"
# What fits the 10-minute main job on 2 cores (about 19 steps/s with the bundled models and the paper's
# class-only gate, warm-up included); a policy of this recipe starts to drive along its route near 10k-12k
# steps (README, quick start).
DEMO_STEPS = 10_000
# 20 s of driving: long enough to reach the pedestrian crossing.
REPORT_VIDEO_STEPS = 300
# The shipped pretrained policy the report's video shows beside the freshly trained one, on the same episode.
PRETRAINED = "drivevlm_rl_laptop"


def _decisions_per_second(policy: Any, observation: dict[str, np.ndarray], seconds: float = 1.0) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        policy.act(observation)
        count += 1
    return count / (time.perf_counter() - start)


def quickstart(
    out: Annotated[Path, typer.Option(help="Output folder (the run, evaluation and policy go here).")] = Path(
        "out/quickstart"
    ),
    preset: Annotated[str, typer.Option(help="The preset to train (a name or a YAML file).")] = "drivevlm_rl",
    steps: Annotated[int, typer.Option(help="Environment steps to train.")] = DEMO_STEPS,
    episodes: Annotated[int, typer.Option(help="Evaluation episodes on unseen routes.")] = 3,
    as_json: JsonFlag = False,
) -> None:
    """The main job: train the DriveVLM-RL preset briefly, evaluate it, export the VLM-free policy."""
    from drivevlm.deploy.runtime import load_policy
    from drivevlm.env import DriveEnv
    from drivevlm.eval.evaluate import evaluate_run
    from drivevlm.eval.report import write_report
    from drivevlm.eval.runs import export_driver, load_driver
    from drivevlm.presets import load_preset
    from drivevlm.train.trainer import train

    run_dir = out / "run"
    overrides = [
        f"train.total_timesteps={steps}",
        f"train.checkpoint_interval={steps}",
        f"train.log_interval={max(steps // 20, 1)}",
        f"recipe={RECIPE}",
    ]
    # The recipe's warm-up, shortened to a third of a short run.
    composed = load_preset(preset, overrides)
    if composed.train.sac.learning_starts > steps // 3:
        composed = load_preset(preset, [*overrides, f"train.sac.learning_starts={steps // 3}"])
    bar = ProgressBar(enabled=not as_json)
    try:
        summary = train(composed, run_dir, resume=(run_dir / "config.yaml").exists(), progress=bar)
    finally:
        bar.close()
    # The env's own limit (3,000 steps, 200 s): the unseen routes are 344-574 m long, so a policy at the
    # 12 km/h the learning goal asks for needs up to 172 s to finish one.
    evaluation = evaluate_run(run_dir, "unseen_routes", episodes)

    driver = load_driver(run_dir)
    policy_file = export_driver(driver, out / "policy.onnx")
    env = DriveEnv(driver.env_config)
    try:
        observation, _ = env.reset(seed=0)
    finally:
        env.close()
    decisions = _decisions_per_second(load_policy(policy_file), observation)
    # Training curves, every reward term and the gate rate over time, the evaluation, and videos of the
    # policy and of the shipped pretrained one at the same pedestrian crossing.
    report = write_report(
        run_dir, out / "report.html", videos=1, video_steps=REPORT_VIDEO_STEPS, beside=PRETRAINED
    )

    metrics = evaluation["metrics"]
    result = {
        "run_dir": str(run_dir),
        "train_steps": summary["steps"],
        "train_episodes": summary["episodes"],
        "train_collision_rate": summary["collision_rate"],
        "train_steps_per_s": summary["steps_per_s"],
        "lvlm_fallbacks": summary["annotator"].get("fallbacks", 0.0),
        **{f"eval_{key}": value for key, value in metrics.items() if isinstance(value, int | float)},
        "policy_file": str(policy_file),
        "policy_decisions_per_s": decisions,
        "report": str(report["path"]),
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2, default=float))
    emit(result, as_json)

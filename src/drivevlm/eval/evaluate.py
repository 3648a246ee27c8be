"""Drive a policy deterministically through a suite and compute the paper's testing metrics.

Evaluation rules (paper-spec §5): training-only terminations off (off route, too fast), stopped after 90 s
whatever the run trained with; an episode also
ends when the ego has not passed the route's first waypoint after `NO_PROGRESS_STEPS` steps; success
means the episode ended within 5 m of the final waypoint (the env's `route_finished`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivevlm.atomic import write_atomic
from drivevlm.config import EnvConfig
from drivevlm.eval.episode_log import EpisodeLog, EpisodeRecorder, save_episode_logs
from drivevlm.eval.metrics import testing_metrics
from drivevlm.eval.suites import Suite, SuiteEpisode, get_suite

NO_PROGRESS_STEPS = 150
NO_PROGRESS_REASON = "no_progress"

Act = Callable[[Mapping[str, np.ndarray]], np.ndarray]
StepHook = Callable[[dict[str, np.ndarray], np.ndarray, float, dict[str, Any]], None]


@dataclass(frozen=True)
class SuiteResult:
    suite: Suite
    logs: tuple[EpisodeLog, ...]
    metrics: dict[str, float]
    seconds: float

    def episodes_summary(self) -> list[dict[str, Any]]:
        return [
            {
                **episode.to_dict(),
                "steps": log.steps,
                "distance_m": log.distance_total_m,
                "route_completion": log.routes_completed,
                "collisions": log.collision_count,
                "red_lights": log.red_light_count,
                "success": log.success,
                "reason": log.termination_reason,
            }
            for episode, log in zip(self.suite.episodes, self.logs, strict=True)
        ]


def evaluation_config(config: EnvConfig, max_episode_steps: int | None = None) -> EnvConfig:
    """The training env config with the training-only terminations off, the stopped rule at the paper's
    90 s (a run may train with a shorter one) and no reward-model frames."""
    stopped = EnvConfig.model_fields["stopped_seconds"].default
    update: dict[str, Any] = {"training": False, "render_frames": False, "stopped_seconds": stopped}
    if max_episode_steps is not None:
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps: must be >= 1, got {max_episode_steps}")
        update["max_episode_steps"] = max_episode_steps
    return config.model_copy(update=update)


def run_episode(
    env: Any,
    act: Act,
    episode: SuiteEpisode,
    no_progress_steps: int = NO_PROGRESS_STEPS,
    on_step: StepHook | None = None,
    on_reset: Callable[[dict[str, np.ndarray], dict[str, Any]], None] | None = None,
) -> EpisodeLog:
    """One episode of `env` (a DriveEnv) under `act`, with the evaluation-only no-progress rule."""
    obs, info = env.reset(seed=episode.seed, options=episode.reset_options())
    if on_reset is not None:
        on_reset(obs, info)
    first_waypoint_m = float(env.config.waypoint_spacing_m)
    route_length = float(info.get("route_length_m", 0.0))
    recorder = EpisodeRecorder()
    start_completion: float | None = None
    while True:
        action = np.asarray(act(obs), dtype=np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        if on_step is not None:
            on_step(obs, action, float(reward), info)
        log = recorder.record(info, reward)
        if log is not None:
            return log
        if terminated or truncated:
            return recorder.finish("unknown", success=False)
        completion = float(info["metrics"]["route_completion"])
        # The ego spawns a little way along its route: progress counts from the first step.
        start_completion = completion if start_completion is None else start_completion
        progress_m = (completion - start_completion) * route_length
        if recorder.steps >= no_progress_steps and progress_m < first_waypoint_m:
            return recorder.finish(NO_PROGRESS_REASON, success=False)


def evaluate_suite(
    act: Act,
    env_config: EnvConfig,
    suite: Suite,
    no_progress_steps: int = NO_PROGRESS_STEPS,
    progress: Callable[[int, SuiteEpisode, EpisodeLog], None] | None = None,
) -> SuiteResult:
    """Drive every episode of `suite` in one env and compute `testing_metrics` over them."""
    from drivevlm.env import DriveEnv

    started = time.monotonic()
    env = DriveEnv(env_config)
    logs = []
    try:
        for index, episode in enumerate(suite.episodes):
            log = run_episode(env, act, episode, no_progress_steps)
            logs.append(log)
            if progress is not None:
                progress(index, episode, log)
    finally:
        env.close()
    return SuiteResult(suite, tuple(logs), testing_metrics(logs), time.monotonic() - started)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> Path:
    """Write `data` as indented JSON, atomically."""
    return write_atomic(path, json.dumps(data, indent=2, default=float) + "\n")


def evaluate_run(
    run_dir: str | Path | None,
    suite_name: str,
    episodes: int,
    policy_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    max_episode_steps: int | None = None,
    out_dir: str | Path | None = None,
    progress: Callable[[int, SuiteEpisode, EpisodeLog], None] | None = None,
    checkpoint: str = "auto",
) -> dict[str, Any]:
    """Evaluate a run's policy (`checkpoint`: auto, best or latest; or `policy_file`) on a suite; writes
    `<out>/<suite>.json` and `<out>/<suite>.episodes.jsonl` (out: RUN_DIR/eval by default) and returns the
    JSON written."""
    from drivevlm.eval.runs import RunError, load_driver

    driver = load_driver(run_dir, policy_file, overrides, checkpoint=checkpoint)
    config = evaluation_config(driver.env_config, max_episode_steps)
    suite = get_suite(suite_name, config.simulator, episodes, training_town=config.town)
    if driver.policy is not None:
        _check_space(driver.policy, config)
    if out_dir is None:
        if run_dir is None:
            raise RunError("out_dir (--out): needed when evaluating a policy without a run folder")
        out_dir = Path(run_dir) / "eval"
    out = Path(out_dir)
    result = evaluate_suite(driver.act, config, suite, progress=progress)
    logs_path = save_episode_logs(out / f"{suite.name}.episodes.jsonl", result.logs)
    summary = {
        "suite": suite.name,
        "description": suite.description,
        "simulator": suite.simulator,
        "policy": driver.source,
        "episodes": len(result.logs),
        "metrics": result.metrics,
        "per_episode": result.episodes_summary(),
        "seconds": result.seconds,
        "episode_logs": str(logs_path),
    }
    summary["path"] = str(write_json_atomic(out / f"{suite.name}.json", summary))
    return summary


def _check_space(policy: Any, config: EnvConfig) -> None:
    from drivevlm.env import DriveEnv
    from drivevlm.eval.runs import RunError

    env = DriveEnv(config)
    try:
        for key, space in env.observation_space.spaces.items():
            trained = policy.observation_space.spaces.get(key)
            if trained is None or tuple(trained.shape) != tuple(space.shape):
                got = None if trained is None else tuple(trained.shape)
                raise RunError(
                    f"observation[{key!r}]: the checkpoint was trained on shape {got}, "
                    f"the environment gives {tuple(space.shape)}"
                )
    finally:
        env.close()

"""Per-episode logs of training runs: the env wrapper that records every finished episode, with the global
step it ended at, and the readers that turn those logs into Table 1 and the training curves.

The trainer itself logs aggregated statistics only (SB3 CSV/TensorBoard per log interval); these logs hold
the env's own measurements (speed, distance, collisions, route completion), not the annotated reward.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym

from drivevlm.atomic import atomic_output, write_atomic
from drivevlm.config import EnvConfig
from drivevlm.eval.episode_log import (
    LOG_FORMAT_VERSION,
    EpisodeLog,
    EpisodeRecorder,
    TrainingCurveLog,
)

EPISODES_FILE = "episodes.csv"


class EpisodeLogWrapper(gym.Wrapper):  # type: ignore[type-arg]
    """Appends every finished episode, with the global step it ended at, to a JSON-lines file."""

    def __init__(self, env: gym.Env, path: Path, start_step: int, n_envs: int) -> None:  # type: ignore[type-arg]
        super().__init__(env)
        self.path = path
        self.global_step = start_step
        self.n_envs = n_envs
        self.recorder = EpisodeRecorder()
        path.parent.mkdir(parents=True, exist_ok=True)

    def reset(self, **kwargs: Any) -> Any:
        self.recorder = EpisodeRecorder()
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        # With n_envs parallel envs each of our steps is one of n_envs global steps.
        self.global_step += self.n_envs
        log = self.recorder.record(info)
        if log is None and (terminated or truncated):
            log = self.recorder.finish("unknown")
        if log is not None:
            line = {"format_version": LOG_FORMAT_VERSION, "end_step": self.global_step, **log.to_dict()}
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")
                handle.flush()
        return obs, reward, terminated, truncated, info


class RecordingEnvFactory:
    """Picklable env factory (SubprocVecEnv) making the trainer's default env, wrapped to log episodes."""

    def __init__(
        self,
        env_config: EnvConfig,
        render_frames: bool,
        seed_offset: int,
        log_dir: Path,
        start_step: int,
        n_envs: int,
    ) -> None:
        self.env_config = env_config
        self.render_frames = render_frames
        self.seed_offset = seed_offset
        self.log_dir = log_dir
        self.start_step = start_step
        self.n_envs = n_envs

    def __call__(self, rank: int) -> gym.Env:  # type: ignore[type-arg]
        from drivevlm.env import make_env

        cfg = self.env_config.model_copy(
            update={
                "seed": self.env_config.seed + rank + self.seed_offset,
                "render_frames": self.render_frames,
            }
        )
        path = self.log_dir / f"episodes-rank{rank}.jsonl"
        return EpisodeLogWrapper(make_env(cfg), path, self.start_step + rank, self.n_envs)


def read_training_episodes(
    run_dir: str | Path, up_to_step: int | None = None
) -> list[tuple[int, EpisodeLog]]:
    """(end step, log) of every recorded training episode, all ranks, in the order they ended."""
    folder = Path(run_dir) / "training"
    out: list[tuple[int, EpisodeLog]] = []
    for path in sorted(folder.glob("episodes-rank*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            step = int(data["end_step"])
            if up_to_step is None or step <= up_to_step:
                out.append((step, EpisodeLog.from_dict(data)))
    out.sort(key=lambda item: item[0])
    return out


def truncate_episode_logs(run_dir: Path, up_to_step: int) -> None:
    """After a kill, keep the episodes up to the checkpoint the run resumes from (later ones are redone)."""
    for path in sorted((run_dir / "training").glob("episodes-rank*.jsonl")):
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if int(json.loads(line)["end_step"]) <= up_to_step:
                    kept.append(line + "\n")
            except (json.JSONDecodeError, KeyError, ValueError):
                continue
        write_atomic(path, "".join(kept))


def write_episode_curve(run_dir: Path) -> Path:
    """`training/episodes.csv` (TrainingCurveLog layout) from the recorded episodes, rewritten whole."""
    target = run_dir / "training" / EPISODES_FILE
    with atomic_output(target) as tmp:
        tmp.unlink()  # the curve log writes its header into a new file
        curve = TrainingCurveLog(tmp)
        for step, log in read_training_episodes(run_dir):
            curve.append(step, log)
    return target

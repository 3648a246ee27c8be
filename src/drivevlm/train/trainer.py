"""`train(config, run_dir, resume=False)`: the one place that joins the env, the annotator and the learner.

Run folder: config.yaml (resolved), run.json (git commit, seeds, versions), logs/session-N/ (SB3 CSV and
TensorBoard: every reward term mean, annotator lag/throughput/counts, episode metrics, losses),
checkpoints/ (see checkpoint.py). `resume=True` continues from checkpoints/latest.json with the step
counter, optimiser states, replay buffer and RNG states restored; the episodes in flight at the kill are
lost (simulators restart with fresh episodes, seeded with the session number).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
import yaml
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from drivevlm.annotation.annotator import Annotator
from drivevlm.annotation.link import AnnotationLink
from drivevlm.annotation.queue import PendingRewards
from drivevlm.annotation.windows import RequestBuilder
from drivevlm.atomic import write_atomic
from drivevlm.config import ConfigError, EnvConfig
from drivevlm.precision import autocast_dtype
from drivevlm.presets import Preset, as_preset
from drivevlm.presets.training import TrainConfig
from drivevlm.rewards.base import RewardFunction
from drivevlm.scripted_policy import RouteFollower
from drivevlm.train import checkpoint as ckpt
from drivevlm.train.buffer import PendingRewardReplayBuffer
from drivevlm.train.policy import BevStateExtractor
from drivevlm.train.ppo import AnnotatedPPO
from drivevlm.train.sac import AnnotatedSAC, SharedEncoderSACPolicy
from drivevlm.train.validation import Validator
from drivevlm.train.vec import RestartingSubprocVecEnv

EnvFactory = Callable[[int], gym.Env]
ProgressHook = Callable[[dict[str, Any]], None]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _default_reward(preset: Preset) -> tuple[RewardFunction, int]:
    from drivevlm.rewards.build import build_reward

    return build_reward(preset.reward, preset.models), preset.reward.window_frames


def _default_env_factory(env_cfg: EnvConfig, render_frames: bool, seed_offset: int) -> EnvFactory:
    def factory(rank: int) -> gym.Env:
        from drivevlm.env import make_env

        cfg = env_cfg.model_copy(
            update={"seed": env_cfg.seed + rank + seed_offset, "render_frames": render_frames}
        )
        return make_env(cfg)

    return factory


class _MonitoredFactory:
    """Picklable env thunk for SubprocVecEnv: env `rank` from `factory`, wrapped in SB3's Monitor."""

    def __init__(self, factory: EnvFactory, rank: int) -> None:
        self.factory, self.rank = factory, rank

    def __call__(self) -> gym.Env:
        return Monitor(self.factory(self.rank))


def make_vec_env(factory: EnvFactory, cfg: TrainConfig) -> VecEnv:
    thunks = [_MonitoredFactory(factory, rank) for rank in range(cfg.n_envs)]
    if cfg.executor == "ray":
        from drivevlm.distributed.executor import make_ray_vec_env

        return make_ray_vec_env(thunks, cfg.ray)  # type: ignore[no-any-return]
    if cfg.use_subprocesses:
        return RestartingSubprocVecEnv(thunks, max_restarts=cfg.max_env_restarts)  # type: ignore[arg-type]
    return DummyVecEnv(thunks)  # type: ignore[arg-type]


def quadratic_schedule(initial: float, final: float) -> Callable[[float], float]:
    """lr(p) = final + (initial − final)·p², p = progress remaining (1 at the start, 0 at the end)."""

    def schedule(progress_remaining: float) -> float:
        return final + (initial - final) * progress_remaining**2

    return schedule


def make_model(
    cfg: TrainConfig, env: VecEnv, env_config: EnvConfig | None = None
) -> AnnotatedSAC | AnnotatedPPO:
    extractor = {
        "features_extractor_class": BevStateExtractor,
        "features_extractor_kwargs": {
            "cnn_channels": cfg.policy.cnn_channels,
            "cnn_kernels": cfg.policy.cnn_kernels,
            "cnn_strides": cfg.policy.cnn_strides,
            "bev_features": cfg.policy.bev_features,
            "state_hidden": cfg.policy.state_hidden,
        },
    }
    if cfg.algorithm == "sac":
        s = cfg.sac
        sac = AnnotatedSAC(
            SharedEncoderSACPolicy if s.encoder == "shared" else "MultiInputPolicy",
            env,
            learning_rate=quadratic_schedule(s.learning_rate, s.learning_rate_final),
            buffer_size=s.buffer_size,
            learning_starts=s.learning_starts,
            batch_size=s.batch_size,
            tau=s.tau,
            gamma=s.gamma,
            train_freq=s.train_freq,
            gradient_steps=s.gradient_steps,
            ent_coef=s.ent_coef,
            use_sde=s.use_sde,
            sde_sample_freq=s.sde_sample_freq,
            replay_buffer_class=PendingRewardReplayBuffer,
            replay_buffer_kwargs={
                "backlog_limit": cfg.backlog_limit,
                "stall_timeout_s": cfg.annotator.stall_timeout_s,
                "bev_storage": s.bev_storage,
            },
            policy_kwargs={"net_arch": list(s.net_arch), "log_std_init": s.log_std_init, **extractor},
            seed=cfg.seed,
            device=cfg.device,
        )
        if s.warmup_steer < 1.0 or s.warmup_throttle != (-1.0, 1.0):
            sac.warmup_bounds = np.array(
                [[-s.warmup_steer, s.warmup_throttle[0]], [s.warmup_steer, s.warmup_throttle[1]]]
            )
        if s.warmup_driver == "route_follower":
            sac.warmup_driver = RouteFollower(
                target_speed_kmh=env_config.target_speed_kmh if env_config else 20.0,
                caution="path",
                noise=s.warmup_noise,
                seed=cfg.seed,
                env_config=env_config,
            )
        sac.imitation_steps = s.warmup_imitation_steps
        sac.ent_coef_lr = s.ent_coef_lr
        if s.encoder == "shared":
            sac.encoder_dtype = autocast_dtype(s.encoder_precision, sac.device)
        return sac
    p = cfg.ppo
    return AnnotatedPPO(
        "MultiInputPolicy",
        env,
        learning_rate=quadratic_schedule(p.learning_rate, p.learning_rate_final),
        n_steps=p.n_steps,
        batch_size=p.batch_size,
        n_epochs=p.n_epochs,
        gamma=p.gamma,
        gae_lambda=p.gae_lambda,
        clip_range=p.clip_range,
        ent_coef=p.ent_coef,
        use_sde=p.use_sde,
        policy_kwargs={"net_arch": list(p.net_arch), **extractor},
        seed=cfg.seed,
        device=cfg.device,
    )


def make_annotation(
    model: AnnotatedSAC | AnnotatedPPO, cfg: TrainConfig, reward_fn: Any, window_frames: int
) -> AnnotationLink:
    """Build the annotator for `model` and attach it (SAC: the replay buffer's backlog; PPO: a rollout's)."""
    if isinstance(model, AnnotatedSAC):
        pending = model.replay_buffer.pending  # type: ignore[union-attr]
    else:
        pending = PendingRewards(cfg.backlog_limit, cfg.annotator.stall_timeout_s)
    if cfg.executor == "ray":
        from drivevlm.distributed.executor import make_ray_annotator

        annotator = make_ray_annotator(pending, reward_fn, cfg.annotator, cfg.ray, cfg.n_envs)
    else:
        annotator = Annotator(pending, reward_fn, cfg.annotator, n_envs=cfg.n_envs)
    link = AnnotationLink(annotator, RequestBuilder(cfg.n_envs, window_frames), cfg.mode)
    model.attach(link)
    return link


class TrainingMonitor(BaseCallback):
    """Logs, progress hook and checkpoints, from inside SB3's loop."""

    def __init__(
        self, trainer: _Run, progress: ProgressHook | None, start_state: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.run = trainer
        self.progress = progress
        state = dict(start_state or {})
        self.episodes = int(state.get("episodes", 0))
        self.collisions: deque[float] = deque(state.get("recent_collisions", []), maxlen=100)
        self.restarts = int(state.get("env_restarts", 0))
        self._episode_metrics: dict[str, list[float]] = {}
        self._step_metrics: dict[str, list[float]] = {}
        self._next_log = 0
        self._next_checkpoint = 0
        self._start_time = time.monotonic()
        self._start_steps = 0
        self._gate_counts = (0.0, 0.0)

    def _on_training_start(self) -> None:
        cfg = self.run.cfg
        self._start_steps = self.num_timesteps
        self._next_log = self.num_timesteps + cfg.log_interval
        self._next_checkpoint = (self.num_timesteps // cfg.checkpoint_interval + 1) * cfg.checkpoint_interval

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            for key, value in (info.get("metrics") or {}).items():
                self._step_metrics.setdefault(key, []).append(float(value))
            episode = info.get("episode_metrics") or info.get("episode_summary")
            if info.get("simulator_restarted"):
                self.restarts += 1
            if episode is not None:
                self.episodes += 1
                self.collisions.append(float(bool(episode.get("collided", False))))
                for key, value in episode.items():
                    if isinstance(value, bool | int | float):
                        self._episode_metrics.setdefault(key, []).append(float(value))
        if self.num_timesteps >= self._next_log:
            self._next_log += self.run.cfg.log_interval
            self.log_now()
        return True

    def _on_rollout_end(self) -> None:
        # After the chunk's transitions are stored (on_step comes before SB3 stores the step's transition).
        # At the last rollout the final checkpoint follows, after this rollout's gradient steps: not twice.
        if self.run.cfg.total_timesteps > self.num_timesteps >= self._next_checkpoint:
            interval = self.run.cfg.checkpoint_interval
            self._next_checkpoint = (self.num_timesteps // interval + 1) * interval
            self.run.save_checkpoint(self.state())

    def snapshot(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self._start_time
        steps = self.num_timesteps
        rate = (steps - self._start_steps) / elapsed if elapsed > 0 else 0.0
        total = self.run.cfg.total_timesteps
        annotator = self.run.link.annotator.stats()
        return {
            "steps": steps,
            "total_steps": total,
            "episodes": self.episodes,
            "collision_rate": float(np.mean(self.collisions)) if self.collisions else 0.0,
            "annotator_pending": annotator["pending"],
            "annotator_steps_behind": annotator["steps_behind"],
            "annotator_fallbacks": annotator["fallbacks"],
            "steps_per_s": rate,
            "elapsed_s": elapsed,
            "eta_s": (total - steps) / rate if rate > 0 else float("inf"),
            "env_restarts": self.restarts,
        }

    def log_now(self) -> None:
        record = self.logger.record
        snap = self.snapshot()
        for key in ("episodes", "collision_rate", "steps_per_s", "env_restarts"):
            record(f"rollout/{key}", snap[key])
        record("time/checkpoint_s", self.run.checkpoint_s)
        record("time/total_steps", self.num_timesteps)
        stats = self.run.link.annotator.stats()
        for key, value in stats.items():
            record(f"annotator/{key}", value)
        gate_rate = self._interval_gate_rate(stats)
        if gate_rate is not None:
            record("reward/gate_rate", gate_rate)
        for key, value in self.run.link.annotator.pop_term_means().items():
            record(f"reward/{key}", value)
        for key, values in self._step_metrics.items():
            record(f"metrics/{key}", float(np.mean(values)))
        for key, values in self._episode_metrics.items():
            record(f"episode/{key}", float(np.mean(values)))
        buffer = getattr(self.model, "replay_buffer", None)
        returns = buffer.pop_episode_returns() if isinstance(buffer, PendingRewardReplayBuffer) else []
        if returns:
            # The return the learner sees: annotated rewards, known only once the annotator has scored them.
            record("episode/annotated_return", float(np.mean(returns)))
        self._step_metrics.clear()
        self._episode_metrics.clear()
        self.logger.dump(self.num_timesteps)
        if self.progress is not None:
            self.progress(snap)

    def _interval_gate_rate(self, stats: Mapping[str, float]) -> float | None:
        """Share of the frames annotated since the last log whose attention gate opened (dynamic pathway)."""
        frames, opened = stats.get("reward_fn/frames"), stats.get("reward_fn/gate_open")
        if frames is None or opened is None:
            return None
        last_frames, last_opened = self._gate_counts
        self._gate_counts = (frames, opened)
        return (opened - last_opened) / (frames - last_frames) if frames > last_frames else None

    def state(self) -> dict[str, Any]:
        return {
            "num_timesteps": self.num_timesteps,
            "episodes": self.episodes,
            "recent_collisions": list(self.collisions),
            "env_restarts": self.restarts,
            "session": self.run.session,
        }


class _Run:
    def __init__(self, cfg: TrainConfig, run_dir: Path, session: int) -> None:
        self.cfg, self.run_dir, self.session = cfg, run_dir, session
        self.checkpoint_s = 0.0
        self.validator: Validator | None = None
        if cfg.validation.episodes > 0:
            self.validator = Validator(run_dir, cfg.validation.episodes, cfg.validation.seed)
        self.model: AnnotatedSAC | AnnotatedPPO
        self.link: AnnotationLink
        self.env: VecEnv

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        started = time.monotonic()
        # Quiesce: every collected transition is annotated, so the checkpoint has no pending rewards.
        self.link.annotator.wait_idle(timeout=self.cfg.annotator.stall_timeout_s)
        arrays = None
        if isinstance(self.model, AnnotatedSAC) and self.cfg.checkpoint_replay_buffer:
            arrays = self.model.replay_buffer.state_arrays()  # type: ignore[union-attr]
        state = {**state, "annotator": self.link.annotator.stats()}
        path = ckpt.save_checkpoint(self.run_dir / "checkpoints", self.model, state, arrays)
        if self.validator is not None:
            self.validator.submit(path, self.model.num_timesteps)
        # Collection and learning stand still meanwhile: reported as time/checkpoint_s and in the summary.
        self.checkpoint_s += time.monotonic() - started
        return path


def _resolved_config(preset: Preset) -> dict[str, Any]:
    resolved = dict(preset.data)
    resolved["train"] = preset.train.model_dump(mode="json")
    resolved["env"] = preset.env.model_dump(mode="json")
    return resolved


def train(
    config: Preset | Mapping[str, Any] | None,
    run_dir: str | Path,
    resume: bool = False,
    *,
    reward_fn: RewardFunction | None = None,
    window_frames: int | None = None,
    env_factory: EnvFactory | None = None,
    progress: ProgressHook | None = None,
) -> dict[str, Any]:
    """Train a policy; returns a summary (steps, episodes, collision rate, throughput, annotator counts).

    `config` is a `Preset` (or a whole preset mapping, validated here); with `resume=True` it may be None
    (the run folder's config.yaml is used). `reward_fn` defaults to the
    preset's reward (drivevlm.rewards.build), `env_factory(rank)` to DriveEnv with seed env.seed + rank.
    `progress(snapshot)` is called at every log interval.
    """
    run_dir = Path(run_dir)
    if resume:
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"resume: {run_dir} has no config.yaml (not a run folder)")
        preset = Preset.parse(yaml.safe_load(saved.read_text()) or {})
        start = ckpt.latest_checkpoint(run_dir / "checkpoints")
        if start is None:
            raise ConfigError(f"resume: {run_dir} has no complete checkpoint yet")
    else:
        if config is None:
            raise ConfigError("config: required unless resume=True")
        preset = as_preset(config)
        if (run_dir / "checkpoints" / ckpt.LATEST).exists():
            raise ConfigError(f"run_dir: {run_dir} already holds a run; pass resume=True to continue it")
        start = None
    cfg, env_cfg = preset.train, preset.env
    trainer_state = ckpt.load_trainer_state(start) if start is not None else {}
    session = int(trainer_state.get("session", -1)) + 1
    th.set_num_threads(max(1, th.get_num_threads()))

    if reward_fn is None:
        reward_fn, default_window = _default_reward(preset)
        window_frames = window_frames or default_window
    window_frames = window_frames or 4
    factory = env_factory or _default_env_factory(env_cfg, bool(reward_fn.needs_frames), 1000 * session)

    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_atomic(run_dir / "config.yaml", yaml.safe_dump(_resolved_config(preset)).encode())
        meta = {
            "git_commit": _git_commit(),
            "seed": cfg.seed,
            "env_seeds": [env_cfg.seed + rank for rank in range(cfg.n_envs)],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "torch": th.__version__,
        }
        write_atomic(run_dir / "run.json", json.dumps(meta, indent=2).encode())

    run = _Run(cfg, run_dir, session)
    env = make_vec_env(factory, cfg)
    run.env = env
    try:
        if start is not None:
            cls = AnnotatedSAC if cfg.algorithm == "sac" else AnnotatedPPO
            model = cls.load(start / "model.zip", env=env, device=cfg.device)
            arrays = ckpt.load_buffer_arrays(start)
            if arrays is not None and isinstance(model, AnnotatedSAC):
                model.replay_buffer.load_state_arrays(arrays)  # type: ignore[union-attr]
            if isinstance(model, AnnotatedSAC) and cfg.sac.encoder == "shared":
                # `auto` is this machine's answer, not the one of the machine that saved the checkpoint.
                model.encoder_dtype = autocast_dtype(cfg.sac.encoder_precision, model.device)
            ckpt.restore_rng(model, ckpt.load_rng(start))
        else:
            model = make_model(cfg, env, env_cfg)
        run.model = model
        formats = ["csv"] + (["tensorboard"] if importlib.util.find_spec("tensorboard") else [])
        model.set_logger(configure(str(run_dir / "logs" / f"session-{session}"), formats))
        link = make_annotation(model, cfg, reward_fn, window_frames)
        run.link = link
        monitor = TrainingMonitor(run, progress, trainer_state)
        # learn() binds the callback itself, but a resumed run that is already complete never calls it.
        monitor.init_callback(model)
        if cfg.mode == "async":
            link.annotator.start()
        remaining = cfg.total_timesteps - model.num_timesteps
        started = time.monotonic()
        if remaining > 0:
            model.learn(remaining, callback=monitor, reset_num_timesteps=start is None, log_interval=None)  # type: ignore[arg-type]
        elapsed = time.monotonic() - started
        during_training = run.checkpoint_s
        monitor.log_now()
        final = run.save_checkpoint(monitor.state())
        stats = link.annotator.stats()
        snap = monitor.snapshot()
        summary = {
            "run_dir": str(run_dir),
            "algorithm": cfg.algorithm,
            "mode": cfg.mode,
            "steps": model.num_timesteps,
            "steps_this_session": max(remaining, 0),
            "episodes": snap["episodes"],
            "collision_rate": snap["collision_rate"],
            "elapsed_s": elapsed,
            "steps_per_s": max(remaining, 0) / elapsed if elapsed > 0 else 0.0,
            "checkpoint": str(final),
            "session": session,
            "env_restarts": int(getattr(env, "restarts", 0)),
            "annotator": stats,
            # Seconds the checkpoints written during training held it up (the final one not included).
            "checkpoint_s": during_training,
        }
        if stats.get("reward_fn/frames"):
            summary["gate_rate"] = stats.get("reward_fn/gate_open", 0.0) / stats["reward_fn/frames"]
        if run.validator is not None:
            summary["validation"] = run.validator.finish()
        write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2, default=float).encode())
        return summary
    finally:
        with contextlib.suppress(Exception):
            run.link.annotator.close()
        if run.validator is not None:
            run.validator.close()
        env.close()

"""SB3 learners whose rewards come from the annotator: `AnnotatedSAC` (default) and `AnnotatedPPO`.

SAC: each transition enters the `PendingRewardReplayBuffer` with its reward request (signals and the K+1
frame window); the learner samples annotated transitions only. In sync mode every chunk of `train_freq`
steps is annotated before the gradient steps (VLM-RL's way); in async mode a reward thread annotates while
the agent keeps collecting.

PPO: the rollout's rewards are annotated (concurrently with collection in async mode) and the whole
rollout is waited for before GAE, so advantages always use R_final.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from drivevlm.annotation.annotator import Annotator
from drivevlm.annotation.queue import AnnotatorStalledError, PendingRewards, PendingTransition
from drivevlm.annotation.windows import RequestBuilder
from drivevlm.rewards.base import RewardTerms
from drivevlm.scripted_policy import RouteFollower
from drivevlm.train.buffer import PendingRewardReplayBuffer
from drivevlm.train.shared_encoder import SharedEncoderSACPolicy, train_shared_encoder


def quadratic_schedule(initial: float, final: float) -> Callable[[float], float]:
    """lr(p) = final + (initial − final)·p², p = progress remaining (1 at the start, 0 at the end)."""

    def schedule(progress_remaining: float) -> float:
        return final + (initial - final) * progress_remaining**2

    return schedule


@dataclass
class AnnotationLink:
    """What a learner needs to get its rewards: the annotator, the request builder and the mode."""

    annotator: Annotator
    requests: RequestBuilder
    mode: str = "async"

    def __post_init__(self) -> None:
        if self.mode not in ("async", "sync"):
            raise ValueError(f"mode: unknown value {self.mode!r}; allowed: async, sync")
        if self.mode == "sync":
            # A full backlog in sync mode is annotated in place: there is no thread to wait for.
            self.annotator.pending.on_full = self.annotator.drain

    def start_episodes(self, env: VecEnv) -> None:
        reset_infos = getattr(env, "reset_infos", None) or [{}] * env.num_envs
        for index in range(env.num_envs):
            self.requests.start_episode(index, reset_infos[index])


class AnnotatedSAC(SAC):
    link: AnnotationLink | None = None
    # Warm-up action bounds ([low, high] per action dimension); None: SB3's uniform draws.
    warmup_bounds: np.ndarray | None = None
    # A scripted driver whose noisy actions fill the warm-up instead of uniform draws (prior data).
    warmup_driver: RouteFollower | None = None
    # What each env's last step reported (None after a reset): the scripted driver brakes for it.
    _last_signals: list[Any] | None = None
    # A fixed learning rate for the entropy coefficient; None: it follows the learning-rate schedule.
    ent_coef_lr: float | None = None

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts and self.warmup_driver is not None:
            signals = self._last_signals or [None] * n_envs
            states = self._last_obs["state"]  # type: ignore[index,call-overload]
            driver = self.warmup_driver
            action = np.stack([driver.act({"state": states[i]}, signals[i]) for i in range(n_envs)])
            return action, self.policy.scale_action(action)
        if self.num_timesteps < learning_starts and self.warmup_bounds is not None:
            low, high = self.warmup_bounds
            drawn = self.action_space.np_random.uniform(low, high, size=(n_envs, len(low)))
            action = drawn.astype(np.float32)
            return action, self.policy.scale_action(action)
        return super()._sample_action(learning_starts, action_noise, n_envs)  # type: ignore[no-any-return]

    def _update_learning_rate(self, optimizers: Any) -> None:
        super()._update_learning_rate(optimizers)
        if self.ent_coef_lr is not None and self.ent_coef_optimizer is not None:
            for group in self.ent_coef_optimizer.param_groups:
                group["lr"] = self.ent_coef_lr

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "link"]

    def attach(self, link: AnnotationLink) -> None:
        if not isinstance(self.replay_buffer, PendingRewardReplayBuffer):
            raise TypeError("AnnotatedSAC needs replay_buffer_class=PendingRewardReplayBuffer")
        if link.annotator.pending is not self.replay_buffer.pending:
            raise ValueError("the annotator must serve this model's replay buffer backlog")
        self.link = link

    def _setup_learn(self, *args: Any, **kwargs: Any) -> tuple[int, BaseCallback]:
        result = super()._setup_learn(*args, **kwargs)
        if self.link is None:
            raise RuntimeError("AnnotatedSAC.learn: call attach(AnnotationLink(...)) first")
        self.link.start_episodes(self.env)  # type: ignore[arg-type]
        return result

    def _store_transition(
        self,
        replay_buffer: Any,
        buffer_action: np.ndarray,
        new_obs: Any,
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        assert self.link is not None
        reset_infos = getattr(self.env, "reset_infos", None)
        replay_buffer.stage_requests(self.link.requests.build(infos, dones, reset_infos))
        if self.warmup_driver is not None:
            ended = zip(infos, dones, strict=True)
            self._last_signals = [None if done else info.get("signals") for info, done in ended]
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> Any:
        rollout = super().collect_rollouts(*args, **kwargs)
        assert self.link is not None
        if self.link.mode == "sync":
            self.link.annotator.drain()
        return rollout

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        buffer = self.replay_buffer
        assert isinstance(buffer, PendingRewardReplayBuffer) and self.link is not None
        # Only possible with tiny learning_starts: wait for the first annotations.
        if buffer.annotated_count == 0 and not self.link.annotator.wait_idle(
            timeout=buffer.pending.stall_timeout_s
        ):
            raise AnnotatorStalledError("no transition was annotated before the first gradient step")
        if isinstance(self.policy, SharedEncoderSACPolicy):
            train_shared_encoder(self, gradient_steps, batch_size)
        else:
            super().train(gradient_steps, batch_size)


class RolloutRewards:
    """Annotated rewards of one PPO rollout, written by transition id (stale writes are refused)."""

    def __init__(self, n_steps: int, n_envs: int) -> None:
        self.n_steps, self.n_envs = n_steps, n_envs
        self.rewards = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.written = np.zeros((n_steps, n_envs), dtype=bool)
        self.first_id = 0
        self.stale = 0

    def start(self, first_id: int) -> None:
        self.first_id = first_id
        self.written[:] = False

    def write(self, records: Any, terms: list[RewardTerms] | Any, fell_back: Any) -> int:
        accepted = 0
        for record, term in zip(records, terms, strict=True):
            offset = record.transition_id - self.first_id
            if not 0 <= offset < self.n_steps * self.n_envs:
                self.stale += 1
                continue
            step, env = divmod(offset, self.n_envs)
            self.rewards[step, env] = term.final
            self.written[step, env] = True
            accepted += 1
        return accepted


class AnnotatedPPO(PPO):
    link: AnnotationLink | None = None
    rollout_rewards: RolloutRewards | None = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "link", "rollout_rewards"]

    def attach(self, link: AnnotationLink) -> None:
        self.link = link
        self.rollout_rewards = RolloutRewards(self.n_steps, self.n_envs)
        link.annotator.pending.attach(self.rollout_rewards.write)

    def _setup_learn(self, *args: Any, **kwargs: Any) -> tuple[int, BaseCallback]:
        result = super()._setup_learn(*args, **kwargs)
        if self.link is None:
            raise RuntimeError("AnnotatedPPO.learn: call attach(AnnotationLink(...)) first")
        self.link.start_episodes(self.env)  # type: ignore[arg-type]
        return result

    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        assert self._last_obs is not None and self.link is not None and self.rollout_rewards is not None
        link, rewards = self.link, self.rollout_rewards
        pending: PendingRewards = link.annotator.pending
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        first_id = self.num_timesteps
        rewards.start(first_id)
        bootstrap = np.zeros((n_rollout_steps, env.num_envs), dtype=np.float32)
        callback.on_rollout_start()
        dones = np.zeros(env.num_envs, dtype=bool)
        new_obs: Any = self._last_obs
        for step in range(n_rollout_steps):
            if self.use_sde and self.sde_sample_freq > 0 and step % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            with th.no_grad():
                actions, values, log_probs = self.policy(obs_as_tensor(self._last_obs, self.device))
            actions_np = actions.cpu().numpy()
            sent = actions_np
            if isinstance(self.action_space, spaces.Box):
                sent = np.clip(actions_np, self.action_space.low, self.action_space.high)
            new_obs, provisional, dones, infos = env.step(sent)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            requests = link.requests.build(infos, dones, getattr(env, "reset_infos", None))
            base = first_id + step * env.num_envs
            pending.put(
                [PendingTransition(base + i, requests[i], float(provisional[i])) for i in range(env.num_envs)]
            )
            for index, done in enumerate(dones):
                terminal = infos[index].get("terminal_observation")
                if done and terminal is not None and infos[index].get("TimeLimit.truncated", False):
                    with th.no_grad():
                        value = self.policy.predict_values(self._terminal_tensor(terminal))
                    bootstrap[step, index] = self.gamma * float(value[0, 0])
            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions_np,
                provisional,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones
        self._wait_for_rewards(pending)
        rollout_buffer.rewards[:] = rewards.rewards + bootstrap
        with th.no_grad():
            last_values = self.policy.predict_values(obs_as_tensor(new_obs, self.device))  # type: ignore[arg-type]
        rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _terminal_tensor(self, terminal: Any) -> Any:
        if isinstance(terminal, dict):
            return {k: th.as_tensor(np.asarray(v)[None]).to(self.device) for k, v in terminal.items()}
        return th.as_tensor(np.asarray(terminal)[None]).to(self.device)

    def _wait_for_rewards(self, pending: PendingRewards) -> None:
        assert self.link is not None
        start = time.monotonic()
        if not self.link.annotator.wait_idle(timeout=pending.stall_timeout_s):
            raise AnnotatorStalledError(
                f"rollout rewards not annotated after {time.monotonic() - start:.0f} s; "
                "the annotator is stuck"
            )

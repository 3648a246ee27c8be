"""PPO whose rewards come from the annotator.

The rollout's rewards are annotated (concurrently with collection in async mode) and the whole rollout is
waited for before GAE, so advantages always use R_final.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from drivevlm.annotation.link import AnnotatedLearner, AnnotationLink
from drivevlm.annotation.queue import AnnotatorStalledError, PendingRewards, PendingTransition
from drivevlm.rewards.base import RewardTerms


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


class AnnotatedPPO(AnnotatedLearner, PPO):
    rollout_rewards: RolloutRewards | None = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "rollout_rewards"]

    def attach(self, link: AnnotationLink) -> None:
        self.link = link
        self.rollout_rewards = RolloutRewards(self.n_steps, self.n_envs)
        link.annotator.pending.attach(self.rollout_rewards.write)

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

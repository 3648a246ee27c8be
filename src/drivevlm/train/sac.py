"""SAC whose rewards come from the annotator, with one BEV encoder pass per batch.

Each transition enters the `PendingRewardReplayBuffer` with its reward request (signals and the K+1 frame
window); the learner samples annotated transitions only. In sync mode every chunk of `train_freq` steps is
annotated before the gradient steps (VLM-RL's way); in async mode a reward thread annotates while the
agent keeps collecting.

The learner's update (`SharedEncoderSACPolicy`, `train_shared_encoder`): the critic trains one BEV
encoder, the actor and the targets reuse its features. Stock SB3 SAC runs the CNN five times forward and
three times backward per gradient step (the actor's own encoder on obs and next_obs, the critic's on obs
twice, the target's on next_obs). Here, as in DrQ and SAC-AE, actor and critic share one encoder that
only the critic loss trains (the actor learns on detached features), and every batch goes through it
twice: once with gradients (obs), once without (next_obs), whose features serve both the next action and
the target Q-heads (DrQ-v2: no target encoder). The losses are SB3's SAC losses term by term
(tests/train/test_sac.py); what differs is which loss trains the encoder, that the target Q
reads the online encoder's features, and that the actor's Q-values use the features of this batch from
before the critic's step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, Actor, MultiInputPolicy
from stable_baselines3.sac.policies import ContinuousCritic as Critic
from torch.nn.functional import mse_loss

from drivevlm.annotation.link import AnnotatedLearner, AnnotationLink
from drivevlm.annotation.queue import AnnotatorStalledError
from drivevlm.scripted_policy import RouteFollower
from drivevlm.train.buffer import PendingRewardReplayBuffer


class SharedEncoderSACPolicy(MultiInputPolicy):
    """SB3's multi-input SAC policy whose actor and critic hold the same features extractor.

    The critic's optimiser owns the extractor; the actor's optimiser holds the actor's heads only.
    The critic target keeps SB3's structure (its own, Polyak-averaged extractor, saved in checkpoints),
    but `train_shared_encoder` only uses its Q-heads.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["share_features_extractor"] = True
        # Adam's update in one fused kernel per parameter group: the same arithmetic, fewer passes over the
        # weights (learner step at 48 px, batch 128, 2 CPU threads: about 36 -> 32 ms).
        kwargs["optimizer_kwargs"] = {"fused": True, **(kwargs.get("optimizer_kwargs") or {})}
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        self.actor = self.make_actor()
        self.critic = self.make_critic(features_extractor=self.actor.features_extractor)
        self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(self.critic.state_dict())
        heads = [p for name, p in self.actor.named_parameters() if not name.startswith("features_extractor")]
        self.actor.optimizer = self.optimizer_class(heads, lr=lr_schedule(1), **self.optimizer_kwargs)
        self.critic.optimizer = self.optimizer_class(
            self.critic.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.critic_target.set_training_mode(False)


def actor_from_features(actor: Actor, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """`Actor.action_log_prob` from already extracted features: (squashed actions, log-probs)."""
    latent = actor.latent_pi(features)
    mean = actor.mu(latent)
    if actor.use_sde:
        return actor.action_dist.log_prob_from_params(mean, actor.log_std, latent_sde=latent)  # type: ignore[no-any-return]
    log_std = th.clamp(actor.log_std(latent), LOG_STD_MIN, LOG_STD_MAX)  # type: ignore[operator]
    return actor.action_dist.log_prob_from_params(mean, log_std)  # type: ignore[no-any-return]


def q_from_features(critic: Critic, features: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """All critics' Q-values, (batch, n_critics), from already extracted features."""
    inputs = th.cat([features, actions], dim=1)
    return th.cat([q_net(inputs) for q_net in critic.q_networks], dim=1)


def encode(encoder: th.nn.Module, observations: Any, dtype: th.dtype | None) -> th.Tensor:
    """The encoder's features, its convolutions in `dtype` under autocast (None: as its weights)."""
    if dtype is None:
        return encoder(observations)  # type: ignore[no-any-return]
    with th.autocast(device_type=next(encoder.parameters()).device.type, dtype=dtype):
        return encoder(observations).float()  # type: ignore[no-any-return]


def critic_step(
    model: Any, data: Any, features: th.Tensor, ent_coef: th.Tensor, dtype: th.dtype | None = None
) -> float:
    """One gradient step of the critics (and the encoder whose `features` they read); returns the loss."""
    actor, critic = model.actor, model.critic
    with th.no_grad():
        next_features = encode(critic.features_extractor, data.next_observations, dtype)
        next_actions, next_log_prob = actor_from_features(actor, next_features)
        next_q = q_from_features(model.critic_target, next_features, next_actions)
        next_q = next_q.min(dim=1, keepdim=True).values - ent_coef * next_log_prob.reshape(-1, 1)
        target_q = data.rewards + (1 - data.dones) * model.gamma * next_q
    current_q = q_from_features(critic, features, data.actions)
    critic_loss = 0.5 * sum(mse_loss(q, target_q) for q in current_q.split(1, dim=1))
    assert isinstance(critic_loss, th.Tensor)
    critic.optimizer.zero_grad()
    critic_loss.backward()
    critic.optimizer.step()
    return critic_loss.item()


def update_targets(model: Any) -> None:
    polyak_update(model.critic.parameters(), model.critic_target.parameters(), model.tau)
    polyak_update(model.batch_norm_stats, model.batch_norm_stats_target, 1.0)


def train_shared_encoder(
    model: Any, gradient_steps: int, batch_size: int, encoder_dtype: th.dtype | None = None
) -> None:
    """`SAC.train` for a `SharedEncoderSACPolicy`: the same losses, optimisers, logging and targets.

    `encoder_dtype` (e.g. bfloat16): the BEV encoder runs under autocast in that type, its weights,
    gradients and optimiser state staying float32 (mixed precision); the heads run in float32."""
    policy: SharedEncoderSACPolicy = model.policy
    actor, critic = model.actor, model.critic
    encoder = critic.features_extractor
    policy.set_training_mode(True)
    optimizers = [actor.optimizer, critic.optimizer]
    if model.ent_coef_optimizer is not None:
        optimizers.append(model.ent_coef_optimizer)
    model._update_learning_rate(optimizers)

    ent_coef_losses, ent_coefs, actor_losses, critic_losses = [], [], [], []
    for gradient_step in range(gradient_steps):
        data = model.replay_buffer.sample_for_learner(batch_size, encoder_dtype or th.float32)
        if model.use_sde:
            actor.reset_noise()
        features = encode(encoder, data.observations, encoder_dtype)
        actions_pi, log_prob = actor_from_features(actor, features.detach())
        log_prob = log_prob.reshape(-1, 1)

        if model.ent_coef_optimizer is not None and model.log_ent_coef is not None:
            ent_coef = th.exp(model.log_ent_coef.detach())
            ent_coef_loss = -(model.log_ent_coef * (log_prob + model.target_entropy).detach()).mean()
            ent_coef_losses.append(ent_coef_loss.item())
            model.ent_coef_optimizer.zero_grad()
            ent_coef_loss.backward()
            model.ent_coef_optimizer.step()
        else:
            ent_coef = model.ent_coef_tensor
        ent_coefs.append(ent_coef.item())

        critic_losses.append(critic_step(model, data, features, ent_coef, encoder_dtype))

        # The actor's loss needs gradients through the Q-networks to the actions, not for their weights.
        q_weights = [p for q_net in critic.q_networks for p in q_net.parameters()]
        for weight in q_weights:
            weight.requires_grad_(False)
        q_pi = q_from_features(critic, features.detach(), actions_pi)
        actor_loss = (ent_coef * log_prob - q_pi.min(dim=1, keepdim=True).values).mean()
        actor_losses.append(actor_loss.item())
        actor.optimizer.zero_grad()
        actor_loss.backward()
        actor.optimizer.step()
        for weight in q_weights:
            weight.requires_grad_(True)

        if gradient_step % model.target_update_interval == 0:
            update_targets(model)

    model._n_updates += gradient_steps
    model.logger.record("train/n_updates", model._n_updates, exclude="tensorboard")
    model.logger.record("train/ent_coef", np.mean(ent_coefs))
    model.logger.record("train/actor_loss", np.mean(actor_losses))
    model.logger.record("train/critic_loss", np.mean(critic_losses))
    if ent_coef_losses:
        model.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))


def imitate_warmup(model: Any, steps: int, batch_size: int, encoder_dtype: th.dtype | None = None) -> None:
    """Behaviour cloning of the stored actions (a scripted warm-up's): the actor's deterministic action,
    through its features extractor, regressed onto them, so that SAC starts from a policy that drives
    instead of one whose mean action stands still (its own optimiser, used once); then, with the shared
    encoder, `steps` critic updates of that policy before SAC's first actor update."""
    actor = model.actor
    optimizer = th.optim.Adam(actor.parameters(), lr=model.lr_schedule(1.0))
    actor.set_training_mode(True)
    losses = []
    for _ in range(steps):
        data = model.replay_buffer.sample_for_learner(batch_size)
        loss = mse_loss(actor(data.observations, deterministic=True), data.actions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.logger.record("train/imitation_loss_first", losses[0])
    model.logger.record("train/imitation_loss_last", losses[-1])
    if not isinstance(model.policy, SharedEncoderSACPolicy):
        return
    # Then as many critic steps with the cloned actor held: its Q-values are what the actor's first SAC
    # steps climb, so they should know the cloned policy before the actor follows them.
    ent_coef = (
        th.exp(model.log_ent_coef.detach()) if model.log_ent_coef is not None else model.ent_coef_tensor
    )
    critic_losses = []
    encoder = model.critic.features_extractor
    for step in range(steps):
        data = model.replay_buffer.sample_for_learner(batch_size, encoder_dtype or th.float32)
        features = encode(encoder, data.observations, encoder_dtype)
        critic_losses.append(critic_step(model, data, features, ent_coef, encoder_dtype))
        if step % model.target_update_interval == 0:
            update_targets(model)
    model.logger.record("train/critic_warmup_loss_last", critic_losses[-1])


class AnnotatedSAC(AnnotatedLearner, SAC):
    # Warm-up action bounds ([low, high] per action dimension); None: SB3's uniform draws.
    warmup_bounds: np.ndarray | None = None
    # A scripted driver whose noisy actions fill the warm-up instead of uniform draws (prior data).
    warmup_driver: RouteFollower | None = None
    # What each env's last step reported (None after a reset): the scripted driver brakes for it.
    _last_signals: list[Any] | None = None
    # Gradient steps of behaviour cloning on the warm-up's actions before the first SAC update; 0: none.
    imitation_steps: int = 0
    _imitated: bool = False
    # A fixed learning rate for the entropy coefficient; None: it follows the learning-rate schedule.
    ent_coef_lr: float | None = None
    # The shared encoder's autocast type in gradient steps (e.g. bfloat16); None: float32 throughout.
    encoder_dtype: th.dtype | None = None

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

    def attach(self, link: AnnotationLink) -> None:
        if not isinstance(self.replay_buffer, PendingRewardReplayBuffer):
            raise TypeError("AnnotatedSAC needs replay_buffer_class=PendingRewardReplayBuffer")
        if link.annotator.pending is not self.replay_buffer.pending:
            raise ValueError("the annotator must serve this model's replay buffer backlog")
        self.link = link

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
        if self.warmup_driver is not None and self.num_timesteps < self.learning_starts:
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
        if self.imitation_steps and not self._imitated:
            imitate_warmup(self, self.imitation_steps, batch_size, self.encoder_dtype)
            self._imitated = True
        if isinstance(self.policy, SharedEncoderSACPolicy):
            train_shared_encoder(self, gradient_steps, batch_size, self.encoder_dtype)
        else:
            super().train(gradient_steps, batch_size)

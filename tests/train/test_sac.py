"""The shared-encoder learner computes SB3's SAC update; only the encoder's training differs (by design)."""

from __future__ import annotations

import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv

from drivevlm.train.buffer import PendingRewardReplayBuffer
from drivevlm.train.policy import BevStateExtractor
from drivevlm.train.sac import SharedEncoderSACPolicy, train_shared_encoder
from support.toy_env import ToyDriveEnv


class _Recorder(Logger):
    def __init__(self) -> None:
        super().__init__(None, [])
        self.values: dict[str, float] = {}

    def record(self, key: str, value, exclude=None) -> None:  # type: ignore[no-untyped-def, override]
        self.values[key] = value


def _model(use_sde: bool) -> SAC:
    model = SAC(
        SharedEncoderSACPolicy,
        DummyVecEnv([lambda: ToyDriveEnv(size=16)]),
        buffer_size=256,
        learning_starts=0,
        batch_size=32,
        use_sde=use_sde,
        replay_buffer_class=PendingRewardReplayBuffer,
        policy_kwargs={
            "net_arch": [32, 32],
            "features_extractor_class": BevStateExtractor,
            "features_extractor_kwargs": {
                "cnn_channels": [4, 8],
                "cnn_kernels": [3, 3],
                "cnn_strides": [2, 2],
            },
        },
        device="cpu",
        seed=0,
    )
    rng = np.random.default_rng(0)
    buffer = model.replay_buffer
    space = model.observation_space

    def observation() -> dict[str, np.ndarray]:
        bev = (rng.random((1, *space["bev"].shape)) < 0.3).astype(np.uint8) * 255
        return {"bev": bev, "state": rng.normal(size=(1, 33)).astype(np.float32)}

    obs = observation()
    for step in range(64):
        nxt = observation()
        done = np.array([step % 20 == 19])
        info = [{"signals": None, "TimeLimit.truncated": step == 39}]
        buffer.add(obs, nxt, rng.uniform(-1, 1, (1, 2)), rng.normal(size=1), done, info)  # type: ignore[union-attr]
        obs = nxt
    buffer.annotated[:] = buffer.ids >= 0  # type: ignore[union-attr]
    return model


def _step(model: SAC, shared: bool, encoder_dtype: th.dtype | None = None) -> dict[str, float]:
    logger = _Recorder()
    model.set_logger(logger)
    np.random.seed(7)
    th.manual_seed(7)
    if shared:
        train_shared_encoder(model, 1, 32, encoder_dtype)
    else:
        SAC.train(model, 1, 32)
    return logger.values


def _heads(model: SAC) -> dict[str, th.Tensor]:
    return {k: v for k, v in model.policy.state_dict().items() if "features_extractor" not in k}


def test_one_step_computes_sb3s_sac_losses_and_head_updates() -> None:
    for use_sde in (True, False):
        ours, reference = _model(use_sde), _model(use_sde)
        for name, value in reference.policy.state_dict().items():
            assert th.equal(value, ours.policy.state_dict()[name]), "the two models must start the same"
        got, expected = _step(ours, shared=True), _step(reference, shared=False)
        for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef_loss", "train/ent_coef"):
            assert np.isclose(got[key], expected[key], rtol=1e-5, atol=1e-7), (key, got[key], expected[key])
        # Actor heads, Q heads, target heads and the entropy coefficient take the same step. (The target
        # encoder moves too, towards an encoder that only our learner trains: excluded.)
        theirs = _heads(reference)
        for name, value in _heads(ours).items():
            th.testing.assert_close(value, theirs[name], rtol=1e-5, atol=1e-6, msg=name)
        th.testing.assert_close(ours.log_ent_coef, reference.log_ent_coef)


def test_the_critic_trains_the_shared_encoder_and_the_actor_does_not() -> None:
    model = _model(use_sde=True)
    encoder = model.critic.features_extractor
    assert model.actor.features_extractor is encoder
    actor_params = {id(p) for group in model.actor.optimizer.param_groups for p in group["params"]}
    critic_params = {id(p) for group in model.critic.optimizer.param_groups for p in group["params"]}
    encoder_params = {id(p) for p in encoder.parameters()}
    assert not actor_params & encoder_params and encoder_params <= critic_params
    assert model.actor.optimizer.defaults["fused"] and model.critic.optimizer.defaults["fused"]
    before = [p.detach().clone() for p in encoder.parameters()]
    _step(model, shared=True)
    assert any(not th.equal(a, b) for a, b in zip(before, encoder.parameters(), strict=True))
    assert all(p.requires_grad for p in model.critic.parameters())


def test_a_bfloat16_encoder_step_is_the_float32_step_to_bfloat16_precision() -> None:
    ours, reference = _model(use_sde=True), _model(use_sde=True)
    got, expected = _step(ours, shared=True, encoder_dtype=th.bfloat16), _step(reference, shared=True)
    for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef_loss"):
        assert np.isclose(got[key], expected[key], rtol=0.05, atol=1e-3), (key, got[key], expected[key])
    assert got["train/critic_loss"] != expected["train/critic_loss"], "the encoder ran in bfloat16"
    # Mixed precision: weights (and so the optimiser's state and the saved policy) stay float32.
    assert all(p.dtype == th.float32 for p in ours.policy.parameters())
    for name, value in ours.policy.state_dict().items():
        th.testing.assert_close(value, reference.policy.state_dict()[name], rtol=0.05, atol=2e-3, msg=name)

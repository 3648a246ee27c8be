"""What the trainer calls when `train.executor` is `ray`: the runner VecEnv and the annotator.

The trainer stays the one place that joins env, annotator and learner; these two functions only decide
where the simulators and the reward models run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from drivevlm.annotation.config import AnnotatorConfig
from drivevlm.annotation.queue import PendingRewards
from drivevlm.distributed.cluster import connect, disconnect
from drivevlm.distributed.config import RayConfig
from drivevlm.rewards.base import RewardFunction


def make_ray_vec_env(thunks: Sequence[Callable[[], gym.Env]], ray_config: RayConfig) -> Any:
    """One runner actor per thunk (train.n_envs of them), on the configured cluster.

    When this call starts Ray itself (no running instance, address None), closing the VecEnv shuts it down.
    """
    from drivevlm.distributed.ray_envs import RayVecEnv

    started = connect(ray_config)
    try:
        env = RayVecEnv(thunks, ray_config)
    except BaseException:
        disconnect(started)
        raise
    if started:
        close = env.close

        def close_and_shutdown() -> None:
            close()
            disconnect(True)

        env.close = close_and_shutdown  # type: ignore[method-assign]
    return env


def make_ray_annotator(
    pending: PendingRewards,
    reward_fn: RewardFunction,
    annotator_config: AnnotatorConfig,
    ray_config: RayConfig,
    n_envs: int,
) -> Any:
    """A `RayAnnotator` with `train.ray.num_annotators` actors serving `pending`."""
    from drivevlm.distributed.ray_annotator import RayAnnotator

    connect(ray_config)
    return RayAnnotator(pending, reward_fn, annotator_config, ray_config, n_envs)

"""The tie between a learner and its rewards: the annotator, the request builder and the mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stable_baselines3.common.vec_env import VecEnv

from drivevlm.annotation.annotator import Annotator
from drivevlm.annotation.windows import RequestBuilder


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


class AnnotatedLearner:
    """Mixed into an SB3 algorithm (before it): the link it learns through, kept out of its checkpoints, and
    the episodes the link starts when learning starts."""

    link: AnnotationLink | None = None
    env: Any

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "link"]  # type: ignore[misc]

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        result = super()._setup_learn(*args, **kwargs)  # type: ignore[misc]
        if self.link is None:
            raise RuntimeError(f"{type(self).__name__}.learn: call attach(AnnotationLink(...)) first")
        self.link.start_episodes(self.env)
        return result

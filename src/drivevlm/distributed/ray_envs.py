"""Environment runners as Ray actors: one simulator per actor, stepped by the learner in the driver.

`RayVecEnv` is an SB3 `VecEnv`, so the learners use it like `RestartingSubprocVecEnv`: actions go out as
actor calls, observations, rewards and infos (with the RGB frames for the reward) come back through Ray's
object store. A runner that dies (its process or its machine is lost) or does not answer within
`step_timeout_s` is replaced by a new actor, which is reset; that env's step is reported as a truncated
episode end (`TimeLimit.truncated`, `terminal_observation` = the last observation it sent,
`simulator_restarted`) with the previous step's signals and reward 0, exactly like the local executor, so
the learner bootstraps through it instead of learning a termination. The actions sent to the lost runner
never took effect; nothing else is lost.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

from drivevlm.distributed.cluster import import_ray
from drivevlm.distributed.config import RayConfig

log = logging.getLogger(__name__)


class RunnerRestartLimitError(RuntimeError):
    """Runners were lost more often than `train.ray.max_actor_restarts`."""


class EnvRunner:
    """Body of the runner actor: owns one env built by `thunk()` (SB3's VecEnv step/reset semantics)."""

    def __init__(self, thunk: Callable[[], gym.Env], backend_options: dict[str, Any] | None = None) -> None:
        self.env = thunk()
        if backend_options:
            pin_backend(self.env, backend_options)

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.env.observation_space, self.env.action_space

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        return self.env.reset(seed=seed, **({"options": options} if options else {}))

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, dict[str, Any], dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        done = bool(terminated or truncated)
        info["TimeLimit.truncated"] = bool(truncated and not terminated)
        reset_info: dict[str, Any] = {}
        if done:
            info["terminal_observation"] = observation
            observation, reset_info = self.env.reset()
        return observation, float(reward), done, info, reset_info

    def get_attr(self, name: str) -> Any:
        return self.env.get_wrapper_attr(name)

    def set_attr(self, name: str, value: Any) -> None:
        setattr(self.env, name, value)

    def call(self, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def is_wrapped(self, wrapper_class: type[gym.Wrapper]) -> bool:
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(self.env, wrapper_class)

    def render(self) -> Any:
        return self.env.render()

    def node_ip(self) -> str:
        return str(import_ray().util.get_node_ip_address())

    def close(self) -> None:
        self.env.close()


def pin_backend(env: gym.Env, backend_options: dict[str, Any]) -> None:
    """Point an env at its own simulator server before its first reset (the backend starts lazily)."""
    config = getattr(env.unwrapped, "config", None)
    if config is None or not hasattr(config, "backend_options"):
        raise TypeError(f"{type(env.unwrapped).__name__}: no config.backend_options to pin a server in")
    config.backend_options = {**config.backend_options, **backend_options}


def runner_options(cfg: RayConfig, rank: int) -> dict[str, Any]:
    """Ray actor options of runner `rank`: its resources, plus its server's node when it has one."""
    options = cfg.runner.ray_options()
    if rank < len(cfg.simulator_servers):
        server = cfg.simulator_servers[rank]
        if server.pin_to_host and not server.host.startswith("127."):
            # Every Ray node offers the resource "node:<its IP>"; asking for a sliver of it pins the actor.
            options["resources"] = {**options.get("resources", {}), f"node:{server.host}": 0.001}
    return options


class RayVecEnv(VecEnv):
    """`train.n_envs` runner actors behind SB3's VecEnv interface, replaced when one is lost."""

    def __init__(self, thunks: Sequence[Callable[[], gym.Env]], cfg: RayConfig) -> None:
        if cfg.simulator_servers and len(cfg.simulator_servers) != len(thunks):
            raise ValueError(
                f"train.ray.simulator_servers: {len(cfg.simulator_servers)} servers for {len(thunks)} "
                "runners (train.n_envs); give one server per runner"
            )
        self._ray = import_ray()
        self._thunks = list(thunks)
        self.cfg = cfg
        self.restarts = 0
        self.runners = [self._spawn(rank) for rank in range(len(thunks))]
        observation_space, action_space = self._ray.get(self.runners[0].spaces.remote())
        super().__init__(len(thunks), observation_space, action_space)
        self._pending: list[Any] = []
        self._last_obs: list[Any] = [None] * self.num_envs
        self._last_info: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self.closed = False

    def _spawn(self, rank: int) -> Any:
        servers = self.cfg.simulator_servers
        options = servers[rank].backend_options() if rank < len(servers) else None
        actor_class = self._ray.remote(EnvRunner)
        return actor_class.options(name=None, max_restarts=0, **runner_options(self.cfg, rank)).remote(
            self._thunks[rank], options
        )

    def _replace(self, rank: int, why: str) -> tuple[Any, dict[str, Any]]:
        self.restarts += 1
        if self.restarts > self.cfg.max_actor_restarts:
            raise RunnerRestartLimitError(
                f"environment runners were lost {self.restarts} times (train.ray.max_actor_restarts); "
                f"last: runner {rank}: {why}"
            )
        log.warning(
            "environment runner %d lost (%s); starting a new one (restart %d)", rank, why, self.restarts
        )
        with contextlib.suppress(Exception):
            self._ray.kill(self.runners[rank], no_restart=True)
        self.runners[rank] = self._spawn(rank)
        return self._ray.get(self.runners[rank].reset.remote(), timeout=self.cfg.step_timeout_s)  # type: ignore[no-any-return]

    def reset(self) -> Any:
        refs = [
            runner.reset.remote(self._seeds[rank], self._options[rank])
            for rank, runner in enumerate(self.runners)
        ]
        results = []
        for rank, ref in enumerate(refs):
            try:
                results.append(self._ray.get(ref, timeout=self.cfg.step_timeout_s))
            except (self._ray.exceptions.RayActorError, self._ray.exceptions.GetTimeoutError) as error:
                results.append(self._replace(rank, type(error).__name__))
        obs, self.reset_infos = zip(*results, strict=True)  # type: ignore[assignment]
        self._reset_seeds()
        self._reset_options()
        for rank in range(self.num_envs):
            self._last_obs[rank] = obs[rank]
        return _stack_obs(list(obs), self.observation_space)

    def step_async(self, actions: np.ndarray) -> None:
        self._pending = [
            runner.step.remote(action) for runner, action in zip(self.runners, actions, strict=True)
        ]

    def step_wait(self) -> VecEnvStepReturn:
        ray = self._ray
        ready, _ = ray.wait(self._pending, num_returns=len(self._pending), timeout=self.cfg.step_timeout_s)
        ready_set = set(ready)
        results = []
        for rank, ref in enumerate(self._pending):
            try:
                if ref not in ready_set:
                    raise ray.exceptions.GetTimeoutError(f"no answer within {self.cfg.step_timeout_s} s")
                results.append(ray.get(ref))
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as error:
                reset_obs, reset_info = self._replace(rank, f"{type(error).__name__}: {error}")
                info: dict[str, Any] = {
                    "TimeLimit.truncated": True,
                    "terminal_observation": self._last_obs[rank],
                    "simulator_restarted": True,
                }
                if "signals" in self._last_info[rank]:
                    info["signals"] = self._last_info[rank]["signals"]
                results.append((reset_obs, 0.0, True, info, reset_info))
        self._pending = []
        obs, rewards, dones, infos, self.reset_infos = zip(*results, strict=True)  # type: ignore[assignment]
        for rank in range(self.num_envs):
            self._last_obs[rank] = obs[rank]
            self._last_info[rank] = {"signals": infos[rank]["signals"]} if "signals" in infos[rank] else {}
        return (
            _stack_obs(list(obs), self.observation_space),
            np.asarray(rewards, dtype=np.float32),
            np.asarray(dones, dtype=bool),
            list(infos),
        )

    def _targets(self, indices: VecEnvIndices) -> list[Any]:
        return [self.runners[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._ray.get([r.get_attr.remote(attr_name) for r in self._targets(indices)])  # type: ignore[no-any-return]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._ray.get([r.set_attr.remote(attr_name, value) for r in self._targets(indices)])

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        refs = [r.call.remote(method_name, method_args, method_kwargs) for r in self._targets(indices)]
        return self._ray.get(refs)  # type: ignore[no-any-return]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._ray.get([r.is_wrapped.remote(wrapper_class) for r in self._targets(indices)])  # type: ignore[no-any-return]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return self._ray.get([r.render.remote() for r in self.runners])  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        refs = []
        for runner in self.runners:
            with contextlib.suppress(Exception):
                refs.append(runner.close.remote())
        with contextlib.suppress(Exception):
            self._ray.wait(refs, num_returns=len(refs), timeout=10)
        for runner in self.runners:
            with contextlib.suppress(Exception):
                self._ray.kill(runner, no_restart=True)

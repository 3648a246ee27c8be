"""Simulators in subprocesses (libsumo runs one simulation per process), restarted when one dies.

When a worker process dies (a simulator crash), the step it was running never happened: the worker is
started again from its factory and reset, and that env's step is reported as a truncated episode end
(`TimeLimit.truncated`, `terminal_observation` = the last observation it sent, `simulator_restarted`), with
the previous step's signals and reward 0, so the learner bootstraps through it instead of learning a
termination.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import SubprocVecEnv
from stable_baselines3.common.vec_env.base_vec_env import CloudpickleWrapper, VecEnvStepReturn
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs, _worker

log = logging.getLogger(__name__)


class SimulatorRestartLimitError(RuntimeError):
    """Workers died more often than `max_restarts`."""


class RestartingSubprocVecEnv(SubprocVecEnv):
    def __init__(
        self, env_fns: list[Callable[[], gym.Env]], start_method: str | None = None, max_restarts: int = 20
    ) -> None:
        self._env_fns = list(env_fns)
        self._start_method = start_method or (
            "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        )
        super().__init__(env_fns, start_method=self._start_method)
        self.max_restarts = max_restarts
        self.restarts = 0
        self._last_obs: list[Any] = [None] * self.num_envs
        self._last_info: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        # Workers found dead while sending them a step (they died between steps).
        self._dead: set[int] = set()

    def _restart(self, index: int) -> tuple[Any, dict[str, Any]]:
        self.restarts += 1
        if self.restarts > self.max_restarts:
            raise SimulatorRestartLimitError(f"simulator workers died {self.restarts} times (max_restarts)")
        log.warning("simulator worker %d died; restarting it (restart %d)", index, self.restarts)
        old = self.processes[index]
        old.join(timeout=1)
        ctx = mp.get_context(self._start_method)
        remote, work_remote = ctx.Pipe()
        process = ctx.Process(
            target=_worker, args=(work_remote, remote, CloudpickleWrapper(self._env_fns[index])), daemon=True
        )
        process.start()
        work_remote.close()
        remotes, processes = list(self.remotes), list(self.processes)
        remotes[index], processes[index] = remote, process
        self.remotes, self.processes = remotes, processes  # type: ignore[assignment]
        remote.send(("reset", (None, {})))
        return remote.recv()

    def reset(self) -> Any:
        obs = super().reset()
        for index in range(self.num_envs):
            self._last_obs[index] = _index_obs(obs, index)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        for index, (remote, action) in enumerate(zip(self.remotes, actions, strict=True)):
            try:
                remote.send(("step", action))
            except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
                self._dead.add(index)
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        results = []
        for index, remote in enumerate(self.remotes):
            try:
                if index in self._dead:
                    raise EOFError(f"worker {index} died between steps")
                results.append(remote.recv())
            except (EOFError, ConnectionResetError, BrokenPipeError):
                self._dead.discard(index)
                reset_obs, reset_info = self._restart(index)
                info = {
                    "TimeLimit.truncated": True,
                    "terminal_observation": self._last_obs[index],
                    "simulator_restarted": True,
                }
                if "signals" in self._last_info[index]:
                    info["signals"] = self._last_info[index]["signals"]
                results.append((reset_obs, 0.0, True, info, reset_info))
        self.waiting = False
        obs, rewards, dones, infos, self.reset_infos = zip(*results, strict=True)  # type: ignore[assignment]
        for index in range(self.num_envs):
            self._last_obs[index] = obs[index]
            self._last_info[index] = {"signals": infos[index]["signals"]} if "signals" in infos[index] else {}
        return _stack_obs(obs, self.observation_space), np.stack(rewards), np.stack(dones), infos  # type: ignore[return-value]

    def close(self) -> None:
        if self.closed:
            return
        for index, process in enumerate(self.processes):
            if not process.is_alive():
                # A dead worker cannot answer "close"; give the base class a live pipe end to skip it.
                self.remotes[index].close()
        alive = [i for i, p in enumerate(self.processes) if p.is_alive()]
        if self.waiting:
            for index in alive:
                with contextlib.suppress(EOFError, ConnectionResetError):
                    self.remotes[index].recv()
        for index in alive:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.remotes[index].send(("close", None))
        for process in self.processes:
            process.join(timeout=5)
        self.closed = True


def _index_obs(obs: Any, index: int) -> Any:
    if isinstance(obs, dict):
        return {key: value[index] for key, value in obs.items()}
    return obs[index]

"""Sample `RewardRequest`s from scripted episodes, windowed exactly as the trainer windows them.

The front-camera window (the last K+1 frames, restarted at each episode boundary, the oldest repeated until
K+1 exist) comes from the trainer's own `RequestBuilder`, so calibration sees what training will see.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from drivevlm.annotation.windows import RequestBuilder
from drivevlm.config import ConfigError, EnvConfig, build
from drivevlm.env import DriveEnv
from drivevlm.rewards.base import RewardRequest
from drivevlm.scripted_policy import RouteFollower
from drivevlm.sim.scenarios import SCENARIOS, check_choice
from drivevlm.sim.world import WorldState

# Scenarios sampled by default: every vulnerable-road-user kind (so the gate opens) plus plain car following.
DEFAULT_SAMPLE_SCENARIOS: tuple[str, ...] = (
    "pedestrian_crossing",
    "occluded_pedestrian",
    "slow_cyclist",
    "cyclist_merge",
    "car_following",
)


def check_scenarios(names: Sequence[str], field: str = "scenarios") -> list[str]:
    """Validate scenario names, raising a ConfigError that names the field and the allowed values."""
    if not names:
        raise ConfigError(
            f"{field}: at least one scenario is needed; allowed: {', '.join(sorted(SCENARIOS))}"
        )
    try:
        return [check_choice(field, name, SCENARIOS) for name in names]
    except ValueError as error:
        raise ConfigError(str(error)) from None


def scenario_env_config(base: EnvConfig, scenario: str, seed: int, render_frames: bool) -> EnvConfig:
    """`base` for one scenario: its default town when it has one (cyclist_merge needs the T-junction)."""
    check_scenarios([scenario], "scenario")
    town = SCENARIOS[scenario].default_town or base.town
    data = base.model_dump() | {
        "scenario": scenario,
        "town": town,
        "seed": seed,
        "render_frames": render_frames,
    }
    return build(EnvConfig, data, "env")  # type: ignore[no-any-return]


@dataclass(slots=True)
class SteppedRequest:
    """One env step turned into a reward request, with what inspection shows beside it."""

    step: int
    request: RewardRequest
    frames: dict[str, Any] | None
    info: dict[str, Any]
    done: bool
    # The world after the step: ground truth for whoever judges the reward.
    state: WorldState


def drive_episode(
    env_config: EnvConfig,
    max_steps: int,
    window_frames: int,
    seed: int,
    policy: RouteFollower | None = None,
) -> Iterator[SteppedRequest]:
    """Drive one scripted episode (`policy`, by default a RouteFollower at 20 km/h), yielding a request per
    step until it ends or max_steps."""
    if max_steps < 1:
        raise ConfigError(f"steps: must be >= 1, got {max_steps}")
    env = DriveEnv(env_config)
    builder = RequestBuilder(1, window_frames)
    policy = policy if policy is not None else RouteFollower(seed=seed, env_config=env_config)
    try:
        obs, info = env.reset(seed=seed)
        builder.start_episode(0, info)
        signals = None
        for step in range(1, max_steps + 1):
            obs, _, terminated, truncated, info = env.step(policy.act(obs, signals))
            signals = info["signals"]
            done = bool(terminated or truncated)
            (request,) = builder.build([info], [done])
            assert env.world_state is not None
            yield SteppedRequest(step, request, info.get("frames"), info, done, env.world_state)
            if done:
                return
    finally:
        env.close()


def sample_requests(
    env_config: EnvConfig,
    scenarios: Sequence[str],
    frames: int,
    window_frames: int,
    render_frames: bool,
    seed: int = 0,
    stride: int = 5,
) -> list[tuple[str, RewardRequest]]:
    """(scenario, request) pairs: `frames` requests spread evenly over `scenarios`, one every `stride`
    steps of scripted episodes.

    Each scenario drives episodes (seed, seed+1, ...) until its share is collected; an episode that ends early
    is followed by another, up to a bound that keeps a degenerate scenario from looping forever.
    """
    if frames < 1:
        raise ConfigError(f"frames: must be >= 1, got {frames}")
    if stride < 1:
        raise ConfigError(f"stride: must be >= 1, got {stride}")
    names = check_scenarios(scenarios)
    share = math.ceil(frames / len(names))
    requests: list[tuple[str, RewardRequest]] = []
    for index, scenario in enumerate(names):
        wanted = min(share, frames - len(requests))
        if wanted <= 0:
            break
        taken = 0
        for episode in range(8):
            episode_seed = seed + 1000 * index + episode
            config = scenario_env_config(env_config, scenario, episode_seed, render_frames)
            steps = (wanted - taken) * stride
            for item in drive_episode(config, steps, window_frames, episode_seed):
                if item.step % stride == 0:
                    requests.append((scenario, item.request))
                    taken += 1
            if taken >= wanted:
                break
    return requests

"""The scripted route follower: the state units it reads, and what its caution brakes for."""

import dataclasses

import numpy as np
import pytest

from drivevlm.config import EnvConfig
from drivevlm.env import DriveEnv
from drivevlm.scripted_policy import RouteFollower
from drivevlm.vehicle_signals import VehicleSignals

SIGNALS = VehicleSignals(
    speed_kmh=15.0,
    longitudinal_speed_kmh=15.0,
    center_offset_m=0.0,
    heading_error_deg=0.0,
    center_offset_std_m=0.0,
    steer=0.0,
    throttle=0.0,
    previous_steer=0.0,
    progress_m=1.0,
    collided=False,
)


def test_it_drives_the_same_whatever_units_the_state_is_in(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The laptop recipe's normalised state (with route errors and the front gap appended) is read back
    into km/h and metres: the same episode gives the same actions as with VLM-RL's raw state."""
    base = {"cache_dir": str(tmp_path_factory.getbasetemp() / "towns"), "density": "empty"}
    actions = []
    for units in ({}, {"state_units": "normalized", "route_errors": True, "front_gap": True}):
        config = EnvConfig(**base, **units)
        env, driver = DriveEnv(config), RouteFollower(noise=0.1, seed=4, env_config=config)
        try:
            obs, _ = env.reset(seed=4)
            taken = []
            for _ in range(120):
                taken.append(driver.act(obs))
                obs, *_ = env.step(taken[-1])
        finally:
            env.close()
        actions.append(np.array(taken))
    np.testing.assert_allclose(actions[0], actions[1], atol=1e-4)
    assert actions[0][:, 1].mean() > 0.1  # it drove (the throttle held to reach 20 km/h), not only braked


def test_path_caution_ignores_a_person_beside_the_path_and_brakes_for_one_in_it() -> None:
    obs = {
        "state": np.concatenate(
            [[0.0, 0.0, 15.0], np.stack([np.arange(1, 16) * 2.0, np.zeros(15)], 1).ravel()]
        )
    }
    beside = dataclasses.replace(SIGNALS, nearest_vru_ahead_m=8.0)
    in_path = dataclasses.replace(SIGNALS, nearest_vru_ahead_m=8.0, front_obstacle_m=8.0)
    corridor, path = RouteFollower(), RouteFollower(caution="path")
    assert corridor.act(obs, beside)[1] < 0  # the corridor driver brakes for a person on the sidewalk
    assert path.act(obs, beside)[1] > 0  # the path driver keeps going
    assert path.act(obs, in_path)[1] < 0

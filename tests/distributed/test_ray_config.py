"""The train.ray section: validation naming the field, actor options, CARLA server pinning."""

from __future__ import annotations

import pytest

from drivevlm.config import ConfigError
from drivevlm.distributed.config import RayConfig
from drivevlm.distributed.ray_envs import pin_backend, runner_options
from drivevlm.env import make_env
from drivevlm.presets.training import train_section


def test_executor_and_ray_section_validate_with_field_names() -> None:
    cfg = train_section(
        {"train": {"executor": "ray", "ray": {"address": "10.0.0.1:6379", "num_annotators": 4}}}
    )
    assert cfg.executor == "ray" and cfg.ray.num_annotators == 4 and cfg.ray.address == "10.0.0.1:6379"
    assert train_section({}).executor == "local"
    with pytest.raises(ConfigError, match=r"train\.executor"):
        train_section({"train": {"executor": "dask"}})
    with pytest.raises(ConfigError, match=r"train.ray.address"):
        train_section({"train": {"ray": {"address": "nohost"}}})
    with pytest.raises(ConfigError, match=r"train.ray.annotator.num_gpus"):
        train_section({"train": {"ray": {"annotator": {"num_gpus": -1}}}})
    with pytest.raises(ConfigError, match=r"train.ray.simulator_servers.0.host"):
        train_section({"train": {"ray": {"simulator_servers": [{"host": "carla-box"}]}}})


def test_actor_options_carry_resources_and_pin_runners_to_their_server() -> None:
    cfg = RayConfig(
        runner={"num_cpus": 2, "resources": {"carla": 1}},
        annotator={"num_cpus": 1, "num_gpus": 0.5, "memory_mb": 2048},
        simulator_servers=[{"host": "10.0.0.7", "port": 2000}, {"host": "127.0.0.1", "port": 2002}],
    )
    assert cfg.annotator.ray_options() == {"num_cpus": 1.0, "num_gpus": 0.5, "memory": 2048 * 2**20}
    first = runner_options(cfg, 0)
    assert first["num_cpus"] == 2.0 and first["resources"] == {"carla": 1.0, "node:10.0.0.7": 0.001}
    # A loopback server runs beside whichever node the runner lands on: no pinning.
    assert runner_options(cfg, 1)["resources"] == {"carla": 1.0}
    assert cfg.simulator_servers[1].backend_options() == {"host": "127.0.0.1", "port": 2002}


def test_pinning_sets_the_env_backend_options_before_the_simulator_starts() -> None:
    env = make_env({"density": "empty", "backend_options": {"timeout_s": 5.0}})
    try:
        pin_backend(env, {"host": "10.0.0.7", "port": 2004})
        assert env.unwrapped.config.backend_options == {"timeout_s": 5.0, "host": "10.0.0.7", "port": 2004}
    finally:
        env.close()

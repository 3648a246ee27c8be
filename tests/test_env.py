"""The gymnasium env on the real embedded SUMO simulator."""

import math

import gymnasium as gym
import numpy as np
import pytest

from drivevlm.config import ConfigError, EnvConfig
from drivevlm.env import ENV_ID, DriveEnv
from drivevlm.scripted_policy import RouteFollower
from drivevlm.traffic_rules import red_stop_line_ahead_m
from drivevlm.vehicle_signals import VehicleSignals


@pytest.fixture
def env(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.getbasetemp() / "towns"
    environment = DriveEnv({"cache_dir": str(cache), "density": "empty", "max_episode_steps": 200})
    yield environment
    environment.close()


def _rollout(env: DriveEnv, seed: int, steps: int) -> list[dict[str, np.ndarray]]:
    obs, _ = env.reset(seed=seed)
    policy = RouteFollower()
    observations = [obs]
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        observations.append(obs)
        if terminated or truncated:
            break
    return observations


def test_gymnasium_check_env(env: DriveEnv) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(env, skip_render_check=True)


def test_stable_baselines3_check_env(env: DriveEnv) -> None:
    from stable_baselines3.common.env_checker import check_env

    check_env(env, warn=True)


@pytest.mark.parametrize(
    "code",
    [
        # As gymnasium packages do: importing the package registers the env ...
        "import drivevlm, gymnasium",
        # ... whichever comes first, without loading gymnasium itself (the deploy runtime must not).
        "import gymnasium, drivevlm",
        "import drivevlm, sys; assert 'gymnasium' not in sys.modules; import gymnasium.envs.registration",
    ],
)
def test_import_drivevlm_registers_the_env(code: str) -> None:
    import subprocess
    import sys

    check = "; import gymnasium as g; assert drivevlm.ENV_ID in g.registry"
    check += "; assert 'drivevlm.env' not in sys.modules"
    subprocess.run([sys.executable, "-c", f"import sys; {code}{check}"], check=True, timeout=120)


def test_registered_with_gymnasium(tmp_path) -> None:
    environment = gym.make(ENV_ID, config={"cache_dir": str(tmp_path), "density": "empty"})
    try:
        obs, _ = environment.reset(seed=1)
        assert environment.observation_space.contains(obs)
    finally:
        environment.close()


def test_same_seed_same_observations(env: DriveEnv) -> None:
    first = _rollout(env, seed=7, steps=40)
    second = _rollout(env, seed=7, steps=40)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=False):
        np.testing.assert_array_equal(a["bev"], b["bev"])
        np.testing.assert_allclose(a["state"], b["state"], rtol=0, atol=1e-5)


def test_observation_layout_and_info(env: DriveEnv) -> None:
    obs, info = env.reset(seed=3)
    assert obs["bev"].dtype == np.uint8
    assert obs["bev"].shape == env.observation_space["bev"].shape
    assert obs["state"].shape == (3 + 2 * 15,)
    assert "frames" not in info  # frames are rendered only when asked for
    obs, reward, _terminated, _truncated, info = env.step(np.array([0.0, 0.5], dtype=np.float32))
    assert isinstance(info["signals"], VehicleSignals)
    assert set(info["metrics"]) >= {"speed_kmh", "distance_m", "center_offset_m", "route_completion"}
    assert math.isfinite(reward)
    # The road is drawn under the ego (the ego starts on its route).
    road = obs["bev"][env.mask_channels.index("road")]
    assert road.any()


def test_normalized_state_units(env: DriveEnv) -> None:
    raw = [env.reset(seed=5)[0], env.step(np.array([0.0, 1.0], dtype=np.float32))[0]]
    env.close()  # libsumo: one simulation per process
    scaled_env = DriveEnv({**env.config.model_dump(), "state_units": "normalized"})
    try:
        scaled = [scaled_env.reset(seed=5)[0], scaled_env.step(np.array([0.0, 1.0], dtype=np.float32))[0]]
    finally:
        scaled_env.close()
    reach = env.config.route_waypoints * env.config.waypoint_spacing_m
    for a, b in zip(raw, scaled, strict=True):
        np.testing.assert_allclose(b["state"][:2], a["state"][:2])
        assert b["state"][2] == pytest.approx(a["state"][2] / env.config.target_speed_kmh, abs=1e-6)
        np.testing.assert_allclose(b["state"][3:], a["state"][3:] / reach, atol=1e-6)
        assert np.abs(b["state"][3:]).max() <= 1.0
    assert raw[1]["state"][2] > 0  # moving: the speed entry is compared, not two zeros


def test_route_errors_end_the_state_vector(env: DriveEnv) -> None:
    env.close()  # libsumo: one simulation per process
    steered = DriveEnv({**env.config.model_dump(), "route_errors": True})
    try:
        obs, _ = steered.reset(seed=5)
        assert obs["state"].shape == (env.observation_space["state"].shape[0] + 2,)
        for _ in range(30):  # steer off the lane centre so that both errors grow
            obs, _, _, _, info = steered.step(np.array([0.4, 0.5], dtype=np.float32))
        offset, heading = obs["state"][-2:]
        assert offset == pytest.approx(info["metrics"]["center_offset_m"], abs=1e-5) and abs(offset) > 0.5
        assert math.degrees(heading) == pytest.approx(info["metrics"]["heading_error_deg"], abs=1e-3)
    finally:
        steered.close()


def test_front_gap_ends_the_state_vector(env: DriveEnv) -> None:
    env.close()  # libsumo: one simulation per process
    ranged = DriveEnv({**env.config.model_dump(), "front_gap": True, "scenario": "car_following"})
    try:
        obs, _ = ranged.reset(seed=5)
        assert obs["state"].shape == (env.observation_space["state"].shape[0] + 2,)
        policy, signals, seen = RouteFollower(), None, 0
        for _ in range(120):
            obs, _, terminated, truncated, info = ranged.step(policy.act(obs, signals))
            signals = info["signals"]
            gap, closing = obs["state"][-2:]
            assert gap == pytest.approx(min(signals.front_obstacle_m, 60.0), abs=1e-4)
            if math.isinf(signals.front_obstacle_m):
                assert closing == 0.0
            seen += math.isfinite(signals.front_obstacle_m)
            if terminated or truncated:
                break
        assert seen > 0  # something was ahead at some point: the entries were compared, not only the caps
    finally:
        ranged.close()


def test_stop_lights_channel_follows_the_signals(env: DriveEnv) -> None:
    env.close()  # libsumo: one simulation per process
    lit = DriveEnv({**env.config.model_dump(), "bev_traffic_lights": True})
    try:
        obs, _ = lit.reset(seed=0)
        channel = lit.mask_channels.index("stop_lights")
        assert obs["bev"].shape[0] == len(env.mask_channels) + 1
        policy, shown, stopping = RouteFollower(), 0, 0
        for _ in range(199):
            obs, *_ = lit.step(policy.act(obs))
            state = lit.world_state
            assert state is not None
            ego = state.ego.pose
            # A red or amber stop line well inside the view (24 m ahead, 8 m behind, 16 m aside) is drawn.
            c, s = math.cos(ego.yaw), math.sin(ego.yaw)
            near = []
            for light in state.traffic_lights:
                dx, dy = light.position[0] - ego.x, light.position[1] - ego.y
                if light.state in ("r", "y") and -4 < dx * c + dy * s < 18 and abs(dy * c - dx * s) < 12:
                    near.append(light)
            stopping += bool(near)
            shown += bool(obs["bev"][channel].any())
            if near:
                assert obs["bev"][channel].any()
        assert shown > 0 and stopping > 0
    finally:
        lit.close()


def test_frames_rendered_when_asked(tmp_path) -> None:
    environment = DriveEnv(
        {"cache_dir": str(tmp_path), "density": "empty", "render_frames": True, "rgb_size": 96}
    )
    try:
        _, info = environment.reset(seed=0)
        _, _, _, _, info = environment.step(np.array([0.0, 0.3], dtype=np.float32))
        frames = info["frames"]
        assert frames["bev_rgb"].shape == (96, 96, 3) and frames["bev_rgb"].dtype == np.uint8
        assert frames["front"].shape == (96, 96, 3) and frames["front"].std() > 0
    finally:
        environment.close()


def test_scripted_driver_makes_progress_and_earns_positive_reward(env: DriveEnv) -> None:
    obs, _ = env.reset(seed=5)
    policy = RouteFollower(target_speed_kmh=20.0)
    rewards, signals = [], None
    for _ in range(120):
        obs, reward, terminated, truncated, info = env.step(policy.act(obs, signals))
        signals = info["signals"]
        rewards.append(reward)
        if terminated or truncated:
            break
    assert info["metrics"]["distance_m"] > 20.0
    assert np.mean(rewards[-30:]) > 0.3
    assert abs(signals.center_offset_m) < 1.5


@pytest.mark.parametrize("bad", [[float("nan"), 0.0], [0.0, float("inf")]])
def test_non_finite_action_is_an_error(env: DriveEnv, bad: list[float]) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array(bad, dtype=np.float32))


def test_out_of_range_action_is_clipped(env: DriveEnv) -> None:
    env.reset(seed=0)
    obs, *_ = env.step(np.array([5.0, 9.0], dtype=np.float32))
    assert -1.0 <= obs["state"][0] <= 1.0 and -1.0 <= obs["state"][1] <= 1.0


def test_wrong_action_shape_is_an_error(env: DriveEnv) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize(
    ("field", "value"), [("town", "atlantis"), ("scenario", "alien_invasion"), ("density", "rush_hour")]
)
def test_unknown_choice_names_the_field_and_allowed_values(field: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"env\.{field}: unknown value '{value}'; allowed: "):
        DriveEnv({field: value})


def test_unknown_reset_option_is_an_error(env: DriveEnv) -> None:
    with pytest.raises(ValueError, match="reset options"):
        env.reset(seed=0, options={"weather": "rain"})


def test_reset_option_overrides_scenario(env: DriveEnv) -> None:
    _, info = env.reset(seed=0, options={"scenario": "slow_cyclist"})
    assert info["spec"].scenario == "slow_cyclist"


@pytest.mark.parametrize(("explicit", "expected_kmh"), [({}, 100.0), ({"target_speed_kmh": 30.0}, 30.0)])
def test_reset_onto_another_town_takes_its_speeds_unless_set(
    env: DriveEnv, explicit: dict[str, float], expected_kmh: float
) -> None:
    env.close()  # libsumo: one simulation per process
    urban = DriveEnv({**env.config.model_dump(exclude={"target_speed_kmh", "max_speed_kmh"}), **explicit})
    try:
        assert urban.config.target_speed_kmh == explicit.get("target_speed_kmh", 25.0)
        urban.reset(seed=0, options={"town": "highway"})
        *_, info = urban.step(np.array([0.0, 0.5], dtype=np.float32))
    finally:
        urban.close()
    assert info["signals"].target_speed_kmh == expected_kmh


def test_training_terminations_can_be_switched_off(tmp_path) -> None:
    config = EnvConfig(cache_dir=tmp_path, density="empty", training=False, max_episode_steps=150)
    environment = DriveEnv(config)
    try:
        environment.reset(seed=2)
        reason = None
        for _ in range(150):
            # Full throttle straight ahead: leaves the route or exceeds 35 km/h, neither ends the episode.
            _, _, terminated, truncated, info = environment.step(np.array([0.0, 1.0], dtype=np.float32))
            if terminated or truncated:
                reason = info["episode_metrics"]["reason"]
                break
        assert reason not in ("off_route", "too_fast")
    finally:
        environment.close()


def _red_light_episode(config: EnvConfig, brake_at_red: bool) -> tuple[str, float]:
    """Follow the route of seed 0 (a red light lies on it) and brake before red lines if asked: returns the
    end reason and the seconds stood still at a red line."""
    environment = DriveEnv(config)
    try:
        obs, _ = environment.reset(seed=0)
        policy, waited = RouteFollower(), 0.0
        for _ in range(config.max_episode_steps):
            state = environment.world_state
            assert state is not None
            action = policy.act(obs)
            if brake_at_red and red_stop_line_ahead_m(state) < 8.0:
                action = np.array([action[0], -1.0], dtype=np.float32)
                waited += 0.0 if state.ego.speed > 0.3 else 1 / 15
            obs, _, terminated, truncated, info = environment.step(action)
            if terminated or truncated:
                return str(info["episode_metrics"]["reason"]), waited
        raise AssertionError("the episode did not end")
    finally:
        environment.close()


def test_running_a_red_ends_training_episodes_when_asked(tmp_path) -> None:
    config = EnvConfig(cache_dir=tmp_path, density="empty", max_episode_steps=300)
    reason, _ = _red_light_episode(
        config.model_copy(update={"red_light_termination": True}), brake_at_red=False
    )
    assert reason == "red_light"
    # Off by default (VLM-RL has no such rule), and never in evaluation.
    assert _red_light_episode(config, brake_at_red=False)[0] == "step_limit"
    update = {"red_light_termination": True, "training": False}
    assert _red_light_episode(config.model_copy(update=update), brake_at_red=False)[0] == "step_limit"


def test_waiting_at_a_red_light_can_be_kept_off_the_stopped_timer(tmp_path) -> None:
    config = EnvConfig(cache_dir=tmp_path, density="empty", max_episode_steps=300, stopped_seconds=2.0)
    reason, waited = _red_light_episode(config, brake_at_red=True)
    assert reason == "stopped" and waited == pytest.approx(2.0, abs=0.2)
    patient = config.model_copy(update={"stopped_counts_waiting": False})
    reason, waited = _red_light_episode(patient, brake_at_red=True)
    assert reason != "stopped" and waited > 2.5

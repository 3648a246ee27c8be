"""Exported SB3 actors (ONNX, TorchScript) against the torch policy, and the spec checks that guard them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import MASKS, WAYPOINTS, TinyDictEnv, build_sac, sample_batch

from drivevlm.deploy.export import export_policy, load_torchscript_policy
from drivevlm.deploy.runtime import ObservationSpecError, load_policy, spec_path_for

pytest.importorskip("onnxruntime")


def _torch_actions(model, obs: dict[str, np.ndarray]) -> np.ndarray:
    actions, _ = model.predict(obs, deterministic=True)
    return actions


@pytest.mark.parametrize("use_sde", [True, False])
def test_sac_onnx_and_torchscript_match_the_torch_actor(
    tiny_env: TinyDictEnv, tmp_path: Path, use_sde: bool
) -> None:
    import torch

    model = build_sac(tiny_env, use_sde=use_sde)
    obs = sample_batch(tiny_env, 8)
    expected = _torch_actions(model, obs)
    # predict() is the actor's deterministic output (tanh of the mean; bounds are [-1, 1] here).
    with torch.no_grad():
        direct = model.policy.actor(
            {k: torch.as_tensor(v) for k, v in obs.items()}, deterministic=True
        ).numpy()
    np.testing.assert_allclose(expected, direct, atol=1e-6)
    assert np.ptp(expected, axis=0).min() > 0, "a trivially constant actor would not test anything"

    onnx_path = export_policy(
        model, tiny_env.observation_space, tmp_path / "policy.onnx", "onnx", MASKS, WAYPOINTS
    )
    ts_path = export_policy(
        model, tiny_env.observation_space, tmp_path / "policy.pt", "torchscript", MASKS, WAYPOINTS
    )
    onnx_policy = load_policy(onnx_path)
    ts_policy = load_torchscript_policy(ts_path)
    np.testing.assert_allclose(onnx_policy.act(obs), expected, atol=1e-5)
    np.testing.assert_allclose(ts_policy.act(obs), expected, atol=1e-6)
    single = {k: v[3] for k, v in obs.items()}
    action = onnx_policy.act(single)
    assert action.shape == (2,) and action.dtype == np.float32
    np.testing.assert_allclose(action, expected[3], atol=1e-5)
    assert np.all(np.abs(onnx_policy.act(sample_batch(tiny_env, 4, seed=9))) <= 1.0)


def test_ppo_export_matches_predict(tiny_env: TinyDictEnv, tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    model = PPO(
        "MultiInputPolicy", tiny_env, policy_kwargs={"net_arch": [16]}, n_steps=8, batch_size=8, seed=1
    )
    # Scale the action head so that some means fall outside [-1, 1] and the clipping is exercised.
    model.policy.action_net.weight.data *= 200.0
    obs = sample_batch(tiny_env, 16, seed=2)
    expected = _torch_actions(model, obs)
    assert np.any(np.abs(expected) == 1.0)
    path = export_policy(model, tiny_env.observation_space, tmp_path / "ppo.onnx")
    np.testing.assert_allclose(load_policy(path).act(obs), expected, atol=1e-5)
    assert json.loads(spec_path_for(path).read_text())["algorithm"] == "PPO"


def test_spec_file_describes_the_observation(tiny_env: TinyDictEnv, tmp_path: Path) -> None:
    path = export_policy(
        build_sac(tiny_env), tiny_env.observation_space, tmp_path / "p.onnx", "onnx", MASKS, WAYPOINTS
    )
    spec = json.loads(spec_path_for(path).read_text())
    assert spec["format_version"] == 1
    assert spec["policy_format"] == "onnx" and spec["algorithm"] == "SAC"
    assert spec["inputs"] == [
        {"key": "bev", "shape": [3, 36, 36], "dtype": "uint8"},
        {"key": "state", "shape": [7], "dtype": "float32"},
    ]
    assert spec["mask_channels"] == list(MASKS)
    assert spec["waypoint_count"] == WAYPOINTS
    assert spec["action"] == {
        "shape": [2],
        "low": [-1.0, -1.0],
        "high": [1.0, 1.0],
        "names": ["steer", "throttle"],
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.onnx", "p.onnx.spec.json"]
    # Ordinary files (the quick start's policy.onnx once came out owner-only, mkstemp's mode).
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o644}


@pytest.fixture(scope="module")
def exported(tiny_env: TinyDictEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exported")
    return export_policy(
        build_sac(tiny_env),
        tiny_env.observation_space,
        folder / "policy.onnx",
        "onnx",
        MASKS,
        WAYPOINTS,
        state_units="normalized",
    )


def test_observation_mismatches_name_the_key_and_shapes(tiny_env: TinyDictEnv, exported: Path) -> None:
    policy = load_policy(exported)
    obs = {k: v[0] for k, v in sample_batch(tiny_env, 1).items()}
    with pytest.raises(
        ObservationSpecError, match=r"observation\['bev'\]: expected shape \(3, 36, 36\).*got \(3, 40, 40\)"
    ):
        policy.act({**obs, "bev": np.zeros((3, 40, 40), np.uint8)})
    with pytest.raises(ObservationSpecError, match=r"missing keys \['state'\]"):
        policy.act({"bev": obs["bev"]})
    with pytest.raises(
        ObservationSpecError, match=r"observation\['bev'\]: expected dtype uint8, got float32"
    ):
        policy.act({**obs, "bev": obs["bev"].astype(np.float32)})
    with pytest.raises(ObservationSpecError, match="batch sizes differ"):
        policy.act({"bev": np.stack([obs["bev"]] * 2), "state": np.stack([obs["state"]] * 3)})
    assert policy.act({**obs, "state": obs["state"].astype(np.float64)}).shape == (2,)


def test_environment_mismatches_are_clear_errors(exported: Path) -> None:
    import gymnasium as gym

    spec = load_policy(exported).spec
    spec.check_space(TinyDictEnv().observation_space)
    bigger = gym.spaces.Dict(
        {
            "bev": gym.spaces.Box(0, 255, (4, 36, 36), np.uint8),
            "state": gym.spaces.Box(-1, 1, (7,), np.float32),
        }
    )
    with pytest.raises(ObservationSpecError, match=r"space\['bev'\].*\(3, 36, 36\).*\(4, 36, 36\)"):
        spec.check_space(bigger)
    spec.check_environment(list(MASKS), WAYPOINTS)
    with pytest.raises(ObservationSpecError, match="mask_channels"):
        spec.check_environment(["road", "vehicles", "lane_markings"], WAYPOINTS)
    with pytest.raises(ObservationSpecError, match="waypoint_count"):
        spec.check_environment(list(MASKS), 15)
    spec.check_environment(list(MASKS), WAYPOINTS, "normalized")
    with pytest.raises(ObservationSpecError, match=r"trained on a normalized state vector.*a raw one"):
        spec.check_environment(list(MASKS), WAYPOINTS, "raw")


def test_bad_export_and_load_arguments(tiny_env: TinyDictEnv, tmp_path: Path, exported: Path) -> None:
    model = build_sac(tiny_env)
    with pytest.raises(ValueError, match="format: unknown value 'tflite'"):
        export_policy(model, tiny_env.observation_space, tmp_path / "p.onnx", format="tflite")
    with pytest.raises(ValueError, match=r"must end in '\.pt'"):
        export_policy(model, tiny_env.observation_space, tmp_path / "p.onnx", format="torchscript")
    with pytest.raises(ValueError, match="mask_channels: 2 names for 3 channels"):
        export_policy(model, tiny_env.observation_space, tmp_path / "p.onnx", mask_channels=["road", "lanes"])
    from stable_baselines3 import PPO

    discrete = PPO("MultiInputPolicy", TinyDictEnv(discrete=True), n_steps=8, batch_size=8)
    with pytest.raises(TypeError, match="Box actions, got Discrete"):
        export_policy(discrete, tiny_env.observation_space, tmp_path / "d.onnx")
    with pytest.raises(FileNotFoundError, match=r"nothing\.onnx"):
        load_policy(tmp_path / "nothing.onnx")
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(exported.read_bytes())
    with pytest.raises(FileNotFoundError, match=r"lonely\.onnx\.spec\.json"):
        load_policy(lonely)
    assert not list(tmp_path.glob(".*"))


def test_runtime_imports_no_heavy_module(exported: Path) -> None:
    """Loading and running a policy must not pull torch, SB3, transformers, gymnasium or the simulator."""
    script = (
        "import sys\n"
        "import numpy as np\n"
        "from drivevlm.deploy.runtime import load_policy\n"
        f"policy = load_policy({str(exported)!r})\n"
        "action = policy.act({'bev': np.zeros((3, 36, 36), np.uint8), 'state': np.zeros(7, np.float32)})\n"
        "assert action.shape == (2,)\n"
        "heavy = ('torch', 'stable_baselines3', 'transformers', 'gymnasium', 'cv2',\n"
        "         'libsumo', 'traci', 'carla')\n"
        "loaded = sorted(m for m in sys.modules\n"
        "                if m.split('.')[0] in heavy or m.startswith('drivevlm.sim'))\n"
        "print(loaded)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

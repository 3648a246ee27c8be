"""The deploy runtime in a clean virtual environment holding only numpy and onnxruntime.

The venv is built once (pip install from PyPI, the one network use allowed here) and cached in pytest's
cache folder; the test skips when it cannot be built (no package index reachable).
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import MASKS, WAYPOINTS, TinyDictEnv, build_sac, sample_batch

from drivevlm.deploy.export import export_policy

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = ("numpy", "onnxruntime")


def _clean_venv(cache_dir: Path) -> Path:
    python = cache_dir / "bin" / "python"
    marker = cache_dir / ".ready"
    if marker.is_file() and python.is_file():
        return python
    venv.EnvBuilder(clear=True, with_pip=True, system_site_packages=False).create(cache_dir)
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PACKAGES],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.skip(
            f"could not build the clean venv (pip install {' '.join(PACKAGES)}): {result.stderr[-400:]}"
        )
    marker.write_text("ok\n")
    return python


@pytest.mark.slow
def test_runtime_runs_with_only_numpy_and_onnxruntime(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    python = _clean_venv(request.config.cache.mkdir("deploy-clean-venv"))
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    )
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert not names & {"torch", "stable-baselines3", "gymnasium", "transformers", "drivevlm"}, names

    env = TinyDictEnv()
    model = build_sac(env)
    obs = sample_batch(env, 6, seed=4)
    expected, _ = model.predict(obs, deterministic=True)
    path = export_policy(model, env.observation_space, tmp_path / "policy.onnx", "onnx", MASKS, WAYPOINTS)
    np.savez(tmp_path / "obs.npz", **obs)
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(SRC)!r})\n"
        "import numpy as np\n"
        "from drivevlm.deploy.runtime import ObservationSpecError, load_policy\n"
        f"policy = load_policy({str(path)!r})\n"
        f"obs = dict(np.load({str(tmp_path / 'obs.npz')!r}))\n"
        f"np.save({str(tmp_path / 'actions.npy')!r}, policy.act(obs))\n"
        "try:\n"
        "    policy.act({'bev': obs['bev'][:, :2], 'state': obs['state']})\n"
        "except ObservationSpecError as err:\n"
        "    print('spec error:', err)\n"
    )
    result = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "spec error: observation['bev']" in result.stdout
    np.testing.assert_allclose(np.load(tmp_path / "actions.npy"), expected, atol=1e-5)

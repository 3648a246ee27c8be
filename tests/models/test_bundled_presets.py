"""Presets default to the bundled models; the real_models/ presets switch to real weights by config alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from drivevlm.config import EnvConfig, build, read_yaml
from drivevlm.models.registry import BUNDLED_VLM_DIR, make_vlm
from drivevlm.presets import PRESETS_DIR
from drivevlm.rewards.config import reward_sections

FULL = ("drivevlm_rl", "drivevlm_rl_no_collision_penalty", "drivevlm_rl_highway")
CLIP_ONLY = ("vlm_rl", "vlm_rl_no_collision_penalty", "lord", "lord_speed", "vlm_rm", "vlm_sr", "roboclip")
REAL = sorted((PRESETS_DIR / "real_models").glob("*.yaml"))


@pytest.mark.parametrize("name", FULL + CLIP_ONLY)
def test_presets_use_the_bundled_models(name: str) -> None:
    reward, models = reward_sections(read_yaml(PRESETS_DIR / f"{name}.yaml"))
    assert (models.clip.backend, models.clip.model) == ("aligned", "bundled")
    if name in FULL:
        assert (models.detector.backend, models.detector.model) == ("tiny", "bundled")
        assert (models.lvlm.backend, models.lvlm.model) == ("qwen3vl", "bundled")
        assert models.detector.threshold <= reward.gate.threshold
    if reward.preset in ("drivevlm_rl", "vlm_rl"):
        # Calibrated for the bundled image-text model, not the paper's CLIP θ = [-0.03, 0].
        assert (reward.theta_min, reward.theta_max) != (-0.03, 0.0)


def test_real_model_configs_cover_the_bundled_presets() -> None:
    assert {p.stem for p in REAL} >= set(FULL + CLIP_ONLY)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_model_configs_validate_and_name_real_weights(path: Path) -> None:
    data = read_yaml(path)
    assert set(data) == {"env", "reward", "models", "train"}
    build(EnvConfig, data["env"], "env")
    reward, models = reward_sections(data)
    assert models.clip.backend in ("transformers", "open_clip") and "bundled" not in models.clip.model
    bundled_name = path.stem.replace("_yolo_inprocess", "")
    bundled_reward, _ = reward_sections(read_yaml(PRESETS_DIR / f"{bundled_name}.yaml"))
    assert reward.preset == bundled_reward.preset
    if reward.preset in ("drivevlm_rl", "vlm_rl"):
        assert (reward.theta_min, reward.theta_max) == (-0.03, 0.0)
    if reward.preset == "drivevlm_rl":
        assert models.detector.backend in ("rtdetr", "ultralytics")
        assert models.lvlm.model.startswith("Qwen/Qwen3-VL-")
        if models.lvlm.backend == "openai":
            assert models.lvlm.base_url == "http://127.0.0.1:8000/v1"


def test_bundled_name_reaches_the_in_process_qwen3vl_backend() -> None:
    vlm = make_vlm("qwen3vl", "bundled", max_new_tokens=24)
    frames = [np.full((128, 128, 3), 90 + 20 * i, dtype=np.uint8) for i in range(4)]
    from drivevlm.model_training.train_tiny_vlm import dynamic_prompt

    answer = vlm.generate(frames, dynamic_prompt(4))
    assert isinstance(answer, str) and answer.strip()
    assert (BUNDLED_VLM_DIR / "model.safetensors").is_file()


def test_calibrate_runs_the_default_preset_on_the_bundled_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drivevlm.cli import app

    monkeypatch.setenv("HOME", str(tmp_path))
    args = ["reward", "calibrate", "--config", "drivevlm_rl", "--frames", "20", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["preset"] == "drivevlm_rl" and report["frames"] == 20
    assert report["r_static"]["count"] == 20 and report["lvlm_fallbacks"] == 0

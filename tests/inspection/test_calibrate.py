"""Calibration on simulator frames: a semantic preset on tiny real models, a baseline, an oracle, --write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from drivevlm.config import ConfigError
from drivevlm.inspection.calibrate import run_calibration, write_calibrated_config
from drivevlm.presets import PRESETS_DIR, load_preset
from drivevlm.rewards.config import reward_sections
from support.chat_server import ChatServer, Reply
from support.tiny_presets import GOAL, server_lvlm, tiny_preset

DISTRIBUTION_KEYS = {"count", "mean", "std", "min", "p5", "p25", "p50", "p75", "p95", "max"}


@pytest.fixture(scope="module")
def semantic_result(
    tiny_clip_dir: Path, tiny_rtdetr_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, dict, int]:
    cache = tmp_path_factory.mktemp("cache")
    with ChatServer([Reply(GOAL)]) as server:
        data = tiny_preset(tiny_clip_dir, tiny_rtdetr_dir, cache, server_lvlm(server.base_url))
        result = run_calibration(
            data, frames=12, scenarios=["pedestrian_crossing", "car_following"], stride=4
        )
        asked = len(server.requests)
    return data, result, asked


def test_semantic_preset_reports_distributions_gate_rate_and_theta(semantic_result: tuple) -> None:
    _, result, asked = semantic_result
    assert result["preset"] == "drivevlm_rl" and result["oracle"] is False and result["frames"] == 12
    for key in ("r_static", "combined"):
        assert set(result[key]) == DISTRIBUTION_KEYS and result[key]["count"] == 12
    gated = result["r_dynamic_gated"]
    assert gated["count"] == round(result["gate_rate"] * 12) > 0
    # The cache is empty at first, so the LVLM server saw exactly the gate-open frames.
    assert asked == gated["count"]
    assert result["lvlm_fallbacks"] == 0 and result["lvlm_fallback_reasons"] == {}
    assert result["suggested_theta_min"] == pytest.approx(result["combined"]["p5"])
    assert result["suggested_theta_max"] == pytest.approx(result["combined"]["p95"])
    assert result["current_theta"] == [-0.03, 0.0]
    assert result["scored_frames_per_s"] > 0
    by_scenario = result["gate_rate_by_scenario"]
    assert list(by_scenario) == ["pedestrian_crossing", "car_following"]
    assert np.mean(list(by_scenario.values())) == pytest.approx(result["gate_rate"])


def test_write_puts_the_suggested_theta_into_a_copy_of_the_config(
    semantic_result: tuple, tmp_path: Path
) -> None:
    data, result, _ = semantic_result
    path = write_calibrated_config(data, result, tmp_path / "calibrated.yaml")
    written = yaml.safe_load(path.read_text())
    reward, models = reward_sections(written)
    assert reward.theta_min == pytest.approx(result["suggested_theta_min"])
    assert reward.theta_max == pytest.approx(result["suggested_theta_max"])
    assert models.clip.model == data["models"]["clip"]["model"]
    assert written["env"] == data["env"]
    assert data["reward"].get("theta_min") is None, "the caller's mapping must not change"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibrated.yaml"], "no temporary file left"


def test_baseline_preset_needs_no_frames_and_reports_its_terms() -> None:
    result = run_calibration(load_preset("chen_sac"), frames=6, scenarios=["car_following"])
    assert result["needs_frames"] is False and result["frames"] == 6
    assert {"r_collision", "v_lon", "r_fast", "r_out", "r_steer", "r_lat"} <= set(result["terms"])
    assert result["terms"]["v_lon"]["count"] == 6 and result["final"]["count"] == 6
    assert result["suggested_theta_min"] is None and "does not normalise" in result["theta_note"]
    with pytest.raises(ConfigError, match="write: preset chen does not normalise"):
        write_calibrated_config({}, result, Path("unused.yaml"))


def test_oracle_preset_is_labelled() -> None:
    data = load_preset(PRESETS_DIR / "drivevlm_rl_oracle.yaml", ["reward.oracle.vru_gate_range_m=40"])
    result = run_calibration(data, frames=4, scenarios=["slow_cyclist"], stride=2)
    assert result["oracle"] is True and result["preset"] == "drivevlm_rl_oracle"
    assert result["terms"]["oracle"]["mean"] == 1.0
    assert result["terms"]["gate"]["mean"] > 0


def test_a_preset_with_a_scenario_mix_is_sampled_on_its_mix(tmp_path: Path) -> None:
    env = {"town": "highway", "scenario_mix": ["slow_truck", "cut_in"], "cache_dir": str(tmp_path)}
    result = run_calibration({"reward": {"preset": "chen"}, "env": env}, frames=4, stride=2)
    assert result["scenarios"] == ["slow_truck", "cut_in"] and result["frames"] == 4


def test_bad_config_inputs_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config: no such file"):
        load_preset(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"reward\.preset: unknown preset 'nope'"):
        run_calibration({"reward": {"preset": "nope"}}, frames=1)
    with pytest.raises(ConfigError, match=r"env\.density"):
        run_calibration({"reward": {"preset": "chen"}, "env": {"density": "jammed"}}, frames=1)

"""The `reward:`/`models:` config sections and every shipped preset (drivevlm.presets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivevlm.config import ConfigError, EnvConfig, build, read_yaml
from drivevlm.models.config import DetectorConfig, ModelsConfig
from drivevlm.models.detectors.tiny import TinyDetector
from drivevlm.presets import PRESETS_DIR
from drivevlm.rewards.build import InjectedModels, RegistryModelFactory, build_reward
from drivevlm.rewards.config import RewardConfig, reward_sections
from drivevlm.rewards.registry import preset_names

PRESET_FILES = sorted(PRESETS_DIR.glob("*.yaml"))
PAPER_PRESETS = {
    "drivevlm_rl", "vlm_rl", "tirl_sac", "chen_sac", "asap_ppo", "chatscene_ppo", "chatscene_sac", "revolve",
    "revolve_auto", "vlm_sr", "roboclip", "vlm_rm", "lord", "lord_speed", "drivevlm_rl_no_collision_penalty",
    "vlm_rl_no_collision_penalty", "oracle_static", "drivevlm_rl_oracle",
}  # fmt: skip


def test_every_method_has_a_preset_file() -> None:
    assert {path.stem for path in PRESET_FILES} >= PAPER_PRESETS


@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: p.stem)
def test_preset_files_validate_and_cite_their_source(path: Path) -> None:
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# ") and len(first_line) > 30
    data = read_yaml(path)
    assert set(data) == {"env", "reward", "models", "train"}
    assert data["train"]["algo"] in ("sac", "ppo")
    build(EnvConfig, data["env"], "env")
    reward, _ = reward_sections(data)
    assert reward.preset in preset_names()
    if "oracle" in path.stem:
        assert "oracle" in reward.preset and "ORACLE" in first_line


def test_no_collision_penalty_presets_set_zero() -> None:
    for stem in ("drivevlm_rl_no_collision_penalty", "vlm_rl_no_collision_penalty"):
        reward, _ = reward_sections(read_yaml(next(p for p in PRESET_FILES if p.stem == stem)))
        assert reward.collision_penalty == 0.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reward": {"alpah": 1}}, "reward.alpah: Extra inputs are not permitted"),
        ({"reward": {"preset": "lordd"}}, "reward.preset: unknown preset 'lordd'"),
        ({"reward": {"theta_min": 0.1, "theta_max": 0.0}}, "theta_max (0.0) must be greater than theta_min"),
        (
            {"reward": {"gate": {"classes": ["pedestrain"]}}},
            "reward.gate.classes: 'pedestrain' is not a COCO",
        ),
        ({"reward": {"gate": {"threshold": 2}}}, "reward.gate.threshold"),
        ({"reward": {"gate": {"mode": "lane"}}}, "reward.gate.mode"),
        ({"reward": {"gate": {"half_width_m": 0}}}, "reward.gate.half_width_m"),
        ({"models": {"lvlm": {"batch_size": 0}}}, "models.lvlm.batch_size"),
        ({"reward": {"window_frames": 0}}, "reward.window_frames"),
        ({"reward": {"goals": {"positive": " "}}}, "reward.goals.positive: must not be empty"),
        ({"models": {"lvlm": {"backend": "gpt"}}}, "models.lvlm.backend"),
        ({"models": {"lvlm": {"timeout_s": 0}}}, "models.lvlm.timeout_s"),
        ({"models": {"clip": {"modle": "x"}}}, "models.clip.modle: Extra inputs"),
        ({"reward": []}, "reward: expected a mapping"),
    ],
)
def test_bad_values_name_their_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        reward_sections(data)
    assert message in str(caught.value)


def test_defaults_are_the_method_defaults() -> None:
    reward, models = reward_sections({})
    assert (reward.preset, reward.alpha, reward.beta) == ("drivevlm_rl", 1.0, 1.0)
    assert (reward.theta_min, reward.theta_max, reward.window_frames) == (-0.03, 0.0, 4)
    assert reward.gate.classes == ("person", "bicycle", "motorcycle") and reward.gate.threshold == 0.25
    assert reward.gate.mode == "class"  # the paper's gate
    assert reward.collision_penalty == -10.0 and reward.target_speed_kmh == 25.0
    assert models.lvlm.backend == "openai" and models.lvlm.concurrency >= 1


def test_detector_floor_above_gate_threshold_is_rejected() -> None:
    models = ModelsConfig.model_validate({"detector": {"threshold": 0.5}})
    with pytest.raises(
        ConfigError, match=r"models.detector.threshold \(0.5\) is above reward.gate.threshold"
    ):
        build_reward(RewardConfig(preset="tirl"), models, InjectedModels())


def test_detector_options_reach_the_backend_and_unknown_ones_name_the_field() -> None:
    factory = RegistryModelFactory()
    options = {"flip_test": False, "batch_size": 8}
    detector = factory.make_detector(DetectorConfig(backend="tiny", model="bundled", options=options))
    assert detector.flip_test is False and detector.batch_size == 8  # type: ignore[attr-defined]
    assert TinyDetector("bundled").flip_test is True  # the model's own default is untouched
    with pytest.raises(ConfigError, match=r"models.detector.options: the 'tiny' detector refused \['flip'\]"):
        factory.make_detector(DetectorConfig(backend="tiny", model="bundled", options={"flip": False}))

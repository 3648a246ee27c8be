import pytest

from drivevlm.config import ConfigError, EnvConfig, apply_overrides, build, read_yaml


def test_defaults_are_valid() -> None:
    config = build(EnvConfig, {})
    assert config.town == "grid" and config.density == "regular" and config.bev_history == (10, 5, 0)


def test_every_bad_field_is_named() -> None:
    with pytest.raises(ConfigError) as error:
        build(EnvConfig, {"town": "nowhere", "bev_size": 4}, "env")
    message = str(error.value)
    assert "env.town: unknown value 'nowhere'; allowed: grid, highway, irregular, tee" in message
    assert "env.bev_size" in message


def test_misspelt_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"env\.densty"):
        build(EnvConfig, {"densty": "dense"}, "env")


def test_history_must_be_oldest_first() -> None:
    with pytest.raises(ConfigError, match="bev_history"):
        build(EnvConfig, {"bev_history": [0, 5]})


def test_overrides_parse_yaml_values() -> None:
    data = apply_overrides(
        {"env": {"town": "grid"}}, ["env.density=dense", "env.seed=3", "train.total_timesteps=1e3"]
    )
    assert data == {"env": {"town": "grid", "density": "dense", "seed": 3}, "train": {"total_timesteps": 1e3}}


def test_override_without_equals_is_an_error() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["env.density"])


def test_missing_or_non_mapping_yaml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_yaml(bad)

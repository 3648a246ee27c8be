"""The method presets shipped inside the package (one YAML per method), so a pip install has them too.

`--config` takes a preset name (`drivevlm_rl`, `real_models/drivevlm_rl`) or the path of any YAML file.
"""

from __future__ import annotations

from pathlib import Path

from drivevlm.config import ConfigError

PRESETS_DIR = Path(__file__).resolve().parent


def preset_names() -> list[str]:
    """Every shipped preset by name, the real-weight variants as `real_models/<name>`."""
    return sorted(p.relative_to(PRESETS_DIR).with_suffix("").as_posix() for p in PRESETS_DIR.rglob("*.yaml"))


def resolve_preset(value: str | Path) -> Path:
    """An existing YAML file as given, else the shipped preset of that name; a clear error otherwise."""
    path = Path(value)
    if path.is_file():
        return path
    name = path.as_posix().removesuffix(".yaml")
    shipped = PRESETS_DIR / f"{name}.yaml"
    if not path.is_absolute() and shipped.is_file():
        return shipped
    raise ConfigError(f"config: no such file or preset {str(value)!r}; presets: {', '.join(preset_names())}")


def preset_summary(name: str) -> str:
    """The shipped preset's first comment line: what the method is and where it comes from."""
    first = (PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[:1]
    return first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""

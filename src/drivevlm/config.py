"""Typed configuration. Every invalid value is an error that names its field.

Each section is a pydantic model with `extra="forbid"`, so a misspelt key is an error too.
YAML presets (`drivevlm.presets`, or any file) are read by `read_yaml`; `--set a.b=value` overrides apply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from drivevlm.sim.scenarios import SCENARIOS, SIMULATOR_TOWNS, Density, check_choice, check_town, town_default


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class EnvConfig(Section):
    simulator: str = "sumo"
    town: str = "grid"
    scenario: str = "random"
    # Scenarios to draw one from per episode (uniformly, with the env's seed), e.g. a training mix of the
    # motorway hazards; empty: always `scenario`. A scenario named in reset's options still wins.
    scenario_mix: tuple[str, ...] = ()
    density: str = Density.REGULAR.value
    seed: int = 0
    # Training-only terminations (off route, too fast); evaluation turns this off.
    training: bool = True
    max_episode_steps: int = Field(3000, ge=1)
    off_route_m: float = Field(3.0, gt=0)
    # Unset: the town's (urban 35, highway 130 km/h).
    max_speed_kmh: float | None = Field(None, gt=0, validate_default=True)
    stopped_seconds: float = Field(90.0, gt=0)
    # Training only, both off in VLM-RL: running a red signal ends the episode (as leaving the route does),
    # and the stopped timer pauses while the ego waits at a red stop line or behind a vehicle (a short
    # stopped rule would otherwise punish the waiting the signals ask for).
    red_light_termination: bool = False
    stopped_counts_waiting: bool = True
    # The speed asked for on a clear road; unset: the town's (urban 25, highway 100 km/h).
    target_speed_kmh: float | None = Field(None, gt=0, validate_default=True)
    # Policy observation: BEV semantic masks, square, ego-centred and heading-up.
    bev_size: int = Field(96, ge=16, le=512)
    bev_pixels_per_meter: float = Field(3.0, gt=0)
    # Steps back in time of the dynamic mask channels (0 = now), oldest first.
    bev_history: tuple[int, ...] = (10, 5, 0)
    # A `stop_lights` mask channel with the stop lines of red and amber signals. Off by default: VLM-RL's
    # masks have no lights (and old checkpoints expect their channel count); the laptop recipe turns it on.
    bev_traffic_lights: bool = False
    route_waypoints: int = Field(15, ge=1)
    waypoint_spacing_m: float = Field(2.0, gt=0)
    # raw: [steer, throttle, speed km/h, waypoints in m] as VLM-RL feeds them; normalized: speed divided by
    # target_speed_kmh and waypoints by their reach (route_waypoints * waypoint_spacing_m), so every entry
    # lies near [-1, 1] like the 0/1 mask features beside it.
    state_units: Literal["raw", "normalized"] = "raw"
    # Append the ego's offset from the route (m, left positive) and its heading error (rad) to the state:
    # the feedback a lane keeper needs, which the waypoints carry only as small differences (normalised,
    # a 0.5 m offset is 0.017). Off by default: VLM-RL's state has no such entries.
    route_errors: bool = False
    # Append what a forward range sensor (an ACC's radar) reports: the gap to the first actor the ego's
    # width would sweep along its heading (m, capped at 60; normalized: / 60) and the speed it closes in
    # on it (km/h; normalized: / target_speed_kmh; 0 when none). Off by default: not in VLM-RL's state.
    front_gap: bool = False
    # RGB frames for the reward models: rendered into `info` only when asked for.
    render_frames: bool = False
    rgb_size: int = Field(224, ge=32, le=1024)
    # Use the simulator's own cameras for the frames when it has them (CARLA), else our renderers.
    simulator_cameras: bool = True
    # Where generated town networks are cached; None: ~/.cache/drivevlm.
    cache_dir: Path | None = None
    # Backend-specific options (e.g. a CARLA host and port).
    backend_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("scenario")
    @classmethod
    def _scenario(cls, value: str) -> str:
        return check_choice("scenario", value, SCENARIOS)

    @field_validator("scenario_mix")
    @classmethod
    def _scenario_mix(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_choice(f"scenario_mix[{i}]", name, SCENARIOS) for i, name in enumerate(value))

    @field_validator("density")
    @classmethod
    def _density(cls, value: str) -> str:
        return check_choice("density", value, [d.value for d in Density])

    @field_validator("simulator")
    @classmethod
    def _simulator(cls, value: str) -> str:
        return check_choice("simulator", value, SIMULATOR_TOWNS)

    @field_validator("town")
    @classmethod
    def _town(cls, value: str, info: ValidationInfo) -> str:
        return check_town(value, info.data.get("simulator", "sumo"))

    @field_validator("target_speed_kmh", "max_speed_kmh")
    @classmethod
    def _town_speed(cls, value: float | None, info: ValidationInfo) -> float:
        return town_default(info.data.get("town", "grid"), info.field_name) if value is None else value

    @field_validator("bev_history")
    @classmethod
    def _history(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        ordered = list(value) == sorted(set(value), reverse=True)
        if not value or value[-1] != 0 or not ordered:
            raise ValueError(
                "expected distinct step offsets, oldest first, ending with 0 (now), e.g. (10, 5, 0)"
            )
        return value

    @property
    def state_units_kmh_m(self) -> tuple[float, float]:
        """What one unit of the state's speed and waypoint entries is, in km/h and metres."""
        if self.state_units == "raw":
            return 1.0, 1.0
        assert self.target_speed_kmh is not None  # the validator fills in the town's
        return self.target_speed_kmh, self.route_waypoints * self.waypoint_spacing_m


def _format_error(error: ValidationError, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        message = item["msg"].removeprefix("Value error, ")
        head, sep, rest = message.partition(": ")
        if sep and head.isidentifier() and (not loc or loc[-1] == head):
            # A validator that names its field ("town: unknown value ...") reports at that field.
            loc, message = [*loc[:-1], head] if loc else [head], rest
        lines.append(f"{'.'.join(p for p in (prefix, *loc) if p)}: {message}")
    return "; ".join(lines)


def build(model: type[Section], data: dict[str, Any], prefix: str = "") -> Any:
    """Validate `data` into `model`, raising a ConfigError that names each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_error(error, prefix)) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. env.density=dense")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        # YAML 1.1 reads "1e5" as a string; a number is what anyone typing it means.
        with contextlib.suppress(ValueError):
            value = float(value)
    return key.strip().split("."), value


def set_path(data: dict[str, Any], path: Sequence[str], value: Any, source: str) -> None:
    """data[path[0]][path[1]]... = value, creating sections; `source` names the setting in errors."""
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: {part} is not a section")
    node[path[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        set_path(data, path, value, f"override {text!r}")
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config: no such file {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping at the top level")
    return data

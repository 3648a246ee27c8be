"""Hierarchical reward synthesis (DriveVLM-RL Fig. 4c): pure, vectorised functions of numbers.

Phase I fuses the semantic scores and normalises them to [0, 1] with θmin, θmax.
Phase II multiplies four driving factors; the desired speed of the first one is scaled by the semantic score,
so the VLMs decide how fast it is safe to go and the driving factors decide how well the ego follows its lane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ArrayLike = np.ndarray | float | list[float]


@dataclass(frozen=True, slots=True)
class ShapingParams:
    """Constants of Phase II; defaults are VLM-RL's `reward_fn_5_default`."""

    target_speed_kmh: float = 25.0
    max_center_offset_m: float = 3.0
    max_heading_error_deg: float = 90.0
    max_center_offset_std_m: float = 0.4

    def __post_init__(self) -> None:
        for name in (
            "target_speed_kmh",
            "max_center_offset_m",
            "max_heading_error_deg",
            "max_center_offset_std_m",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")


def _array(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def normalise(combined: ArrayLike, theta_min: float, theta_max: float) -> np.ndarray:
    """R_norm = (clip(R, θmin, θmax) − θmin) / (θmax − θmin), in [0, 1]."""
    if not theta_max > theta_min:
        raise ValueError(f"theta_max ({theta_max}) must be greater than theta_min ({theta_min})")
    values = _array(combined)
    return (np.clip(values, theta_min, theta_max) - theta_min) / (theta_max - theta_min)


def desired_speed(r_norm: ArrayLike, target_speed_kmh: float) -> np.ndarray:
    """v_des = clip(R_norm, 0, 1) · v_target."""
    return np.clip(_array(r_norm), 0.0, 1.0) * target_speed_kmh


def speed_factor(speed_kmh: ArrayLike, v_des_kmh: ArrayLike, target_speed_kmh: float) -> np.ndarray:
    """f_speed = 1 − |v − v_des| / v_target (negative when far above the desired speed, as in VLM-RL)."""
    return 1.0 - np.abs(_array(speed_kmh) - _array(v_des_kmh)) / target_speed_kmh


def center_factor(center_offset_m: ArrayLike, max_offset_m: float = 3.0) -> np.ndarray:
    """f_center = max(1 − |d| / d_max, 0)."""
    return np.maximum(1.0 - np.abs(_array(center_offset_m)) / max_offset_m, 0.0)


def angle_factor(heading_error_deg: ArrayLike, max_error_deg: float = 90.0) -> np.ndarray:
    """f_angle = max(1 − |θ| / θ_max, 0)."""
    return np.maximum(1.0 - np.abs(_array(heading_error_deg)) / max_error_deg, 0.0)


def stability_factor(center_offset_std_m: ArrayLike, max_std_m: float = 0.4) -> np.ndarray:
    """f_stability = max(1 − std(d) / std_max, 0)."""
    return np.maximum(1.0 - np.abs(_array(center_offset_std_m)) / max_std_m, 0.0)


def shaping_terms(
    r_norm: ArrayLike,
    speed_kmh: ArrayLike,
    center_offset_m: ArrayLike,
    heading_error_deg: ArrayLike,
    center_offset_std_m: ArrayLike,
    params: ShapingParams | None = None,
) -> dict[str, np.ndarray]:
    """Phase II: every factor and their product `r_shaping`, each an array over the batch."""
    p = params or ShapingParams()
    v_des = desired_speed(r_norm, p.target_speed_kmh)
    terms = {
        "v_des": v_des,
        "f_speed": speed_factor(speed_kmh, v_des, p.target_speed_kmh),
        "f_center": center_factor(center_offset_m, p.max_center_offset_m),
        "f_angle": angle_factor(heading_error_deg, p.max_heading_error_deg),
        "f_stability": stability_factor(center_offset_std_m, p.max_center_offset_std_m),
    }
    terms["r_shaping"] = terms["f_speed"] * terms["f_center"] * terms["f_angle"] * terms["f_stability"]
    return terms


def final_reward(shaping: ArrayLike, collided: ArrayLike, collision_penalty: float | None) -> np.ndarray:
    """R_final = R_penalty on a collision step, else R_shaping; `None` keeps R_shaping on collision steps too.

    A penalty of 0 is the paper's no-reward-after-collision experiment (Table 3).
    """
    values = _array(shaping)
    if collision_penalty is None:
        return values.copy()
    return np.where(np.asarray(collided, dtype=bool), float(collision_penalty), values)

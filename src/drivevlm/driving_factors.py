"""Phase II of the reward synthesis (DriveVLM-RL Fig. 4c): how well the ego drives, as pure functions of
vehicle numbers and a desired speed.

They live beside the env, not in `rewards/`: the env's provisional reward is their product at the full
target speed, and the semantic rewards (`rewards/synthesis.py`, `rewards/semantic.py`) only choose the
desired speed they are measured against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ArrayLike = np.ndarray | float | list[float]


@dataclass(frozen=True, slots=True)
class ShapingParams:
    """Constants of Phase II; defaults are VLM-RL's `reward_fn_5_default`. `target_speed_kmh=None`: each
    frame's own target speed, given to `shaping_terms` (the env's, e.g. a motorway's 100 km/h)."""

    target_speed_kmh: float | None = 25.0
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
            value = getattr(self, name)
            if value is None and name == "target_speed_kmh":
                continue  # each frame brings its own
            if not value > 0:
                raise ValueError(f"{name}: must be > 0, got {value}")


def as_array(values: ArrayLike) -> np.ndarray:
    """Scalars, lists and arrays alike as a float64 array."""
    return np.asarray(values, dtype=np.float64)


def desired_speed(r_norm: ArrayLike, target_speed_kmh: ArrayLike) -> np.ndarray:
    """v_des = clip(R_norm, 0, 1) · v_target."""
    return np.clip(as_array(r_norm), 0.0, 1.0) * as_array(target_speed_kmh)


def speed_factor(speed_kmh: ArrayLike, v_des_kmh: ArrayLike, target_speed_kmh: ArrayLike) -> np.ndarray:
    """f_speed = 1 − |v − v_des| / v_target (negative when far above the desired speed, as in VLM-RL)."""
    return 1.0 - np.abs(as_array(speed_kmh) - as_array(v_des_kmh)) / as_array(target_speed_kmh)


def center_factor(center_offset_m: ArrayLike, max_offset_m: float = 3.0) -> np.ndarray:
    """f_center = max(1 − |d| / d_max, 0)."""
    return np.maximum(1.0 - np.abs(as_array(center_offset_m)) / max_offset_m, 0.0)


def angle_factor(heading_error_deg: ArrayLike, max_error_deg: float = 90.0) -> np.ndarray:
    """f_angle = max(1 − |θ| / θ_max, 0)."""
    return np.maximum(1.0 - np.abs(as_array(heading_error_deg)) / max_error_deg, 0.0)


def stability_factor(center_offset_std_m: ArrayLike, max_std_m: float = 0.4) -> np.ndarray:
    """f_stability = max(1 − std(d) / std_max, 0)."""
    return np.maximum(1.0 - np.abs(as_array(center_offset_std_m)) / max_std_m, 0.0)


def shaping_terms(
    r_norm: ArrayLike,
    speed_kmh: ArrayLike,
    center_offset_m: ArrayLike,
    heading_error_deg: ArrayLike,
    center_offset_std_m: ArrayLike,
    params: ShapingParams | None = None,
    target_speed_kmh: ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    """Phase II: every factor and their product `r_shaping`, each an array over the batch.

    v_target is `params.target_speed_kmh`, or where that is None, `target_speed_kmh` (per frame).
    """
    p = params or ShapingParams()
    target = p.target_speed_kmh if p.target_speed_kmh is not None else target_speed_kmh
    if target is None:
        raise ValueError("target_speed_kmh: needed per frame when ShapingParams.target_speed_kmh is None")
    v_des = desired_speed(r_norm, target)
    terms = {
        "v_des": v_des,
        "f_speed": speed_factor(speed_kmh, v_des, target),
        "f_center": center_factor(center_offset_m, p.max_center_offset_m),
        "f_angle": angle_factor(heading_error_deg, p.max_heading_error_deg),
        "f_stability": stability_factor(center_offset_std_m, p.max_center_offset_std_m),
    }
    terms["r_shaping"] = terms["f_speed"] * terms["f_center"] * terms["f_angle"] * terms["f_stability"]
    return terms

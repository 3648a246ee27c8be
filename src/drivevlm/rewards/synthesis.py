"""Hierarchical reward synthesis (DriveVLM-RL Fig. 4c): pure, vectorised functions of numbers.

Phase I fuses the semantic scores and normalises them to [0, 1] with θmin, θmax (`normalise`).
Phase II multiplies four driving factors (`drivevlm.driving_factors.shaping_terms`, beside the env, which
uses them for its provisional reward); the desired speed of the first one is scaled by the semantic score,
so the VLMs decide how fast it is safe to go and the driving factors decide how well the ego follows its lane.
`final_reward` puts the collision penalty on top.
"""

from __future__ import annotations

import numpy as np

from drivevlm.driving_factors import ArrayLike, as_array


def normalise(combined: ArrayLike, theta_min: float, theta_max: float) -> np.ndarray:
    """R_norm = (clip(R, θmin, θmax) − θmin) / (θmax − θmin), in [0, 1]."""
    if not theta_max > theta_min:
        raise ValueError(f"theta_max ({theta_max}) must be greater than theta_min ({theta_min})")
    values = as_array(combined)
    return (np.clip(values, theta_min, theta_max) - theta_min) / (theta_max - theta_min)


def final_reward(shaping: ArrayLike, collided: ArrayLike, collision_penalty: float | None) -> np.ndarray:
    """R_final = R_penalty on a collision step, else R_shaping; `None` keeps R_shaping on collision steps too.

    A penalty of 0 is the paper's no-reward-after-collision experiment (Table 3).
    """
    values = as_array(shaping)
    if collision_penalty is None:
        return values.copy()
    return np.where(np.asarray(collided, dtype=bool), float(collision_penalty), values)

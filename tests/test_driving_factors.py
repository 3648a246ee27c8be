"""Phase II of the reward synthesis (the driving factors) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from drivevlm.driving_factors import (
    ShapingParams,
    angle_factor,
    center_factor,
    desired_speed,
    shaping_terms,
    speed_factor,
    stability_factor,
)


def test_factors_match_hand_computed_values() -> None:
    # v_des = 0.6 * 25 = 15; f_speed = 1 - |20 - 15| / 25 = 0.8
    np.testing.assert_allclose(desired_speed([0.6, 1.4, -0.2], 25.0), [15.0, 25.0, 0.0])
    np.testing.assert_allclose(speed_factor([20.0, 40.0], [15.0, 15.0], 25.0), [0.8, 0.0])
    np.testing.assert_allclose(speed_factor([50.0], [0.0], 25.0), [-1.0])
    # f_center = max(1 - |d|/3, 0)
    np.testing.assert_allclose(center_factor([0.0, -1.5, 3.0, 4.5]), [1.0, 0.5, 0.0, 0.0])
    # f_angle = max(1 - |θ|/90, 0)
    np.testing.assert_allclose(angle_factor([0.0, -45.0, 120.0]), [1.0, 0.5, 0.0])
    # f_stability = max(1 - std/0.4, 0)
    np.testing.assert_allclose(stability_factor([0.0, 0.1, 0.5]), [1.0, 0.75, 0.0])


def test_shaping_is_the_product_of_the_factors() -> None:
    terms = shaping_terms(
        r_norm=[0.6, 1.0],
        speed_kmh=[20.0, 25.0],
        center_offset_m=[1.5, 0.0],
        heading_error_deg=[45.0, 0.0],
        center_offset_std_m=[0.1, 0.0],
    )
    # 0.8 * 0.5 * 0.5 * 0.75 = 0.15 ; perfect step = 1
    np.testing.assert_allclose(terms["r_shaping"], [0.15, 1.0])
    np.testing.assert_allclose(terms["v_des"], [15.0, 25.0])
    assert set(terms) == {"v_des", "f_speed", "f_center", "f_angle", "f_stability", "r_shaping"}


def test_custom_shaping_params_are_used() -> None:
    params = ShapingParams(target_speed_kmh=30.0, max_center_offset_m=2.0)
    terms = shaping_terms([0.5], [15.0], [1.0], [0.0], [0.0], params)
    np.testing.assert_allclose(terms["v_des"], [15.0])
    np.testing.assert_allclose(terms["f_center"], [0.5])
    with pytest.raises(ValueError, match="max_center_offset_std_m"):
        ShapingParams(max_center_offset_std_m=0.0)


def test_without_a_fixed_target_each_frame_brings_its_own() -> None:
    """A town's own target speed (urban 25, motorway 100 km/h) sets v_target frame by frame."""
    follow = ShapingParams(target_speed_kmh=None)
    terms = shaping_terms([0.5, 0.5], [20.0, 20.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], follow, [25.0, 100.0])
    np.testing.assert_allclose(terms["v_des"], [12.5, 50.0])
    np.testing.assert_allclose(terms["f_speed"], [1 - 7.5 / 25, 1 - 30 / 100])
    with pytest.raises(ValueError, match="target_speed_kmh"):
        shaping_terms([0.5], [20.0], [0.0], [0.0], [0.0], follow)

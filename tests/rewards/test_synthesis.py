"""Hierarchical reward synthesis against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from drivevlm.rewards.synthesis import final_reward, normalise


def test_normalise_clips_and_scales_to_unit_range() -> None:
    values = normalise([-0.05, -0.03, -0.015, 0.0, 0.02], -0.03, 0.0)
    np.testing.assert_allclose(values, [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(normalise([0.25], -1.0, 1.0), [0.625])


def test_normalise_rejects_empty_theta_range() -> None:
    with pytest.raises(ValueError, match="theta_max"):
        normalise([0.0], 0.1, 0.1)


def test_final_reward_penalises_collision_steps_only() -> None:
    np.testing.assert_allclose(final_reward([0.3, 0.7], [False, True], -10.0), [0.3, -10.0])
    # The no-reward-after-collision experiment.
    np.testing.assert_allclose(final_reward([0.3, 0.7], [0, 1], 0.0), [0.3, 0.0])
    np.testing.assert_allclose(final_reward([0.3, 0.7], [0, 1], None), [0.3, 0.7])

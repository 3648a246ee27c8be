"""Metrics on hand-made episode logs; every expected value is worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivevlm.eval import metrics as m
from drivevlm.eval.episode_log import EpisodeLog


def _episodes() -> list[EpisodeLog]:
    # ep1: 4 steps, mean speed 20, 8 m, no collision, one lane invasion event (two flagged steps), RC 0.4.
    ep1 = EpisodeLog.from_steps(
        speed_kmh=[10, 20, 30, 20],
        distance_m=[1, 3, 6, 8],
        route_completion=[0.1, 0.2, 0.3, 0.4],
        lane_invasion=[False, True, True, False],
        termination_reason="stopped",
    )
    # ep2: 2 steps, mean speed 30, 10 m, hits a pedestrian at 18 km/h on its 2nd step; RC 1.5 (routes chain).
    ep2 = EpisodeLog.from_steps(
        speed_kmh=[40, 20],
        distance_m=[5, 10],
        collision=[False, True],
        collision_kind=["", "pedestrian"],
        collision_speed_kmh=[0, 18],
        route_completion=[0.5, 1.5],
        termination_reason="collision",
    )
    # ep3: 5 steps, mean speed 5, 5 m, hits a car at 9 km/h on its 5th step; RC 0.9.
    ep3 = EpisodeLog.from_steps(
        speed_kmh=[5] * 5,
        distance_m=[1, 2, 3, 4, 5],
        collision=[False] * 4 + [True],
        collision_kind=[""] * 4 + ["car"],
        collision_speed_kmh=[0] * 4 + [9],
        route_completion=[0.1, 0.3, 0.5, 0.7, 0.9],
        termination_reason="collision",
    )
    # ep4: 3 steps, mean speed 12, 250 m, finished its route.
    ep4 = EpisodeLog.from_steps(
        speed_kmh=[12, 12, 12],
        distance_m=[100, 200, 250],
        route_completion=[0.4, 0.8, 1.0],
        success=True,
        termination_reason="route_finished",
    )
    return [ep1, ep2, ep3, ep4]


def test_speed_completion_distance() -> None:
    eps = _episodes()
    assert m.average_speed(eps) == pytest.approx((20 + 30 + 5 + 12) / 4)
    assert m.routes_completed(eps) == pytest.approx((0.4 + 1.5 + 0.9 + 1.0) / 4)
    assert m.routes_completed(eps, clip_to_one=True) == pytest.approx((0.4 + 1.0 + 0.9 + 1.0) / 4)
    assert m.total_distance(eps) == pytest.approx((8 + 10 + 5 + 250) / 4)


def test_collision_speed_training_and_testing_definitions_differ() -> None:
    eps = _episodes()
    # 14 steps in all; the two collision steps logged 18 and 9 km/h, every other step 0.
    assert m.collision_speed_per_step(eps) == pytest.approx(27 / 14)
    assert m.collision_speed_per_event(eps) == pytest.approx(13.5)
    assert m.collision_speed_per_event([eps[0], eps[3]]) == 0.0


def test_collision_rate_uses_the_last_window_episodes() -> None:
    eps = _episodes()
    assert m.collision_rate(eps) == pytest.approx(0.5)
    assert m.collision_rate(eps, window=3) == pytest.approx(2 / 3)
    assert m.collision_rate(eps, window=1) == 0.0
    many = [eps[1]] * 50 + [eps[0]] * 100
    assert m.collision_rate(many) == 0.0
    with pytest.raises(ValueError, match="window"):
        m.collision_rate(eps, window=0)


def test_inter_collision_time_counts_global_steps() -> None:
    eps = _episodes()
    # Global step counter: ep1 takes steps 1-4, ep2 collides at step 6, ep3 (steps 7-11) at step 11.
    assert m.collision_global_steps(eps).tolist() == [6, 11]
    assert m.inter_collision_time(eps) == pytest.approx((6 + 5) / 2)
    assert math.isnan(m.inter_collision_time([eps[0], eps[3]]))


def test_collision_frequencies_per_km_and_per_1000_steps() -> None:
    eps = _episodes()
    # Per collision episode: ep2 1 per 10 m = 100/km and 1 per 2 steps = 500/1000 steps; ep3 200/km, 200/1000.
    assert m.collisions_per_km(eps) == pytest.approx(150.0)
    assert m.collisions_per_1000_steps(eps) == pytest.approx(350.0)
    assert m.pooled_collisions_per_km(eps) == pytest.approx(2 / 0.273)
    assert m.pooled_collisions_per_1000_steps(eps) == pytest.approx(2000 / 14)
    assert m.collisions_per_km([eps[0]]) == 0.0
    stuck = EpisodeLog.from_steps(
        [0.0], [0.0], collision=[True], collision_kind=["car"], collision_speed_kmh=[0]
    )
    assert m.collisions_per_km([stuck]) == 0.0
    assert m.pooled_collisions_per_km([stuck]) == math.inf


def test_success_collisions_and_extreme_setting() -> None:
    eps = _episodes()
    assert m.success_rate(eps) == pytest.approx(0.25)
    assert m.average_collisions(eps) == pytest.approx(0.5)
    assert m.extreme_collision_rate(eps) == pytest.approx(0.5)
    assert m.extreme_collision_count(eps) == 2


def test_collisions_with_pedestrians_and_riders() -> None:
    eps = _episodes()
    # Only ep2 hit a vulnerable road user (a pedestrian at 18 km/h); ep3's car does not count.
    assert m.vru_collision_rate(eps) == pytest.approx(0.25)
    assert m.vru_collision_speed(eps) == pytest.approx(18.0)
    rider = EpisodeLog.from_steps(
        [6, 4], [1, 2], collision=[True, True], collision_kind=["bicycle", "car"], collision_speed_kmh=[6, 4],
        route_completion=[0.1, 0.2],
    )  # fmt: skip
    # Two VRU events (18 and 6 km/h) in two of five episodes; the car hit at 4 km/h is left out.
    assert m.vru_collision_rate([*eps, rider]) == pytest.approx(0.4)
    assert m.vru_collision_speed([*eps, rider]) == pytest.approx(12.0)
    assert m.vru_collision_speed([eps[0], eps[2]]) == 0.0


def test_driving_score_and_infractions_per_km() -> None:
    eps = _episodes()
    assert m.infraction_counts(eps[0]) == {"lane_invasion": 1}
    assert m.infraction_counts(eps[1]) == {"collision_pedestrian": 1}
    # ep1 0.4 x 0.95, ep2 min(1.5, 1) x 0.5, ep3 0.9 x 0.6, ep4 1.0.
    assert m.driving_score(eps) == pytest.approx((0.38 + 0.5 + 0.54 + 1.0) / 4)
    assert m.infractions_per_km(eps) == pytest.approx(3 / 0.273)
    static = EpisodeLog.from_steps(
        [10], [2], collision=[True], collision_kind=["static"], route_completion=[0.5]
    )
    assert m.driving_score([static]) == pytest.approx(0.5 * 0.65)
    with pytest.raises(ValueError, match="lane_invasion"):
        m.driving_score(eps, {**m.DEFAULT_PENALTIES, "lane_invasion": 1.5})
    with pytest.raises(KeyError, match="collision_car"):
        m.driving_score(eps, {"collision_pedestrian": 0.5, "lane_invasion": 0.9, "collision_other": 0.6})


def test_table_dicts_hold_the_paper_columns() -> None:
    eps = _episodes()
    train = m.training_metrics(eps)
    for key in ("AS", "RC", "TD", "CS", "CR", "ICT", "DCF", "TCF", "ExtCR", "ExtCol"):
        assert key in train
    assert train["CS"] == pytest.approx(27 / 14)
    assert train["RC"] == pytest.approx(0.95)
    test = m.testing_metrics(eps)
    assert test["CS"] == pytest.approx(13.5)
    assert test["RC"] == pytest.approx(0.825)
    assert test["SR"] == pytest.approx(0.25)
    assert test["VCR"] == pytest.approx(0.25) and test["VCS"] == pytest.approx(18.0)


def test_empty_or_wrong_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="episodes"):
        m.testing_metrics([])
    with pytest.raises(TypeError, match=r"episodes\[0\]"):
        m.average_speed([{"speed_kmh": [1.0]}])  # type: ignore[list-item]


def test_roc_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=40).astype(float)
    labels = rng.random(40) < 0.4
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p in scores[labels] for n in scores[~labels]]
    assert m.roc_auc(scores, labels) == pytest.approx(float(np.mean(pairs)))
    assert math.isnan(m.roc_auc(scores, np.zeros(40, dtype=bool)))

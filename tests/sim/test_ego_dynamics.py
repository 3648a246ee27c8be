import math

import pytest

from drivevlm.sim.ego_dynamics import BicycleParams, BicycleState, step_bicycle
from drivevlm.sim.world import Control, Pose

DT = 1.0 / 15.0


def run(state, control, steps):
    for _ in range(steps):
        state = step_bicycle(state, control, DT)
    return state


def test_straight_line_accelerates_along_heading():
    s = run(BicycleState(Pose(0, 0, math.pi / 2), 0.0), Control(0.0, 1.0), 30)
    assert s.speed == pytest.approx(2.0 * (3.0 - 0.3), rel=0.02)
    assert abs(s.pose.x) < 1e-9 and s.pose.y > 1.5 and s.pose.yaw == pytest.approx(math.pi / 2)


def test_turning_radius_matches_max_steer():
    p = BicycleParams()
    s = BicycleState(Pose(0, 0, 0), 5.0, steer=1.0)
    xs, ys = [], []
    for _ in range(200):
        s = step_bicycle(s, Control(1.0, 0.3 / 3.0), DT)  # throttle balances the coasting drag
        xs.append(s.pose.x)
        ys.append(s.pose.y)
    beta = math.atan(0.5 * math.tan(p.max_steer_rad))
    expected = 0.5 * p.wheelbase / math.sin(beta)
    diameter = max(ys) - min(ys)
    assert diameter / 2 == pytest.approx(expected, rel=0.05)


def test_braking_stops_without_reversing():
    s = BicycleState(Pose(0, 0, 0), 10.0)
    s = run(s, Control(0.0, -1.0), 15)
    assert s.speed == pytest.approx(2.0, abs=0.01)  # 8 m/s^2 for one second
    s = run(s, Control(0.0, -1.0), 30)
    assert s.speed == 0.0
    x = s.pose.x
    s = run(s, Control(0.0, -1.0), 10)
    assert s.pose.x == x


def test_steering_is_smoothed_exponentially():
    s = step_bicycle(BicycleState(Pose(0, 0, 0), 5.0), Control(1.0, 0.0), DT)
    assert s.steer == pytest.approx(0.25)
    s = step_bicycle(s, Control(1.0, 0.0), DT)
    assert s.steer == pytest.approx(0.75 * 0.25 + 0.25)


def test_bad_actions_are_rejected_or_clipped():
    with pytest.raises(ValueError, match=r"control\.steer"):
        step_bicycle(BicycleState(Pose(0, 0, 0), 0.0), Control(float("nan"), 0.0), DT)
    with pytest.raises(ValueError, match=r"control\.throttle"):
        step_bicycle(BicycleState(Pose(0, 0, 0), 0.0), Control(0.0, float("inf")), DT)
    s = step_bicycle(BicycleState(Pose(0, 0, 0), 0.0), Control(5.0, 9.0), DT)
    assert s.steer == pytest.approx(0.25) and s.throttle == 1.0

"""Signals from the ego's seat: the red stop line ahead in its lane, and the step it runs a red."""

import math

import numpy as np
import pytest

from drivevlm.sim.world import EgoState, MapGeometry, Pose, Route, TrafficLight, WorldState
from drivevlm.traffic_rules import RedLightMonitor, red_stop_line_ahead_m

# Ego 4.6 m long, heading +x: its front bumper is 2.3 m ahead of its centre.
FRONT = 2.3
ROUTE = Route(np.array([[0.0, 0.0], [100.0, 0.0]]), np.zeros(2))


def _state(x: float, lights: list[TrafficLight], yaw: float = 0.0) -> WorldState:
    ego = EgoState(pose=Pose(x, 0.0, yaw), speed=5.0, steer=0.0, throttle=0.5)
    return WorldState(0.0, 0, ego, (), MapGeometry("empty", ()), ROUTE, traffic_lights=tuple(lights))


def test_red_or_amber_stop_line_ahead_in_the_lane() -> None:
    lights = [
        TrafficLight("mine", (25.0, 0.4), "r"),
        TrafficLight("next_lane", (20.0, 3.2), "r"),
        TrafficLight("green", (18.0, 0.0), "g"),
        TrafficLight("behind", (5.0, 0.0), "r"),
    ]
    assert red_stop_line_ahead_m(_state(10.0, lights)) == pytest.approx(25.0 - 10.0 - FRONT)
    amber = [TrafficLight("mine", (25.0, 0.0), "y")]
    assert red_stop_line_ahead_m(_state(10.0, amber)) == pytest.approx(12.7)
    assert math.isinf(red_stop_line_ahead_m(_state(10.0, lights), reach_m=10.0))
    # Turned round, the line that was behind is the one ahead.
    assert red_stop_line_ahead_m(_state(10.0, lights, yaw=math.pi)) == pytest.approx(10.0 - 5.0 - FRONT)


@pytest.mark.parametrize(("state", "ran"), [("r", True), ("y", False), ("g", False)])
def test_crossing_a_stop_line_counts_only_on_red(state: str, ran: bool) -> None:
    light = TrafficLight("mine", (20.0, 0.5), state)
    monitor = RedLightMonitor()
    crossed = [monitor.update(_state(x, [light])) for x in np.arange(14.0, 22.0, 0.5)]
    # Exactly one step: the one whose front bumper passes x = 20.
    assert sum(crossed) == int(ran)
    if ran:
        assert np.arange(14.0, 22.0, 0.5)[crossed.index(True)] == pytest.approx(20.0 - FRONT + 0.5, abs=0.5)


def test_no_crossing_in_another_lane_or_after_reset() -> None:
    monitor = RedLightMonitor()
    beside = TrafficLight("other", (20.0, 3.5), "r")
    assert not any(monitor.update(_state(x, [beside])) for x in np.arange(14.0, 22.0, 0.5))
    mine = TrafficLight("mine", (20.0, 0.0), "r")
    monitor.update(_state(17.0, [mine]))
    monitor.reset()
    # A new episode that starts past the line has crossed nothing.
    assert not monitor.update(_state(19.0, [mine]))

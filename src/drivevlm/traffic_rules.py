"""Traffic signals seen from the ego: the red stop line ahead in its lane, and running a red.

Pure geometry over `WorldState` (no simulator calls), so every backend that reports its signal heads at
their stop lines (SUMO's incoming lane ends, CARLA's stop waypoints) gets the same rules.
"""

from __future__ import annotations

import math

from drivevlm.sim.world import TrafficLight, WorldState

# Half a lane: a stop line this far aside of the ego's centre line is in the ego's own lane.
LANE_HALF_WIDTH_M = 1.6
# Signal states that ask the ego to stop at the line (amber too, where stopping is still safe).
STOP_STATES = ("r", "y")
# A red stop line this close ahead of the front bumper is a reason to stand still.
STOP_LINE_REACH_M = 15.0


def _front_frame(state: WorldState, light: TrafficLight) -> tuple[float, float]:
    """(ahead, aside) of `light` from the ego's front bumper, in metres."""
    pose = state.ego.pose
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    fx, fy = pose.x + 0.5 * state.ego.length * c, pose.y + 0.5 * state.ego.length * s
    dx, dy = light.position[0] - fx, light.position[1] - fy
    return dx * c + dy * s, dy * c - dx * s


def red_stop_line_ahead_m(state: WorldState, reach_m: float = STOP_LINE_REACH_M) -> float:
    """Distance from the front bumper to the nearest red or amber stop line ahead in the ego's lane
    (`inf` when none lies within `reach_m`)."""
    nearest = math.inf
    for light in state.traffic_lights:
        if light.state not in STOP_STATES:
            continue
        ahead, aside = _front_frame(state, light)
        if 0.0 <= ahead <= reach_m and abs(aside) <= LANE_HALF_WIDTH_M:
            nearest = min(nearest, ahead)
    return nearest


class RedLightMonitor:
    """Notices the step on which the ego's front bumper crosses the stop line of a red signal in its lane
    (amber may be crossed, as the rules of the road allow when stopping is no longer safe)."""

    def __init__(self) -> None:
        self._ahead: dict[str, float] = {}

    def reset(self) -> None:
        self._ahead.clear()

    def update(self, state: WorldState) -> bool:
        ran = False
        ahead_now: dict[str, float] = {}
        for light in state.traffic_lights:
            ahead, aside = _front_frame(state, light)
            if abs(aside) > LANE_HALF_WIDTH_M or abs(ahead) > 5.0:
                continue
            ahead_now[light.id] = ahead
            before = self._ahead.get(light.id)
            if light.state == "r" and before is not None and before > 0.0 >= ahead:
                ran = True
        self._ahead = ahead_now
        return ran

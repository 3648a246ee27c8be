"""The ego's kinematic bicycle model, shared by every backend that drives the ego itself.

Action [steer, throttle] in [-1, 1]^2: negative throttle brakes, the car never reverses. Steering is
smoothed exponentially as in VLM-RL (applied = 0.75 * previous + 0.25 * new) so that a jittery policy
cannot flick the wheels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivevlm.sim.world import Control, Pose


@dataclass(frozen=True, slots=True)
class BicycleParams:
    wheelbase: float = 2.7
    max_steer_rad: float = math.radians(35.0)
    max_accel: float = 3.0
    max_brake: float = 8.0
    # Rolling resistance and drag as a small constant deceleration when coasting.
    coast_decel: float = 0.3
    max_speed: float = 30.0
    steer_smoothing: float = 0.75


@dataclass(frozen=True, slots=True)
class BicycleState:
    """Rear-axle-agnostic state: `pose` is the box centre, `steer` the smoothed command in [-1, 1]."""

    pose: Pose
    speed: float
    steer: float = 0.0
    throttle: float = 0.0


def _clip(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def check_control(control: Control) -> Control:
    """Reject NaN or infinite actions (a clear error), clip finite ones to [-1, 1]."""
    for name, value in (("steer", control.steer), ("throttle", control.throttle)):
        if not math.isfinite(value):
            raise ValueError(f"control.{name}: must be finite, got {value!r}")
    return Control(_clip(float(control.steer), -1.0, 1.0), _clip(float(control.throttle), -1.0, 1.0))


def step_bicycle(
    state: BicycleState, control: Control, dt: float, params: BicycleParams = BicycleParams()
) -> BicycleState:
    """Advance the model by `dt` seconds (the pose is the vehicle centre, the model's reference point)."""
    control = check_control(control)
    alpha = params.steer_smoothing
    steer = alpha * state.steer + (1.0 - alpha) * control.steer
    if control.throttle >= 0:
        accel = control.throttle * params.max_accel - params.coast_decel * (state.speed > 0)
    else:
        accel = control.throttle * params.max_brake
    speed = _clip(state.speed + accel * dt, 0.0, params.max_speed)
    mean_speed = 0.5 * (state.speed + speed)
    delta = steer * params.max_steer_rad
    # Slip angle at the centre of mass, with the centre midway between the axles.
    beta = math.atan(0.5 * math.tan(delta))
    yaw = state.pose.yaw
    x = state.pose.x + mean_speed * math.cos(yaw + beta) * dt
    y = state.pose.y + mean_speed * math.sin(yaw + beta) * dt
    yaw = yaw + mean_speed / (0.5 * params.wheelbase) * math.sin(beta) * dt
    yaw = (yaw + math.pi) % (2.0 * math.pi) - math.pi
    return BicycleState(Pose(x, y, yaw), speed, steer, control.throttle)

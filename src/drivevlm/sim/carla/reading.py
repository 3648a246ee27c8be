"""Reading a CARLA world into a `WorldState`: actors near the ego, traffic lights with their stop lines,
the tick's collisions and lane invasions, and the scripted walkers that set off this tick."""

from __future__ import annotations

import math
from typing import Any

import carla
import numpy as np

from drivevlm.sim.carla.actors import actor_kind, box_pose, speed_of
from drivevlm.sim.carla.episode import CarlaEpisode
from drivevlm.sim.carla.map import to_xy
from drivevlm.sim.geometry import project_point
from drivevlm.sim.world import Actor, Collision, EgoState, Pose, StepEvents, TrafficLight, WorldState


def stop_lines(world: Any) -> dict[int, tuple[float, float]]:
    """Each traffic light's stop line, as the mean of its stop waypoints, by actor id."""
    lines: dict[int, tuple[float, float]] = {}
    for actor in world.get_actors():
        if str(actor.type_id).startswith("traffic.traffic_light"):
            stops = actor.get_stop_waypoints()
            if stops:
                points = np.array([to_xy(w.transform.location) for w in stops])
                lines[int(actor.id)] = (float(points[:, 0].mean()), float(points[:, 1].mean()))
    return lines


def read_state(
    world: Any, episode: CarlaEpisode, collision_events: list[Any], invaded: bool, actor_radius_m: float
) -> WorldState:
    """This tick's world as our `WorldState` (and the episode's step counter advanced)."""
    ego = episode.ego
    ego_pose, length, width, height = box_pose(ego)
    ego_velocity = ego.get_velocity()
    ego_speed = speed_of(ego)
    actors: list[Actor] = []
    lights: list[TrafficLight] = []
    for actor in world.get_actors():
        type_id = str(actor.type_id)
        if type_id.startswith("traffic.traffic_light") and int(actor.id) in episode.stop_lines:
            state = str(actor.get_state()).rsplit(".", 1)[-1].lower()
            lights.append(TrafficLight(str(actor.id), episode.stop_lines[int(actor.id)], state[:1]))
            continue
        if int(actor.id) == int(ego.id):
            continue
        kind = actor_kind(type_id, dict(actor.attributes))
        if kind is None:
            continue
        pose, a_len, a_wid, a_hgt = box_pose(actor)
        if math.hypot(pose.x - ego_pose.x, pose.y - ego_pose.y) > actor_radius_m:
            continue
        actors.append(
            Actor(
                id=str(actor.id),
                kind=kind,
                pose=pose,
                speed=speed_of(actor),
                length=a_len,
                width=a_wid,
                height=a_hgt,
                scripted=int(actor.id) in episode.scripted_ids,
                parked=int(actor.id) in episode.parked_ids,
            )
        )
    collisions = []
    for event in collision_events:
        other = event.other_actor
        type_id = str(getattr(other, "type_id", ""))
        # The paper ends episodes on a collision with anything except the road itself.
        if type_id.startswith("static.road"):
            continue
        kind = actor_kind(type_id, dict(getattr(other, "attributes", {}) or {}))
        other_velocity = other.get_velocity() if other is not None else carla.Vector3D()
        relative = math.hypot(ego_velocity.x - other_velocity.x, ego_velocity.y - other_velocity.y)
        collisions.append(
            Collision(str(getattr(other, "id", "static")), kind, ego_speed * 3.6, relative * 3.6)
        )
    triggered = fire_events(episode, ego_pose)
    state = WorldState(
        time=episode.step * episode.spec.dt,
        step=episode.step,
        ego=EgoState(ego_pose, ego_speed, episode.steer, episode.throttle, length, width, height),
        actors=tuple(actors),
        map=episode.geometry,
        route=episode.route,
        events=StepEvents(tuple(collisions), invaded, triggered),
        traffic_lights=tuple(lights),
    )
    episode.step += 1
    return state


def fire_events(episode: CarlaEpisode, ego_pose: Pose) -> tuple[str, ...]:
    """Send off the scripted walkers whose trigger the ego has passed; their event names."""
    if not episode.events:
        return ()
    progress = project_point(episode.route.waypoints, ego_pose.x, ego_pose.y, episode.route_arc).arc_length
    fired = []
    for event in episode.events:
        if event.fired or progress < event.trigger_arc:
            continue
        dx, dy = event.direction
        event.actor.apply_control(
            carla.WalkerControl(direction=carla.Vector3D(dx, -dy, 0.0), speed=event.speed)
        )
        event.fired = True
        fired.append(event.name)
    return tuple(fired)

"""Bird's-eye semantic masks: the policy's observation.

Ego-centred and heading-up (the ego faces the top edge, `ego_from_bottom` of the height above the bottom),
uint8 0/255 channels, layout C x H x W. Static channels are warped from a cached raster; actors are filled
polygons. Past actors are drawn where they were, seen from the ego's current pose, so motion shows up as
displacement between history channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from drivevlm.render import _view
from drivevlm.render.static import DEFAULT_CACHE, StaticLayerCache
from drivevlm.sim.world import Actor, WorldState
from drivevlm.traffic_rules import STOP_STATES

STATIC_CHANNELS = ("road", "lane_markings", "route")
# Optional static channel: a disc on the stop line of every red or amber signal (CARLA-Roach draws its
# lights the same way); without it a policy cannot tell a red light from a green one.
STOP_LIGHT_CHANNEL = "stop_lights"
ACTOR_GROUPS = ("vehicles", "cyclists", "pedestrians")
# Kind code (see _view.KIND_CODES) to the group index above: bicycles and motorcycles are both cyclists;
# lost cargo and warning triangles are drawn with the vehicles (things not to drive into).
_GROUP_OF_CODE = np.array([0, 1, 1, 2, 0, 0])
_SHIFT = 2
_SCALE = float(1 << _SHIFT)


class BevMaskRenderer:
    """Renders `channels` (static channels, then vehicles/cyclists/pedestrians per frame, oldest first).

    With `traffic_lights`, a `stop_lights` channel follows the static ones: the stop line of every red or
    amber signal as a disc `stop_light_radius_m` wide (about a lane's half width).

    `history` is the number of past frames besides the current one. Channel names carry the frame offset:
    `vehicles_t-2`, `vehicles_t-1`, `vehicles_t0`, ... Missing history at the start of an episode repeats
    the oldest frame given (or the current actors), so the policy never sees actors pop into existence.
    Actors smaller than `min_actor_m` are drawn at that size so a pedestrian always covers a pixel or more.
    """

    def __init__(
        self,
        size: int = 96,
        pixels_per_meter: float = 3.0,
        history: int = 2,
        ego_from_bottom: float = 0.25,
        route_width_m: float = 2.0,
        min_actor_m: float = 0.7,
        cache: StaticLayerCache | None = None,
        traffic_lights: bool = False,
        stop_light_radius_m: float = 1.6,
    ) -> None:
        _view.check_view(size, pixels_per_meter, ego_from_bottom)
        if not isinstance(history, int | np.integer) or history < 0:
            raise ValueError(f"history: must be a non-negative integer, got {history!r}")
        if route_width_m <= 0:
            raise ValueError(f"route_width_m: must be positive, got {route_width_m!r}")
        if stop_light_radius_m <= 0:
            raise ValueError(f"stop_light_radius_m: must be positive, got {stop_light_radius_m!r}")
        self.size = int(size)
        self.pixels_per_meter = float(pixels_per_meter)
        self.history = int(history)
        self.ego_from_bottom = float(ego_from_bottom)
        self.route_width_m = float(route_width_m)
        self.min_actor_m = float(min_actor_m)
        self.traffic_lights = bool(traffic_lights)
        self._light_radius = max(1.0, stop_light_radius_m * self.pixels_per_meter)
        self.cache = cache if cache is not None else DEFAULT_CACHE
        self._tables = _view.ActorTableCache(self.history + 2)
        self._route_thickness = max(1, round(self.route_width_m * self.pixels_per_meter))
        # How far ahead the view reaches: enough route to cross the image diagonally.
        self._route_reach_m = 1.5 * self.size / self.pixels_per_meter
        frames = [f"t-{k}" for k in range(self.history, 0, -1)] + ["t0"]
        static = [*STATIC_CHANNELS, STOP_LIGHT_CHANNEL] if self.traffic_lights else list(STATIC_CHANNELS)
        self._first_actor_channel = len(static)
        self._channels = static + [f"{g}_{f}" for f in frames for g in ACTOR_GROUPS]

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self._channels), self.size, self.size)

    def render(self, state: WorldState, past_actors: Sequence[tuple[Actor, ...]] = ()) -> np.ndarray:
        """Masks of `state` with `past_actors` (oldest first; only the last `history` are used)."""
        size = self.size
        out = np.zeros(self.shape, dtype=np.uint8)
        view = _view.ego_view(state.ego.pose, size, self.pixels_per_meter, self.ego_from_bottom)
        layer = self.cache.masks(state.map, self.pixels_per_meter)
        warped = _view.warp_layer(layer, view, size, 0)
        out[0] = warped[:, :, 0] > 127
        out[1] = warped[:, :, 1] > 40
        out[:2] *= 255
        self._draw_route(out[2], state, view)
        if self.traffic_lights:
            self._draw_stop_lights(out[3], state, view)
        frames = self._history_frames(state, past_actors)
        tables = [self._tables.get(f) for f in frames]
        counts = [len(t) for t in tables]
        if sum(counts):
            table = np.concatenate(tables)
            corners = _view.box_pixels(table, view, _SCALE, self.min_actor_m)
            seen = _view.visible(corners, size, _SCALE)
            frame_of = np.repeat(np.arange(len(tables)), counts)
            group = _GROUP_OF_CODE[table[:, 5].astype(np.int64)]
            channel = self._first_actor_channel + frame_of * len(ACTOR_GROUPS) + group
            fixed = np.round(corners).astype(np.int32, order="C")
            for i in np.flatnonzero(seen):
                cv2.fillConvexPoly(out[channel[i]], fixed[i], 255, cv2.LINE_8, _SHIFT)
        return out

    def _history_frames(
        self, state: WorldState, past: Sequence[tuple[Actor, ...]]
    ) -> list[tuple[Actor, ...]]:
        recent = list(past)[-self.history :] if self.history else []
        if len(recent) < self.history:
            pad = recent[0] if recent else state.actors
            recent = [pad] * (self.history - len(recent)) + recent
        return [*recent, state.actors]

    def _draw_route(self, channel: np.ndarray, state: WorldState, view: np.ndarray) -> None:
        route = state.route
        ahead = _view.remaining_route(route.waypoints, route.headings, state.ego.pose, self._route_reach_m)
        if len(ahead) < 2:
            return
        pix = ahead @ view[:, :2].T + view[:, 2]
        fixed = np.round(pix * _SCALE).astype(np.int32)
        cv2.polylines(channel, [fixed], False, 255, self._route_thickness, cv2.LINE_8, _SHIFT)

    def _draw_stop_lights(self, channel: np.ndarray, state: WorldState, view: np.ndarray) -> None:
        stops = [light.position for light in state.traffic_lights if light.state in STOP_STATES]
        if not stops:
            return
        radius = self._light_radius
        _, centres = _view.points_in_view(stops, view, self.size, radius, _SCALE)
        for centre in centres:
            cv2.circle(channel, centre, round(radius * _SCALE), 255, -1, cv2.LINE_8, _SHIFT)

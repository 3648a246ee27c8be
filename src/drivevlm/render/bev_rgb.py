"""Bird's-eye RGB picture for the static CLIP pathway, in the fixed legend of `palette`.

Ego-centred and heading-up like the masks. It shows the scene (road, sidewalks, crossings, markings,
signals, actors); the route is an annotation and is off by default so CLIP judges the scene itself.
"""

from __future__ import annotations

import cv2
import numpy as np

from drivevlm.render import _view, palette
from drivevlm.render.static import DEFAULT_CACHE, StaticLayerCache
from drivevlm.sim.world import EgoState, WorldState

_SHIFT = 3
_SCALE = float(1 << _SHIFT)
_COLOURS = [palette.BEV_ACTOR_COLOURS[kind] for kind in _view.KINDS_BY_CODE]
_OUTLINES = [palette.darker(colour, 0.55) for colour in _COLOURS]
_VULNERABLE_CODES = np.array([kind.is_vulnerable for kind in _view.KINDS_BY_CODE])


class BevRgbRenderer:
    """Renders (size, size, 3) uint8 RGB covering `view_m` metres across.

    `raster_ppm` is the resolution of the cached map picture the view is warped from; the front camera
    shares that raster when both use the same cache and resolution. Pedestrians and riders are drawn
    `vru_scale` times their size (CARLA-Roach's bird's-eye view, which VLM-RL renders, doubles walkers
    too): at the 64 px an image-text model sees, a person at true size is one pixel.
    """

    def __init__(
        self,
        size: int = 224,
        view_m: float = 40.0,
        ego_from_bottom: float = 0.25,
        show_route: bool = False,
        show_traffic_lights: bool = True,
        raster_ppm: float = 8.0,
        min_actor_m: float = 0.7,
        vru_scale: float = 2.0,
        cache: StaticLayerCache | None = None,
    ) -> None:
        if not np.isfinite(view_m) or view_m <= 0:
            raise ValueError(f"view_m: must be a positive number of metres, got {view_m!r}")
        if not np.isfinite(raster_ppm) or raster_ppm <= 0:
            raise ValueError(f"raster_ppm: must be a positive number, got {raster_ppm!r}")
        if not np.isfinite(vru_scale) or vru_scale < 1.0:
            raise ValueError(f"vru_scale: must be a number >= 1, got {vru_scale!r}")
        _view.check_view(size, size / view_m, ego_from_bottom)
        self.size = int(size)
        self.view_m = float(view_m)
        self.pixels_per_meter = self.size / self.view_m
        self.ego_from_bottom = float(ego_from_bottom)
        self.show_route = bool(show_route)
        self.show_traffic_lights = bool(show_traffic_lights)
        self.raster_ppm = float(raster_ppm)
        self.min_actor_m = float(min_actor_m)
        self.vru_scale = float(vru_scale)
        self.cache = cache if cache is not None else DEFAULT_CACHE
        self._light_radius = max(2, round(0.8 * self.pixels_per_meter))
        self._route_thickness = max(1, round(1.2 * self.pixels_per_meter))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)

    def render(self, state: WorldState) -> np.ndarray:
        size = self.size
        view = _view.ego_view(state.ego.pose, size, self.pixels_per_meter, self.ego_from_bottom)
        layer = self.cache.rgb(state.map, self.raster_ppm)
        image = _view.warp_layer(layer, view, size, palette.TERRAIN)
        if self.show_route:
            self._draw_route(image, state, view)
        if self.show_traffic_lights:
            self._draw_lights(image, state, view)
        if state.actors:
            table = _view.actor_table(state.actors)
            codes = table[:, 5].astype(np.int64)
            table[_VULNERABLE_CODES[codes], 3:5] *= self.vru_scale
            corners = _view.box_pixels(table, view, _SCALE, self.min_actor_m)
            fixed = np.round(corners).astype(np.int32, order="C")
            for i in np.flatnonzero(_view.visible(corners, size, _SCALE)):
                cv2.fillConvexPoly(image, fixed[i], _COLOURS[codes[i]], cv2.LINE_AA, _SHIFT)
                cv2.polylines(image, [fixed[i]], True, _OUTLINES[codes[i]], 1, cv2.LINE_AA, _SHIFT)
        self._draw_ego(image, state.ego, view)
        return image

    def _draw_ego(self, image: np.ndarray, ego: EgoState, view: np.ndarray) -> None:
        p = ego.pose
        table = np.array([[p.x, p.y, p.yaw, ego.length, ego.width, 0.0]])
        fixed = np.round(_view.box_pixels(table, view, _SCALE)[0]).astype(np.int32)
        cv2.fillConvexPoly(image, fixed, palette.EGO, cv2.LINE_AA, _SHIFT)
        cv2.polylines(image, [fixed], True, palette.darker(palette.EGO, 0.55), 1, cv2.LINE_AA, _SHIFT)

    def _draw_lights(self, image: np.ndarray, state: WorldState, view: np.ndarray) -> None:
        lights = [light for light in state.traffic_lights if light.state in palette.LIGHT_COLOURS]
        if not lights:
            return
        radius = self._light_radius
        shown, centres = _view.points_in_view([lt.position for lt in lights], view, self.size, radius, _SCALE)
        for i, centre in zip(shown, centres, strict=True):
            colour = palette.LIGHT_COLOURS[lights[i].state]
            cv2.circle(image, centre, radius << _SHIFT, colour, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(image, centre, radius << _SHIFT, palette.LIGHT_HOUSING, 1, cv2.LINE_AA, _SHIFT)

    def _draw_route(self, image: np.ndarray, state: WorldState, view: np.ndarray) -> None:
        route = state.route
        reach = 1.5 * self.view_m
        ahead = _view.remaining_route(route.waypoints, route.headings, state.ego.pose, reach)
        if len(ahead) < 2:
            return
        fixed = np.round((ahead @ view[:, :2].T + view[:, 2]) * _SCALE).astype(np.int32)
        cv2.polylines(image, [fixed], False, palette.ROUTE, self._route_thickness, cv2.LINE_AA, _SHIFT)

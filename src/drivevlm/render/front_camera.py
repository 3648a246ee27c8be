"""Front camera RGB from a pinhole model: what the detector gate and the LVLM look at.

The ground is the cached map picture warped by a homography (the ground plane z = 0 maps to the image
by K [r1 r2 t]); only rows below the horizon are warped, the rest is sky. Actors are extruded boxes per
kind (cars: body, tyres, glass cabin; pedestrians: body and head; riders on a long thin vehicle), filled
face by face from far to near (painter's order) after back-face culling and near-plane clipping.

Camera frame: x right, y down, z forward (OpenCV). World: x east, y north, z up, metres.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from drivevlm.render import palette
from drivevlm.render.static import DEFAULT_CACHE, StaticLayerCache
from drivevlm.sim.world import ActorKind, WorldState

_SHIFT = 2
_SCALE = float(1 << _SHIFT)
_COORD_LIMIT = 1e7

# Box corners from extents (x0, x1, y0, y1, z0, z1): bottom ring 0-3, top ring 4-7,
# front-left, rear-left, rear-right, front-right.
_CORNER_PICK = np.array(
    [[1, 3, 4], [0, 3, 4], [0, 2, 4], [1, 2, 4], [1, 3, 5], [0, 3, 5], [0, 2, 5], [1, 2, 5]]
)
# Faces as corner loops. Order: top, bottom, front, rear, left, right.
_FACES = np.array([[4, 5, 6, 7], [0, 1, 2, 3], [0, 3, 7, 4], [1, 2, 6, 5], [0, 1, 5, 4], [3, 2, 6, 7]])
# A fixed sun (world frame, pointing towards the sun) shades side faces consistently across frames.
_SUN = np.array([-0.5, -0.7, 0.0]) / np.hypot(0.5, 0.7)


@dataclass(frozen=True)
class BoxPart:
    """One box of an actor's look, in the actor frame (x ahead, y left, z up), with its colours."""

    x0: float
    x1: float
    y0: float
    y1: float
    z0: float
    z1: float
    side: tuple[int, int, int]
    top: tuple[int, int, int]


def actor_parts(kind: ActorKind, length: float, width: float, height: float) -> list[BoxPart]:
    """The boxes that make an actor's look; the same table is documented in docs/rendering.md."""
    hl, hw, h = 0.5 * length, 0.5 * width, height
    colour = palette.ACTOR_COLOURS[kind]
    if kind is ActorKind.CAR:
        roof = palette.darker(colour, 0.75)
        return [
            BoxPart(
                -0.42 * length, 0.42 * length, -0.95 * hw, 0.95 * hw, 0.0, 0.22, palette.TYRE, palette.TYRE
            ),
            BoxPart(-hl, hl, -hw, hw, 0.22, 0.58 * h, colour, colour),
            BoxPart(-0.36 * length, 0.16 * length, -0.9 * hw, 0.9 * hw, 0.58 * h, h, palette.WINDOW, roof),
        ]
    if kind is ActorKind.OBSTACLE:
        return [BoxPart(-hl, hl, -hw, hw, 0.0, h, colour, palette.darker(colour, 0.8))]
    if kind is ActorKind.WARNING_TRIANGLE:
        # A triangle as three stacked bars, each narrower than the one below it.
        return [
            BoxPart(-hl, hl, -hw * (1 - k / 3), hw * (1 - k / 3), h * k / 3, h * (k + 1) / 3, colour, colour)
            for k in range(3)
        ]
    if kind is ActorKind.PEDESTRIAN:
        body_w = min(hw, 0.25)
        body_l = min(hl, 0.16)
        head = 0.11
        return [
            BoxPart(
                -0.8 * body_l,
                0.8 * body_l,
                -0.8 * body_w,
                0.8 * body_w,
                0.0,
                0.46 * h,
                palette.RIDER,
                palette.RIDER,
            ),
            BoxPart(-body_l, body_l, -body_w, body_w, 0.46 * h, 0.84 * h, colour, colour),
            BoxPart(-head, head, -head, head, 0.86 * h, h, palette.SKIN, palette.SKIN),
        ]
    # Riders: two wheels, a frame in the kind's colour, a rider and a head (a helmet on a motorcycle).
    rider_h = max(h, 1.2)
    seat = 0.52 * rider_h
    wheel = min(0.35 * length, 0.7 if kind is ActorKind.BICYCLE else 0.62)
    wheel_w = min(hw, 0.05 if kind is ActorKind.BICYCLE else 0.1)
    wheels = [
        BoxPart(hl - wheel, hl, -wheel_w, wheel_w, 0.0, wheel, palette.TYRE, palette.TYRE),
        BoxPart(-hl, -hl + wheel, -wheel_w, wheel_w, 0.0, wheel, palette.TYRE, palette.TYRE),
    ]
    if kind is ActorKind.BICYCLE:
        frame_w = min(hw, 0.06)
        return [
            *wheels,
            BoxPart(
                -hl + 0.5 * wheel, hl - 0.5 * wheel, -frame_w, frame_w, 0.5 * wheel, seat, colour, colour
            ),
            BoxPart(-0.2, 0.15, -0.2, 0.2, seat, 0.84 * rider_h, colour, colour),
            BoxPart(-0.11, 0.15, -0.13, 0.13, 0.85 * rider_h, rider_h, palette.SKIN, palette.SKIN),
        ]
    frame_w = min(hw, 0.26)
    return [
        *wheels,
        BoxPart(
            -hl + 0.3 * wheel, hl - 0.3 * wheel, -frame_w, frame_w, 0.4 * wheel, 0.85 * seat, colour, colour
        ),
        BoxPart(-0.3, 0.1, -0.24, 0.24, 0.85 * seat, 0.82 * rider_h, palette.RIDER, palette.RIDER),
        BoxPart(-0.14, 0.14, -0.15, 0.15, 0.83 * rider_h, rider_h, colour, colour),
    ]


def _light_parts(state: str) -> list[BoxPart]:
    """An overhead signal head: a dark housing with the lit lamp at its red, yellow or green slot."""
    lamp = palette.LIGHT_COLOURS.get(state, palette.LIGHT_HOUSING)
    slot = {"r": 2, "y": 1, "g": 0}.get(state, 1)
    z0 = 4.4 + 0.3 * slot
    return [
        BoxPart(-0.18, 0.18, -0.18, 0.18, 4.35, 5.3, palette.LIGHT_HOUSING, palette.LIGHT_HOUSING),
        BoxPart(-0.21, 0.21, -0.21, 0.21, z0, z0 + 0.24, lamp, lamp),
    ]


class FrontCameraRenderer:
    """Renders (height, width, 3) uint8 RGB from a camera at the ego's front bumper, looking ahead.

    `camera_height_m` above the ground, `pitch_deg` downwards, horizontal field of view `hfov_deg`,
    square pixels. Actors farther than `max_distance_m` are not drawn; the ground fades into haze.
    """

    def __init__(
        self,
        width: int = 224,
        height: int = 224,
        hfov_deg: float = 90.0,
        camera_height_m: float = 1.5,
        pitch_deg: float = 5.0,
        forward_offset_m: float | None = None,
        max_distance_m: float = 80.0,
        haze_start_m: float = 25.0,
        haze_scale_m: float = 90.0,
        near_m: float = 0.15,
        raster_ppm: float = 8.0,
        show_traffic_lights: bool = True,
        cache: StaticLayerCache | None = None,
    ) -> None:
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int | np.integer) or value < 8:
                raise ValueError(f"{name}: must be an integer of at least 8 pixels, got {value!r}")
        if not 10.0 <= hfov_deg <= 170.0:
            raise ValueError(f"hfov_deg: must lie in [10, 170], got {hfov_deg!r}")
        if not camera_height_m > 0:
            raise ValueError(f"camera_height_m: must be positive, got {camera_height_m!r}")
        if not -30.0 <= pitch_deg <= 60.0:
            raise ValueError(f"pitch_deg: must lie in [-30, 60], got {pitch_deg!r}")
        if not max_distance_m > near_m > 0:
            raise ValueError(
                f"near_m, max_distance_m: need 0 < near_m < max_distance_m, got {near_m}, {max_distance_m}"
            )
        if not np.isfinite(raster_ppm) or raster_ppm <= 0:
            raise ValueError(f"raster_ppm: must be a positive number, got {raster_ppm!r}")
        self.width = int(width)
        self.height = int(height)
        self.hfov_deg = float(hfov_deg)
        self.camera_height_m = float(camera_height_m)
        self.pitch_deg = float(pitch_deg)
        # None places the camera at the ego's front bumper, whatever the ego's length.
        self.forward_offset_m = forward_offset_m
        self.max_distance_m = float(max_distance_m)
        self.near_m = float(near_m)
        self.raster_ppm = float(raster_ppm)
        self.show_traffic_lights = bool(show_traffic_lights)
        self.cache = cache if cache is not None else DEFAULT_CACHE
        self.focal = 0.5 * self.width / np.tan(np.radians(0.5 * self.hfov_deg))
        self.cx = 0.5 * self.width - 0.5
        self.cy = 0.5 * self.height - 0.5
        self.intrinsics = np.array([[self.focal, 0.0, self.cx], [0.0, self.focal, self.cy], [0.0, 0.0, 1.0]])
        pitch = np.radians(self.pitch_deg)
        self.horizon_row = self.cy - self.focal * np.tan(pitch)
        self._ground_row = int(np.clip(np.floor(self.horizon_row) + 2, 0, self.height))
        self._sky = self._sky_image()
        self._haze_rows, self._haze_alpha = self._haze_band(haze_start_m, haze_scale_m)
        self._tan_half_fov = 0.5 * self.width / self.focal

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    def camera_pose(self, state: WorldState) -> tuple[np.ndarray, np.ndarray]:
        """(R, C): world-to-camera rotation (rows: right, down, forward) and camera centre in the world."""
        ego = state.ego
        c, s = np.cos(ego.pose.yaw), np.sin(ego.pose.yaw)
        offset = 0.5 * ego.length if self.forward_offset_m is None else self.forward_offset_m
        centre = np.array([ego.pose.x + c * offset, ego.pose.y + s * offset, self.camera_height_m])
        p = np.radians(self.pitch_deg)
        cp, sp = np.cos(p), np.sin(p)
        rotation = np.array([[s, -c, 0.0], [-sp * c, -sp * s, -cp], [cp * c, cp * s, -sp]])
        return rotation, centre

    def project(self, state: WorldState, points: np.ndarray) -> np.ndarray:
        """Image (u, v) and depth z (N x 3) of world points (N x 3); depth <= 0 means behind the camera."""
        rotation, centre = self.camera_pose(state)
        cam = (np.asarray(points, dtype=float).reshape(-1, 3) - centre) @ rotation.T
        z = cam[:, 2]
        safe = np.where(np.abs(z) > 1e-9, z, 1e-9)
        return np.stack(
            [self.focal * cam[:, 0] / safe + self.cx, self.focal * cam[:, 1] / safe + self.cy, z], 1
        )

    def render(self, state: WorldState) -> np.ndarray:
        rotation, centre = self.camera_pose(state)
        image = self._sky.copy()
        self._draw_ground(image, state, rotation, centre)
        self._draw_objects(image, state, rotation, centre)
        return image

    # -----------------------------------------------------------------------------------------------------

    def _sky_image(self) -> np.ndarray:
        rows = np.arange(self.height, dtype=float)
        top = max(self.horizon_row, 1.0)
        t = np.clip(rows / top, 0.0, 1.0) ** 1.5
        colour = (1 - t)[:, None] * np.array(palette.SKY_TOP) + t[:, None] * np.array(palette.SKY_HORIZON)
        sky = np.repeat(colour[:, None, :], self.width, axis=1)
        sky[self._ground_row - 2 if self._ground_row >= 2 else 0 : self._ground_row] = palette.HAZE
        return np.ascontiguousarray(np.round(sky).astype(np.uint8))

    def _haze_band(self, start_m: float, scale_m: float) -> tuple[int, np.ndarray]:
        """Rows near the horizon and their haze weight (grows with the ground distance they show)."""
        pitch = np.radians(self.pitch_deg)
        rows = np.arange(self._ground_row, self.height, dtype=float)
        below = np.arctan((rows - self.cy) / self.focal) + pitch
        distance = self.camera_height_m / np.tan(np.maximum(below, 1e-6))
        alpha = 1.0 - np.exp(-np.maximum(distance - start_m, 0.0) / scale_m)
        count = int(np.count_nonzero(alpha > 0.01))
        return count, alpha[:count].astype(np.float32)[:, None, None]

    def _draw_ground(
        self, image: np.ndarray, state: WorldState, rotation: np.ndarray, centre: np.ndarray
    ) -> None:
        top = self._ground_row
        if top >= self.height:
            return
        layer = self.cache.rgb(state.map, self.raster_ppm)
        ground_to_image = self.intrinsics @ np.column_stack(
            [rotation[:, 0], rotation[:, 1], -rotation @ centre]
        )
        shift_rows = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -top], [0.0, 0.0, 1.0]])
        homography = shift_rows @ ground_to_image @ layer.frame.pixel_to_world()
        ground = cv2.warpPerspective(
            layer.image,
            homography,
            (self.width, self.height - top),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=palette.TERRAIN,
        )
        if self._haze_rows:
            band = ground[: self._haze_rows].astype(np.float32)
            band += (np.array(palette.HAZE, dtype=np.float32) - band) * self._haze_alpha
            ground[: self._haze_rows] = band.astype(np.uint8)
        image[top:] = ground

    def _draw_objects(
        self, image: np.ndarray, state: WorldState, rotation: np.ndarray, centre: np.ndarray
    ) -> None:
        """Cull, then transform, shade and project every part of every object at once; fill far to near."""
        templates: list[_Template] = []
        poses: list[tuple[float, float, float]] = []
        for actor in state.actors:
            poses.append((actor.pose.x, actor.pose.y, actor.pose.yaw))
            templates.append(_actor_template(actor.kind, actor.length, actor.width, actor.height))
        if self.show_traffic_lights:
            for light in state.traffic_lights:
                poses.append((light.position[0], light.position[1], 0.0))
                templates.append(_light_template(light.state))
        if not poses:
            return
        pose_arr = np.array(poses)
        reach = np.array([t.reach for t in templates])
        limit = np.array(
            [self.max_distance_m if not t.nested else 0.6 * self.max_distance_m for t in templates]
        )
        rel = np.column_stack([pose_arr[:, :2] - centre[:2], np.full(len(pose_arr), -centre[2])])
        cam_centres = rel @ rotation.T
        depth_ok = (cam_centres[:, 2] > -reach) & (cam_centres[:, 2] < limit)
        side_ok = np.abs(cam_centres[:, 0]) <= np.maximum(cam_centres[:, 2], 0.0) * self._tan_half_fov + reach
        shown = np.flatnonzero(depth_ok & side_ok)
        if len(shown) == 0:
            return
        counts = np.array([len(templates[i].extents) for i in shown])
        owner = np.repeat(shown, counts)
        extents = np.concatenate([templates[i].extents for i in shown])
        sides = np.concatenate([templates[i].side for i in shown])
        tops = np.concatenate([templates[i].top for i in shown])
        rank = np.concatenate([np.arange(c) for c in counts])
        nested = np.repeat(np.array([templates[i].nested for i in shown]), counts)
        yaw = pose_arr[owner, 2]
        cos, sin = np.cos(yaw), np.sin(yaw)
        local = extents[:, _CORNER_PICK]  # (P, 8, 3)
        world = np.empty_like(local)
        world[..., 0] = pose_arr[owner, 0, None] + local[..., 0] * cos[:, None] - local[..., 1] * sin[:, None]
        world[..., 1] = pose_arr[owner, 1, None] + local[..., 0] * sin[:, None] + local[..., 1] * cos[:, None]
        world[..., 2] = local[..., 2]
        cam = (world - centre) @ rotation.T
        # Outward face normals in the world: top/bottom fixed, sides turn with the object's yaw.
        normals = np.zeros((len(extents), 6, 3))
        normals[:, 0, 2] = 1.0
        normals[:, 1, 2] = -1.0
        normals[:, 2, :2] = np.column_stack([cos, sin])
        normals[:, 3, :2] = -normals[:, 2, :2]
        normals[:, 4, :2] = np.column_stack([-sin, cos])
        normals[:, 5, :2] = -normals[:, 4, :2]
        faces = cam[:, _FACES]  # (P, 6, 4, 3)
        to_camera = centre - world[:, _FACES].mean(axis=2)  # (P, 6, 3)
        facing = np.einsum("pfk,pfk->pf", to_camera, normals) > 1e-9
        shade = np.empty((len(extents), 6))
        shade[:, 0] = 1.0
        shade[:, 1] = 0.45
        shade[:, 2:] = 0.62 + 0.33 * np.maximum(normals[:, 2:] @ _SUN, 0.0)
        base = np.repeat(sides[:, None, :], 6, axis=1)
        base[:, 0] = tops
        colours = (base * shade[..., None]).astype(np.int64).tolist()
        # Painter's order: objects far to near, then their parts far to near (nested parts in list order).
        object_depth = np.hypot(rel[owner, 0], rel[owner, 1])
        part_depth = np.where(nested, -rank.astype(float), np.linalg.norm(cam.mean(axis=1), axis=1))
        order = np.lexsort((-part_depth, -object_depth))
        z = faces[..., 2]
        in_front = z >= self.near_m
        whole = in_front.all(axis=2)
        safe_z = np.where(in_front, z, 1.0)
        pixels = np.stack(
            [self.focal * faces[..., 0] / safe_z + self.cx, self.focal * faces[..., 1] / safe_z + self.cy],
            axis=3,
        )
        fixed = np.clip(pixels * _SCALE, -_COORD_LIMIT, _COORD_LIMIT).astype(np.int32, order="C")
        partly = in_front.any(axis=2) & ~whole
        rows, face_ids = np.nonzero((facing & (whole | partly))[order])
        for p, f in zip(order[rows].tolist(), face_ids.tolist(), strict=True):
            if whole[p, f]:
                cv2.fillConvexPoly(image, fixed[p, f], colours[p][f], cv2.LINE_AA, _SHIFT)
            else:
                self._fill_clipped(image, faces[p, f], colours[p][f])

    def _fill_clipped(self, image: np.ndarray, polygon: np.ndarray, colour: list[int]) -> None:
        """A face that crosses the near plane: keep the part in front, then project and fill it."""
        clipped = _clip_near(polygon, self.near_m)
        if len(clipped) < 3:
            return
        z = clipped[:, 2]
        u = self.focal * clipped[:, 0] / z + self.cx
        v = self.focal * clipped[:, 1] / z + self.cy
        pts = np.clip(np.stack([u, v], axis=1) * _SCALE, -_COORD_LIMIT, _COORD_LIMIT).astype(
            np.int32, order="C"
        )
        cv2.fillConvexPoly(image, pts, colour, cv2.LINE_AA, _SHIFT)


@dataclass(frozen=True, eq=False)
class _Template:
    """An object's parts as arrays: extents (P, 6), side and top colours (P, 3), culling radius."""

    extents: np.ndarray
    side: np.ndarray
    top: np.ndarray
    reach: float
    nested: bool


def _template(parts: list[BoxPart], nested: bool) -> _Template:
    extents = np.array([[p.x0, p.x1, p.y0, p.y1, p.z0, p.z1] for p in parts], dtype=float)
    reach = float(np.abs(extents[:, :4]).max()) + 1.0
    side = np.array([p.side for p in parts], dtype=float)
    top = np.array([p.top for p in parts], dtype=float)
    return _Template(extents, side, top, reach, nested)


@functools.lru_cache(maxsize=1024)
def _actor_template(kind: ActorKind, length: float, width: float, height: float) -> _Template:
    return _template(actor_parts(kind, length, width, height), nested=False)


@functools.lru_cache(maxsize=8)
def _light_template(state: str) -> _Template:
    return _template(_light_parts(state), nested=True)


def _clip_near(polygon: np.ndarray, near: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-space polygon (K x 3) to the half-space z >= near."""
    out = []
    count = len(polygon)
    for i in range(count):
        a = polygon[i]
        b = polygon[(i + 1) % count]
        a_in = a[2] >= near
        b_in = b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out).reshape(-1, 3)

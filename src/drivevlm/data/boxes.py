"""Ground-truth 2-D boxes of actors in the front camera frame, from the renderer's own camera model.

Each actor's drawn parts (`actor_parts`) are projected with `FrontCameraRenderer.project`, so a box
hugs what is actually painted. Boxes carry how much of them is not hidden behind nearer boxes, so
training and evaluation can ignore actors that cannot be seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from drivevlm.render.front_camera import FrontCameraRenderer, actor_parts
from drivevlm.sim.world import ActorKind, WorldState

# Class names as the Detector protocol reports them (COCO's, where COCO has the class). The motorway
# obstacles have boxes too (they hide what is behind them) but no detector class yet.
COCO_LABEL = {
    ActorKind.CAR: "car",
    ActorKind.PEDESTRIAN: "person",
    ActorKind.BICYCLE: "bicycle",
    ActorKind.MOTORCYCLE: "motorcycle",
    ActorKind.OBSTACLE: "obstacle",
    ActorKind.WARNING_TRIANGLE: "warning_triangle",
}
VRU_LABELS = frozenset({"person", "bicycle", "motorcycle"})
MIN_BOX_PX = 1.0
# Below this share of its box left uncovered by nearer actors, an actor counts as not seen: the detector
# neither learns nor is scored on it, and the VLM's ground truth never names it.
MIN_VISIBLE = 0.3


@dataclass(frozen=True, slots=True)
class GroundTruthBox:
    label: str
    # (x1, y1, x2, y2) in pixels, clipped to the image.
    box: tuple[float, float, float, float]
    # Distance from the camera to the actor's centre on the ground, m.
    distance_m: float
    # Share of the box's pixels not covered by nearer actors' boxes, in [0, 1].
    visible: float
    actor_id: str

    def to_json(self) -> dict[str, object]:
        record = asdict(self)
        record["box"] = [round(v, 2) for v in self.box]
        record["distance_m"] = round(self.distance_m, 2)
        record["visible"] = round(self.visible, 3)
        return record


def _corners(kind: ActorKind, length: float, width: float, height: float) -> np.ndarray:
    """The 8 corners (actor frame) of the box around all drawn parts."""
    ext = np.array([[p.x0, p.x1, p.y0, p.y1, p.z0, p.z1] for p in actor_parts(kind, length, width, height)])
    x0, y0, z0 = ext[:, 0].min(), ext[:, 2].min(), ext[:, 4].min()
    x1, y1, z1 = ext[:, 1].max(), ext[:, 3].max(), ext[:, 5].max()
    return np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)])


def front_boxes(camera: FrontCameraRenderer, state: WorldState) -> list[GroundTruthBox]:
    """Boxes of every actor the camera draws (in front, within its draw distance, inside the image)."""
    width, height = camera.width, camera.height
    _, centre = camera.camera_pose(state)
    found: list[tuple[float, str, tuple[float, float, float, float], str]] = []
    for actor in state.actors:
        distance = float(np.hypot(actor.pose.x - centre[0], actor.pose.y - centre[1]))
        if distance > camera.max_distance_m:
            continue
        local = _corners(actor.kind, actor.length, actor.width, actor.height)
        c, s = np.cos(actor.pose.yaw), np.sin(actor.pose.yaw)
        world = np.column_stack(
            [
                actor.pose.x + local[:, 0] * c - local[:, 1] * s,
                actor.pose.y + local[:, 0] * s + local[:, 1] * c,
                local[:, 2],
            ]
        )
        rotation, _ = camera.camera_pose(state)
        cam = _clip_to_near((world - centre) @ rotation.T, camera.near_m)
        if len(cam) == 0:
            continue
        front = np.column_stack(
            [
                camera.focal * cam[:, 0] / cam[:, 2] + camera.cx,
                camera.focal * cam[:, 1] / cam[:, 2] + camera.cy,
            ]
        )
        x1, y1 = np.clip(front.min(axis=0), 0, [width, height])
        x2, y2 = np.clip(front.max(axis=0), 0, [width, height])
        if x2 - x1 < MIN_BOX_PX or y2 - y1 < MIN_BOX_PX:
            continue
        box = (float(x1), float(y1), float(x2), float(y2))
        found.append((distance, COCO_LABEL[actor.kind], box, actor.id))
    found.sort(key=lambda item: item[0])
    covered = np.zeros((height, width), dtype=bool)
    boxes: list[GroundTruthBox] = []
    for distance, label, box, actor_id in found:
        xa, ya = int(np.floor(box[0])), int(np.floor(box[1]))
        xb, yb = max(int(np.ceil(box[2])), xa + 1), max(int(np.ceil(box[3])), ya + 1)
        region = covered[ya:yb, xa:xb]
        visible = 1.0 - float(region.mean()) if region.size else 0.0
        region[...] = True
        boxes.append(GroundTruthBox(label, box, distance, visible, actor_id))
    return boxes


# The 12 edges of a box whose corners are indexed 4 * ix + 2 * iy + iz.
_EDGES = [(a, a | bit) for a in range(8) for bit in (1, 2, 4) if not a & bit]


def _clip_to_near(cam: np.ndarray, near: float) -> np.ndarray:
    """Corners in front of the near plane plus where the box's edges cross it (camera frame)."""
    points = [cam[cam[:, 2] >= near]]
    for a, b in _EDGES:
        za, zb = cam[a, 2], cam[b, 2]
        if (za < near) != (zb < near):
            t = (near - za) / (zb - za)
            points.append((cam[a] + t * (cam[b] - cam[a]))[None])
    return np.vstack(points)


def seen_actor_ids(
    camera: FrontCameraRenderer, state: WorldState, min_visible: float = MIN_VISIBLE
) -> frozenset[str]:
    """Ids of the actors the camera shows: drawn in the image and at least `min_visible` uncovered."""
    return frozenset(b.actor_id for b in front_boxes(camera, state) if b.visible >= min_visible)

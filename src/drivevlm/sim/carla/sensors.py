"""The ego's sensors on a CARLA server: collision and lane-invasion detectors and the RGB cameras.

Sensor callbacks run on the client's threads; the rig collects their events under a lock and waits,
boundedly, for each camera's image of a tick.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any

import carla
import numpy as np

from drivevlm.sim.base import SimulatorError


@dataclass(frozen=True)
class CameraSpec:
    """An RGB camera rigidly attached to the ego (CARLA's vehicle frame: x ahead, y right, z up)."""

    name: str
    width: int
    height: int
    fov: float
    x: float
    y: float
    z: float
    pitch: float


# VLM-RL's "birdview1" camera: 517 x 517, FOV 110, 6.4 m up, 5.2 m ahead, 1.6 m left, looking down.
BEV_CAMERA = CameraSpec("bev_rgb", 517, 517, 110.0, 5.2, -1.6, 6.4, -90.0)
# Front camera: the paper does not give it; a dash-cam pose on the windscreen, 90 degree FOV.
FRONT_CAMERA = CameraSpec("front", 480, 270, 90.0, 1.5, 0.0, 2.4, 0.0)


def image_to_rgb(image: Any) -> np.ndarray:
    """A carla.Image (BGRA bytes) as an H x W x 3 uint8 RGB array."""
    bgra = np.frombuffer(image.raw_data, dtype=np.uint8).reshape(image.height, image.width, 4)
    return np.ascontiguousarray(bgra[:, :, 2::-1])


class SensorRig:
    """The sensors of the current episode's ego and what they reported since the last tick."""

    def __init__(self, cameras: tuple[CameraSpec, ...]) -> None:
        self.cameras = cameras
        self.frames: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._collisions: list[Any] = []
        self._invasions = 0
        self._queues: dict[str, queue.Queue] = {}

    def attach(self, world: Any, ego: Any) -> list[Any]:
        """Spawn every sensor on `ego` and start listening; returns them (the episode destroys them)."""
        library = world.get_blueprint_library()
        with self._lock:
            self._collisions, self._invasions = [], 0
        self.frames, self._queues = {}, {}
        collision = world.spawn_actor(library.find("sensor.other.collision"), carla.Transform(), ego)
        sensors = [collision]
        collision.listen(self._on_collision)
        invasion = world.spawn_actor(library.find("sensor.other.lane_invasion"), carla.Transform(), ego)
        sensors.append(invasion)
        invasion.listen(self._on_invasion)
        for spec in self.cameras:
            blueprint = library.find("sensor.camera.rgb")
            blueprint.set_attribute("image_size_x", str(spec.width))
            blueprint.set_attribute("image_size_y", str(spec.height))
            blueprint.set_attribute("fov", str(spec.fov))
            transform = carla.Transform(
                carla.Location(x=spec.x, y=spec.y, z=spec.z), carla.Rotation(pitch=spec.pitch)
            )
            camera = world.spawn_actor(blueprint, transform, ego)
            sensors.append(camera)
            frames: queue.Queue = queue.Queue()
            self._queues[spec.name] = frames
            camera.listen(frames.put)
        return sensors

    def detach(self) -> None:
        self._queues = {}

    def _on_collision(self, event: Any) -> None:
        with self._lock:
            self._collisions.append(event)

    def _on_invasion(self, event: Any) -> None:
        with self._lock:
            self._invasions += 1

    def take_events(self) -> tuple[list[Any], bool]:
        """The collision events and whether a lane was invaded since the last call."""
        with self._lock:
            collisions, self._collisions = self._collisions, []
            invaded, self._invasions = self._invasions > 0, 0
        return collisions, invaded

    def collect_frames(self, frame: int, timeout_s: float) -> None:
        """Wait (bounded) for each camera's image of tick `frame`."""
        for name, frames in self._queues.items():
            while True:
                try:
                    image = frames.get(timeout=timeout_s)
                except queue.Empty as error:
                    raise SimulatorError(
                        f"CARLA camera {name!r} delivered no image within {timeout_s} s of tick {frame}"
                    ) from error
                if int(image.frame) >= frame:
                    self.frames[name] = image_to_rgb(image)
                    break

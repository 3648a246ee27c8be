"""Episode videos: front camera and BEV side by side, speed, action and reward terms written on each frame.

The reward terms shown are the env's vehicle-state reward (the shaping factors at the full target speed
and the provisional reward, −10 on a collision step): what a deployed policy is judged by without any VLM.
The container follows the file name: WebM (VP8), which browsers play (the HTML reports link these), or
MP4 (mp4v), which desktop players play and browsers do not. Both are written with OpenCV; where the codec
is missing the frames go to an animated GIF instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivevlm.atomic import AtomicFile, atomic_output
from drivevlm.config import EnvConfig
from drivevlm.eval.evaluate import Act, run_episode
from drivevlm.eval.suites import SuiteEpisode

FPS = 15
CODECS = {".webm": "VP80", ".mp4": "mp4v"}
_TEXT_COLOUR = (255, 255, 255)
_SHADOW = (0, 0, 0)


def overlay_lines(
    speed_kmh: float, action: Sequence[float], reward: float, terms: Mapping[str, float]
) -> list[str]:
    """The text drawn on a frame: speed, the action taken, the reward and its terms."""
    lines = [f"speed {speed_kmh:5.1f} km/h", f"steer {action[0]:+.2f}  throttle {action[1]:+.2f}"]
    lines.append(f"reward {reward:+.3f}")
    lines += [f"{name} {value:.2f}" for name, value in terms.items()]
    return lines


def compose_frame(front: np.ndarray, bev: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Front camera left, BEV right (both RGB uint8, resized to a common height), text at the top left."""
    import cv2

    height = front.shape[0]
    if bev.shape[0] != height:
        width = round(bev.shape[1] * height / bev.shape[0])
        bev = cv2.resize(bev, (width, height), interpolation=cv2.INTER_NEAREST)
    frame = np.ascontiguousarray(np.concatenate([front, bev], axis=1))
    scale = max(0.35, height / 560.0)
    step = int(22 * scale / 0.5)
    for row, text in enumerate(lines):
        origin = (6, 6 + step * (row + 1) - step // 4)
        cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, _SHADOW, 2, cv2.LINE_AA)
        cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT_COLOUR, 1, cv2.LINE_AA)
    return frame


class VideoSink:
    """Collects RGB frames and writes a WebM or MP4 (by `path`'s suffix) atomically on `close`, or a GIF
    beside it when OpenCV lacks the codec."""

    def __init__(self, path: str | Path, fps: int = FPS) -> None:
        self.path = Path(path)
        if self.path.suffix not in CODECS:
            raise ValueError(f"video: {self.path.name!r} must end in one of {', '.join(CODECS)}")
        self.fps = fps
        self.frames = 0
        self.written: Path | None = None
        self.fallback_reason: str | None = None
        self._writer: Any = None
        self._gif_frames: list[np.ndarray] = []
        self._file = AtomicFile(self.path)
        self._tmp = self._file.path

    def add(self, frame: np.ndarray) -> None:
        import cv2

        if self._writer is None and self.fallback_reason is None:
            height, width = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*CODECS[self.path.suffix])
            writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (width, height))
            if writer.isOpened():
                self._writer = writer
            else:
                self.fallback_reason = f"OpenCV could not open a {CODECS[self.path.suffix]} video writer"
        if self._writer is not None:
            self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        else:
            self._gif_frames.append(frame)
        self.frames += 1

    def close(self) -> Path:
        """Finish the file; returns the path written (the .gif beside `path` after a fallback)."""
        if self.frames == 0:
            self._file.abort()
            raise ValueError("video: no frames were added")
        if self._writer is not None:
            self._writer.release()
            self.written = self._file.commit()
            return self.written
        from PIL import Image

        self._file.abort()
        target = self.path.with_suffix(".gif")
        images = [Image.fromarray(f) for f in self._gif_frames]
        with atomic_output(target) as tmp:
            images[0].save(
                tmp, save_all=True, append_images=images[1:], duration=int(1000 / self.fps), loop=0
            )
        self.written = target
        return target


@dataclass(frozen=True)
class DriveResult:
    video: Path
    frames: int
    fallback_reason: str | None
    episode: dict[str, Any]


def drive_video(
    act: Act,
    env_config: EnvConfig,
    episode: SuiteEpisode,
    path: str | Path,
    steps: int | None = None,
    fps: int = FPS,
) -> DriveResult:
    """Drive one episode (at most `steps` steps) and write its video; one frame per step, the reset first."""
    from drivevlm.driving_factors import ShapingParams, shaping_terms
    from drivevlm.env import DriveEnv

    update: dict[str, Any] = {"render_frames": True, "training": False}
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps: must be >= 1, got {steps}")
        update["max_episode_steps"] = steps
    config = env_config.model_copy(update=update)
    params = ShapingParams(target_speed_kmh=config.target_speed_kmh)
    sink = VideoSink(path, fps)
    env = DriveEnv(config)

    def on_reset(obs: Any, info: dict[str, Any]) -> None:
        sink.add(compose_frame(info["frames"]["front"], info["frames"]["bev_rgb"], ["start"]))

    def on_step(obs: Any, action: np.ndarray, reward: float, info: dict[str, Any]) -> None:
        s = info["signals"]
        terms = shaping_terms(
            1.0, s.speed_kmh, s.center_offset_m, s.heading_error_deg, s.center_offset_std_m, params
        )
        shown = {k: float(terms[k]) for k in ("f_speed", "f_center", "f_angle", "f_stability", "r_shaping")}
        lines = overlay_lines(s.speed_kmh, action.tolist(), reward, shown)
        if s.collided:
            lines.append("COLLISION")
        sink.add(compose_frame(info["frames"]["front"], info["frames"]["bev_rgb"], lines))

    try:
        log = run_episode(env, act, episode, on_step=on_step, on_reset=on_reset)
    finally:
        env.close()
    written = sink.close()
    summary = {
        **episode.to_dict(),
        "steps": log.steps,
        "distance_m": log.distance_total_m,
        "route_completion": log.routes_completed,
        "collisions": log.collision_count,
        "success": log.success,
        "reason": log.termination_reason,
    }
    return DriveResult(written, sink.frames, sink.fallback_reason, summary)

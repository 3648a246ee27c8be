"""Dynamic pathway: a detector gate, an LVLM that describes the risk, and CLIP that scores the description.

R_dynamic = g·[α·cos(I_cam, T_pos_dyn) − β·cos(I_cam, T_dyn)], with g = 1 only when a critical class
(person, bicycle, motorcycle by default) is detected in the current front frame; R_dynamic = 0 otherwise
and the LVLM is not called. T_dyn is the CLIP text embedding of the LVLM's description of the last K+1 frames.

Fallback (documented, logged and counted in `DynamicPathway.stats`): when the LVLM call fails
(server down, timeout, any backend exception) or its answer is unusable (empty, refusal, not text,
no letters), the gate stays open and the dynamic goal becomes `fallback_goal`
("A vulnerable road user is near the road ahead"). The gate saw a vulnerable road user, so that generic
description is true and keeps the frame penalised for the risk, the conservative choice; closing the gate
instead would reward the risky frame as if the road were clear. Training never stops because of the LVLM.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from drivevlm.models.base import Detection, Detector, ImageTextEncoder, VisionLanguageModel, check_images
from drivevlm.models.detectors.coco import DEFAULT_CRITICAL_CLASSES, canonical_class, check_class_names
from drivevlm.models.lvlm.parsing import DEFAULT_MAX_WORDS, parse_goal
from drivevlm.models.lvlm.prompts import PromptTemplate, load_prompt
from drivevlm.rewards.static import cosine

log = logging.getLogger(__name__)

DEFAULT_DYNAMIC_POSITIVE_GOAL = "The road ahead is clear with no obstacles"
DEFAULT_FALLBACK_GOAL = "A vulnerable road user is near the road ahead"
DEFAULT_PROMPT_VERSION = "dynamic_goal_v1"


def dynamic_score(
    gate: np.ndarray,
    cos_positive: np.ndarray,
    cos_goal: np.ndarray,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> np.ndarray:
    """g·[α·cos_pos − β·cos_goal]; exactly 0 where the gate is closed (whatever the cosines hold there)."""
    gate = np.asarray(gate, dtype=bool)
    raw = alpha * np.asarray(cos_positive, dtype=np.float64) - beta * np.asarray(cos_goal, dtype=np.float64)
    return np.where(gate, raw, 0.0)


@dataclass(frozen=True, slots=True)
class GroundCamera:
    """A pinhole front camera over flat ground: where an image point meets the ground, in the ego frame.

    Pitched down by `pitch_deg`, `height_m` above the ground, `forward_m` ahead of the ego's centre,
    horizontal field of view `hfov_deg`, square pixels, principal point at the image centre (the embedded
    simulator's front camera; set these to match another camera).
    """

    hfov_deg: float = 90.0
    height_m: float = 1.5
    pitch_deg: float = 5.0
    forward_m: float = 2.3

    def ground_points(
        self, u: np.ndarray, v: np.ndarray, width: int, height: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(metres ahead of the ego's centre, metres to the left) of pixels (u, v); ahead is inf for
        pixels at or above the horizon."""
        focal = 0.5 * width / np.tan(np.radians(0.5 * self.hfov_deg))
        x = (np.asarray(u, dtype=np.float64) - (0.5 * width - 0.5)) / focal
        y = (np.asarray(v, dtype=np.float64) - (0.5 * height - 0.5)) / focal
        pitch = np.radians(self.pitch_deg)
        forward = np.cos(pitch) - y * np.sin(pitch)
        down = y * np.cos(pitch) + np.sin(pitch)
        reach = np.where(down > 1e-6, self.height_m / np.maximum(down, 1e-6), np.inf)
        ahead = np.where(np.isfinite(reach), reach * forward + self.forward_m, np.inf)
        left = np.where(np.isfinite(reach), -reach * x, 0.0)
        return ahead, left


@dataclass(frozen=True, slots=True)
class PathFilter:
    """Which critical objects are in or near the ego's path: the bottom edge of the box (where the object
    stands) reaches the corridor `half_width_m` either side of the ego's heading, no farther than
    `max_distance_m` or, at speed, than `ttc_s` seconds of driving."""

    camera: GroundCamera = GroundCamera()
    max_distance_m: float = 35.0
    ttc_s: float = 3.0
    half_width_m: float = 2.5

    def __post_init__(self) -> None:
        for name in ("max_distance_m", "half_width_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"gate.{name}: must be positive, got {getattr(self, name)}")
        if self.ttc_s < 0:
            raise ValueError(f"gate.ttc_s: must be >= 0, got {self.ttc_s}")

    def in_path(self, boxes: np.ndarray, width: int, height: int, speed_kmh: float = 0.0) -> np.ndarray:
        """One bool per (x1, y1, x2, y2) box in pixels of a width x height frame."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ahead, left_edge = self.camera.ground_points(boxes[:, 0], boxes[:, 3], width, height)
        _, right_edge = self.camera.ground_points(boxes[:, 2], boxes[:, 3], width, height)
        horizon = max(self.max_distance_m, speed_kmh / 3.6 * self.ttc_s)
        overlaps = (np.minimum(left_edge, right_edge) <= self.half_width_m) & (
            np.maximum(left_edge, right_edge) >= -self.half_width_m
        )
        return (ahead > 0) & (ahead <= horizon) & overlaps


class AttentionGate:
    """Opens for a frame when the detector finds a critical class at or above the confidence threshold.

    With a `PathFilter` (the path-aware gate), such an object counts only when it is in or near the ego's
    path; without one it is the paper's class-only gate.
    """

    def __init__(
        self,
        detector: Detector,
        critical_classes: Sequence[str] = DEFAULT_CRITICAL_CLASSES,
        threshold: float = 0.25,
        path: PathFilter | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"gate.threshold: expected a confidence in [0, 1], got {threshold}")
        if not critical_classes:
            raise ValueError("gate.classes: at least one critical COCO class is needed, e.g. person")
        self.detector = detector
        self.critical_classes = frozenset(check_class_names(critical_classes, "gate.classes"))
        self.threshold = threshold
        self.path = path

    def critical(self, detections: Sequence[Detection]) -> list[Detection]:
        return [
            d
            for d in detections
            if canonical_class(d.label) in self.critical_classes and d.score >= self.threshold
        ]

    def _on_path(self, detections: list[Detection], image: np.ndarray, speed_kmh: float) -> list[Detection]:
        if self.path is None or not detections:
            return detections
        boxes = np.array([d.box for d in detections])
        keep = self.path.in_path(boxes, image.shape[1], image.shape[0], speed_kmh)
        return [d for d, ok in zip(detections, keep, strict=True) if ok]

    def __call__(
        self, images: Sequence[np.ndarray] | np.ndarray, speeds_kmh: Sequence[float] | None = None
    ) -> tuple[np.ndarray, list[list[Detection]]]:
        """(open per frame, the detections that opened it per frame); `speeds_kmh` (the ego's, per
        frame) lets a path-aware gate look farther ahead at speed."""
        batch = check_images(images, "front frame")
        found = [self.critical(per_frame) for per_frame in self.detector.detect(batch)]
        if len(found) != len(batch):
            raise RuntimeError(f"detector {self.detector.name}: {len(found)} results for {len(batch)} frames")
        speeds = [0.0] * len(batch) if speeds_kmh is None else list(speeds_kmh)
        found = [self._on_path(f, image, speed) for f, image, speed in zip(found, batch, speeds, strict=True)]
        return np.array([bool(f) for f in found], dtype=bool), found


@dataclass(slots=True)
class DynamicScores:
    r_dynamic: np.ndarray
    gate: np.ndarray
    # The dynamic language goal per frame ("" where the gate is closed).
    goals: list[str]
    detections: list[list[Detection]]
    # Why the fallback goal was used per frame ("" when the LVLM's answer was used or the gate was closed).
    fallbacks: list[str] = field(default_factory=list)
    cos_positive: np.ndarray | None = None
    cos_goal: np.ndarray | None = None


class DynamicPathway:
    """Gate -> LVLM on the last K+1 front frames -> parsed goal -> CLIP score of the current front frame."""

    def __init__(
        self,
        encoder: ImageTextEncoder,
        gate: AttentionGate,
        vlm: VisionLanguageModel,
        *,
        positive_goal: str = DEFAULT_DYNAMIC_POSITIVE_GOAL,
        fallback_goal: str = DEFAULT_FALLBACK_GOAL,
        prompt: PromptTemplate | None = None,
        window_frames: int = 4,
        alpha: float = 1.0,
        beta: float = 1.0,
        max_words: int = DEFAULT_MAX_WORDS,
        concurrency: int = 8,
        lvlm_batch_size: int = 32,
    ) -> None:
        if window_frames < 1:
            raise ValueError(f"window_frames: must be >= 1 (K+1 frames), got {window_frames}")
        if concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {concurrency}")
        if lvlm_batch_size < 1:
            raise ValueError(f"lvlm_batch_size: must be >= 1, got {lvlm_batch_size}")
        if not fallback_goal.strip():
            raise ValueError("fallback_goal: must not be empty")
        self.encoder = encoder
        self.gate = gate
        self.vlm = vlm
        self.fallback_goal = fallback_goal
        self.template = prompt or load_prompt(DEFAULT_PROMPT_VERSION)
        self.window_frames = window_frames
        self.alpha = alpha
        self.beta = beta
        self.max_words = max_words
        self.concurrency = concurrency
        self.lvlm_batch_size = lvlm_batch_size
        self.prompt = self.template.render(num_frames=window_frames, max_words=max_words)
        self.positive = np.asarray(encoder.encode_texts([positive_goal])[0])
        self._goal_embeddings: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        # Counts since construction: frames, gate_open, lvlm_calls, fallback:<reason>, truncated.
        self.stats: Counter[str] = Counter()

    def _fallback(self, reason: str, detail: str) -> tuple[str, str]:
        with self._lock:
            self.stats[f"fallback:{reason}"] += 1
        log.warning(
            "dynamic pathway: LVLM %s %s (%s); using fallback goal %r",
            self.vlm.name,
            reason,
            detail,
            self.fallback_goal,
        )
        return self.fallback_goal, reason

    def describe(self, window: Sequence[np.ndarray]) -> tuple[str, str]:
        """(dynamic goal, fallback reason or "") for one window; never raises on an LVLM failure."""
        frames = list(window[-self.window_frames :])
        with self._lock:
            self.stats["lvlm_calls"] += 1
        try:
            answer = self.vlm.generate(frames, self.prompt)
        except (
            Exception
        ) as error:  # a reward thread must survive any backend failure; it is counted and logged
            kind = getattr(error, "kind", type(error).__name__)
            return self._fallback(f"lvlm_error:{kind}", str(error))
        return self._goal(answer)

    def describe_all(self, windows: Sequence[Sequence[np.ndarray]]) -> list[tuple[str, str]]:
        """`describe` for many windows: in padded batches of `lvlm_batch_size` where the backend answers
        several windows per call (`generate_batch`), else `concurrency` calls at a time. A batch that fails
        is retried window by window, so one bad window cannot take the others' answers with it."""
        if len(windows) == 1:
            return [self.describe(windows[0])]
        generate_batch = getattr(self.vlm, "generate_batch", None)
        if not callable(generate_batch):
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(windows))) as pool:
                return list(pool.map(self.describe, windows))
        results: list[tuple[str, str]] = []
        for start in range(0, len(windows), self.lvlm_batch_size):
            chunk = [list(w[-self.window_frames :]) for w in windows[start : start + self.lvlm_batch_size]]
            try:
                answers = generate_batch(chunk, self.prompt)
                if len(answers) != len(chunk):
                    raise RuntimeError(f"{len(answers)} answers for {len(chunk)} windows")
            except Exception as error:  # counted and logged; the windows are then asked one by one
                with self._lock:
                    self.stats["lvlm_batch_failures"] += 1
                log.warning("dynamic pathway: batched LVLM call failed (%s); asking window by window", error)
                results += [self.describe(window) for window in chunk]
                continue
            with self._lock:
                self.stats["lvlm_calls"] += len(chunk)
                self.stats["lvlm_batches"] += 1
            results += [self._goal(answer) for answer in answers]
        return results

    def _goal(self, answer: object) -> tuple[str, str]:
        parsed = parse_goal(answer, self.max_words)
        if not parsed.ok:
            return self._fallback(parsed.reason, repr(answer)[:80])
        if parsed.truncated:
            with self._lock:
                self.stats["truncated"] += 1
        return parsed.text, ""

    def _embed_goals(self, goals: Sequence[str]) -> np.ndarray:
        new = sorted({g for g in goals if g not in self._goal_embeddings})
        if new:
            for goal, row in zip(new, np.asarray(self.encoder.encode_texts(new)), strict=True):
                self._goal_embeddings[goal] = row
        return np.stack([self._goal_embeddings[g] for g in goals])

    def __call__(
        self, windows: Sequence[Sequence[np.ndarray]], speeds_kmh: Sequence[float] | None = None
    ) -> DynamicScores:
        """Score a batch of front-camera windows (oldest first; the last frame of each is the current one);
        `speeds_kmh`, the ego's speed per window, is used by a path-aware gate."""
        for index, window in enumerate(windows):
            if len(window) == 0:
                raise ValueError(
                    f"front_window[{index}]: empty; the dynamic pathway needs at least the current frame"
                )
        current = check_images([w[-1] for w in windows], "front_window current frame")
        n = len(current)
        gate, detections = self.gate(current, speeds_kmh)
        goals = [""] * n
        fallbacks = [""] * n
        opened = np.flatnonzero(gate).tolist()
        with self._lock:
            self.stats["frames"] += n
            self.stats["gate_open"] += len(opened)
        if opened:
            answers = self.describe_all([windows[i] for i in opened])
            for i, (goal, reason) in zip(opened, answers, strict=True):
                goals[i], fallbacks[i] = goal, reason
        cos_pos = np.zeros(n)
        cos_goal = np.zeros(n)
        if opened:
            images = np.asarray(self.encoder.encode_images(current[opened]))
            cos_pos[opened] = cosine(images, self.positive)
            cos_goal[opened] = cosine(images, self._embed_goals([goals[i] for i in opened]))
        r_dynamic = dynamic_score(gate, cos_pos, cos_goal, self.alpha, self.beta)
        return DynamicScores(r_dynamic, gate, goals, detections, fallbacks, cos_pos, cos_goal)

"""Inspection: drive one scripted episode and record, per step, the frames, the gate's detections, the LVLM's
text and every reward term, as PNGs, `steps.csv`, `summary.json` and `index.html` in one folder.

The reward is the preset's own `RewardFunction`, called on the trainer's windowed requests. To show what
the models saw without running them twice, the detector and the LVLM are wrapped in recorders
(`RecordingModels`): every detection of the detector (critical or not) and every raw LVLM answer is kept.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drivevlm.atomic import write_atomic
from drivevlm.config import ConfigError
from drivevlm.inspection.frames import SteppedRequest, drive_episode, scenario_env_config
from drivevlm.models.base import Detection, Detector, ImageTextEncoder, VisionLanguageModel
from drivevlm.models.config import ClipConfig, DetectorConfig, LVLMConfig
from drivevlm.models.detectors.coco import canonical_class
from drivevlm.presets import Preset, as_preset
from drivevlm.rewards.build import ModelFactory, RegistryModelFactory, build_reward
from drivevlm.rewards.config import RewardConfig
from drivevlm.rewards.signals import SIGNAL_FIELDS

# Critical detections are drawn red, the detector's other detections yellow.
_CRITICAL_COLOUR = (230, 30, 30)
_OTHER_COLOUR = (240, 200, 0)


class RecordingDetector:
    """A detector that keeps the results of its latest `detect` calls (inspection only)."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[list[list[Detection]]] = []

    def detect(self, images: Sequence[np.ndarray] | np.ndarray) -> list[list[Detection]]:
        found = self.inner.detect(images)
        self.calls.append(found)
        return found


class RecordingVLM:
    """A VLM that keeps each raw answer, keyed by the identity of the window's current (last) frame."""

    def __init__(self, inner: VisionLanguageModel) -> None:
        self.inner = inner
        self.name = inner.name
        self.answers: dict[int, str] = {}

    def generate(self, frames: Sequence[np.ndarray], prompt: str) -> str:
        answer = self.inner.generate(frames, prompt)
        self.answers[id(frames[-1])] = answer if isinstance(answer, str) else repr(answer)
        return answer


class RecordingModels:
    """A `ModelFactory` that wraps another one's detector and VLM in recorders."""

    def __init__(self, inner: ModelFactory | None = None) -> None:
        self.inner = inner or RegistryModelFactory()
        self.detector: RecordingDetector | None = None
        self.vlm: RecordingVLM | None = None

    def make_encoder(self, cfg: ClipConfig) -> ImageTextEncoder:
        return self.inner.make_encoder(cfg)

    def make_detector(self, cfg: DetectorConfig) -> Detector:
        self.detector = RecordingDetector(self.inner.make_detector(cfg))
        return self.detector

    def make_vlm(self, cfg: LVLMConfig) -> VisionLanguageModel:
        self.vlm = RecordingVLM(self.inner.make_vlm(cfg))
        return self.vlm


@dataclass(slots=True)
class InspectionResult:
    out: Path
    csv_path: Path
    html_path: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)


def is_critical(detection: Detection, cfg: RewardConfig) -> bool:
    return canonical_class(detection.label) in cfg.gate.classes and detection.score >= cfg.gate.threshold


def draw_detections(image: np.ndarray, detections: Sequence[Detection], cfg: RewardConfig) -> np.ndarray:
    """The front frame with each detection's box and "label score" drawn; critical ones in red."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for det in sorted(detections, key=lambda d: is_critical(d, cfg)):
        colour = _CRITICAL_COLOUR if is_critical(det, cfg) else _OTHER_COLOUR
        x1, y1, x2, y2 = (float(v) for v in det.box)
        draw.rectangle([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], outline=colour, width=1)
        draw.text((min(x1, x2) + 1, min(y1, y2) + 1), f"{det.label} {det.score:.2f}", fill=colour)
    return np.asarray(canvas)


def save_png(path: Path, image: np.ndarray) -> str:
    """Write a PNG atomically; returns its name relative to the output folder."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())
    return path.name


def _format_detections(detections: Sequence[Detection]) -> str:
    return ";".join(
        f"{d.label}:{d.score:.3f}@{','.join(f'{v:.1f}' for v in d.box)}"
        for d in sorted(detections, key=lambda d: -d.score)
    )


def _rows_for_chunk(
    chunk: list[SteppedRequest],
    reward_fn: Any,
    recorder: RecordingModels,
    reward_cfg: RewardConfig,
    images_dir: Path,
    every: int,
) -> list[dict[str, Any]]:
    if recorder.detector is not None:
        recorder.detector.calls.clear()
    if recorder.vlm is not None:
        recorder.vlm.answers.clear()
    terms = reward_fn([item.request for item in chunk])
    if len(terms) != len(chunk):
        raise RuntimeError(f"reward returned {len(terms)} results for {len(chunk)} steps")
    detections: list[list[Detection]] | None = None
    calls = recorder.detector.calls if recorder.detector is not None else []
    if len(calls) == 1 and len(calls[0]) == len(chunk):
        detections = calls[0]
    rows = []
    for i, (item, result) in enumerate(zip(chunk, terms, strict=True)):
        row: dict[str, Any] = {"step": item.step}
        frames = item.frames or {}
        found = detections[i] if detections is not None else None
        images = {"front_png": "", "bev_rgb_png": "", "detections_png": ""}
        if item.step % every == 0 or item.done:
            if frames.get("front") is not None:
                images["front_png"] = save_png(images_dir / f"{item.step:05d}_front.png", frames["front"])
                if found is not None:
                    drawn = draw_detections(frames["front"], found, reward_cfg)
                    images["detections_png"] = save_png(images_dir / f"{item.step:05d}_detections.png", drawn)
            if frames.get("bev_rgb") is not None:
                images["bev_rgb_png"] = save_png(
                    images_dir / f"{item.step:05d}_bev_rgb.png", frames["bev_rgb"]
                )
        row |= {key: f"images/{name}" if name else "" for key, name in images.items()}
        signals = item.request.signals
        row |= {name: getattr(signals, name) for name in SIGNAL_FIELDS}
        row["final"] = result.final
        row |= result.terms
        row["n_detections"] = len(found) if found is not None else ""
        row["n_critical"] = sum(is_critical(d, reward_cfg) for d in found) if found is not None else ""
        row["detections"] = _format_detections(found) if found is not None else ""
        row |= {f"text_{key}": value for key, value in result.texts.items()}
        if recorder.vlm is not None and item.request.front_window:
            row["text_lvlm_raw"] = recorder.vlm.answers.get(id(item.request.front_window[-1]), "")
        row["triggered"] = " ".join(item.info.get("triggered", []))
        rows.append(row)
    return rows


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> tuple[list[str], str]:
    """(columns in first-seen order, CSV text with one line per row; absent values empty)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return columns, buffer.getvalue()


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [
        float(r[key]) for r in rows if isinstance(r.get(key), int | float) and not isinstance(r[key], bool)
    ]
    return float(np.mean(values)) if values else None


def run_inspection(
    config: Preset | Mapping[str, Any],
    scenario: str,
    out: Path,
    steps: int = 200,
    seed: int = 0,
    every: int = 1,
    batch: int = 16,
    factory: ModelFactory | None = None,
) -> InspectionResult:
    """Drive one scripted episode of `scenario` and write the per-step record into `out`."""
    from drivevlm.inspection.report_html import write_report

    if every < 1:
        raise ConfigError(f"every: must be >= 1, got {every}")
    if batch < 1:
        raise ConfigError(f"batch: must be >= 1, got {batch}")
    preset = as_preset(config)
    reward_cfg = preset.reward
    env_cfg = scenario_env_config(preset.env, scenario, seed, render_frames=True)
    recorder = RecordingModels(factory)
    reward_fn = build_reward(reward_cfg, preset.models, recorder)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    chunk: list[SteppedRequest] = []
    last: SteppedRequest | None = None
    started = time.perf_counter()
    for item in drive_episode(env_cfg, steps, reward_cfg.window_frames, seed):
        chunk.append(item)
        last = item
        if len(chunk) >= batch or item.done:
            rows += _rows_for_chunk(chunk, reward_fn, recorder, reward_cfg, images_dir, every)
            chunk = []
    if chunk:
        rows += _rows_for_chunk(chunk, reward_fn, recorder, reward_cfg, images_dir, every)
    elapsed = time.perf_counter() - started
    columns, text = rows_to_csv(rows)
    csv_path = out / "steps.csv"
    write_atomic(csv_path, text.encode())
    episode = (last.info.get("episode_metrics") if last is not None else None) or {}
    summary: dict[str, Any] = {
        "preset": reward_cfg.preset,
        "oracle": "oracle" in reward_cfg.preset,
        "scenario": scenario,
        "town": env_cfg.town,
        "seed": seed,
        "steps": len(rows),
        "reason": episode.get("reason", "step_limit_of_inspection"),
        "mean_final": _mean(rows, "final"),
        "gate_rate": _mean(rows, "gate"),
        "images": sum(
            1 for row in rows for key in ("front_png", "bev_rgb_png", "detections_png") if row[key]
        ),
        "seconds": elapsed,
        "steps_per_s": len(rows) / max(elapsed, 1e-9),
        "csv": str(csv_path),
    }
    html_path = write_report(out / "index.html", summary, columns, rows)
    summary["html"] = str(html_path)
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, default=float).encode())
    return InspectionResult(out, csv_path, html_path, summary, rows)

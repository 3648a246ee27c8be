"""`drivevlm models train|eval`: reproduce the bundled models and re-measure their held-out quality."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from drivevlm.cli.common import JsonFlag, emit
from drivevlm.cli.data import fail

app = typer.Typer(help="The bundled image-text model, detector and tiny Qwen3-VL.", no_args_is_help=True)

# Short CLI names -> folder names under the bundled root (and under --out).
MODEL_NAMES = {"clip": "aligned_clip", "detector": "tiny_detector", "vlm": "tiny_qwen3vl"}

ModelsOption = Annotated[str, typer.Option("--models", help="Comma-separated: clip, detector, vlm.")]


def parse_models(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        fail("--models", "expected at least one of clip, detector, vlm")
    for name in names:
        if name not in MODEL_NAMES:
            fail("--models", f"unknown model {name!r}; allowed: {', '.join(MODEL_NAMES)}")
    return names


def _finite(value: Any) -> Any:
    """NaN (a measure with no positives in a small set) as null, so the output is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _flatten(result: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested results as `a.b: value` lines for the human-readable output."""
    flat: dict[str, Any] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif not isinstance(value, list):
            flat[name] = value
    return flat


@app.command("train")
def train(
    data: Annotated[
        Path | None, typer.Option(help="A data set from `drivevlm data generate` (clip and detector).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for <model>/ weights and config.")] = Path("out/models"),
    models: ModelsOption = "clip,detector,vlm",
    frames: Annotated[
        int | None, typer.Option(help="Generate this many frames into --data first when it holds none.")
    ] = None,
    seed: int = 0,
    threads: Annotated[int | None, typer.Option(help="torch threads; default: torch's choice.")] = None,
    clip_epochs: int = 6,
    clip_limit: Annotated[
        int | None, typer.Option(help="Training frames for the clip; default: all.")
    ] = None,
    detector_epochs: int = 6,
    detector_limit: Annotated[int | None, typer.Option(help="Training frames; default: all.")] = None,
    detector_init: Annotated[
        str | None, typer.Option(help="Start from these detector weights (a folder or 'bundled').")
    ] = None,
    detector_lr: float = 3e-3,
    detector_vru_boost: Annotated[
        float,
        typer.Option(help="Draw frames with a pedestrian / cyclist within 30 m this many times as often."),
    ] = 1.0,
    detector_hazard_boost: Annotated[
        float,
        typer.Option(help="Draw frames with an obstacle or warning triangle this many times as often."),
    ] = 1.0,
    detector_val_every: Annotated[
        int, typer.Option(help="Keep every n-th training-town episode out to choose the threshold; 0: none.")
    ] = 0,
    detector_stride: Annotated[
        int, typer.Option(help="Output stride of the detector's heatmap: 4 or 2.")
    ] = 4,
    detector_flip_test: Annotated[
        bool, typer.Option(help="Average each frame with its mirror when detecting (saved in the config).")
    ] = False,
    detector_pin_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Ship this score threshold (the presets' gate: 0.25); default: chosen."
        ),
    ] = None,
    detector_classes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated classes the detector learns (COCO names and the motorway hazards "
            "obstacle, warning triangle); default: person, bicycle, car, motorcycle."
        ),
    ] = None,
    vlm_steps: Annotated[int | None, typer.Option(help="Optimiser steps of the tiny Qwen3-VL.")] = None,
    vlm_minutes: Annotated[float | None, typer.Option(help="Or a wall-time budget in minutes.")] = None,
    vlm_windows: Annotated[int, typer.Option(help="Training windows generated from the env.")] = 8000,
    vlm_batch_size: int = 16,
    vlm_scenarios: Annotated[
        str | None, typer.Option(help="Comma-separated scenarios of the windows; a repeat doubles its share.")
    ] = None,
    vlm_category_power: Annotated[
        float, typer.Option(help="Draw risk categories with weights frequency ** -power (0 to 1).")
    ] = 0.5,
    vlm_lr: float = 2e-3,
    vlm_init: Annotated[
        Path | None, typer.Option(help="Continue from this tiny Qwen3-VL folder (e.g. the bundled one).")
    ] = None,
    vlm_flip: Annotated[bool, typer.Option(help="Mirror half the training windows left-right.")] = False,
    vlm_frame_size: Annotated[
        int, typer.Option(help="Side of the frames the tiny Qwen3-VL sees, pixels.")
    ] = 128,
    vlm_vision_hidden: Annotated[int, typer.Option(help="Width of the tiny Qwen3-VL's vision tower.")] = 64,
    vlm_vision_depth: Annotated[int, typer.Option(help="Blocks of its vision tower.")] = 2,
    vlm_labels: Annotated[
        str,
        typer.Option(
            help="camera (actors the camera shows), path (only those in or entering the ego's path) or "
            "field_of_view (older labels)."
        ),
    ] = "camera",
    vlm_save_every: Annotated[
        int,
        typer.Option(
            min=0, help="Steps between resume points of the tiny Qwen3-VL (0: none); rerun to resume."
        ),
    ] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Train the chosen models; quick defaults (the clip's are its card's recipe).

    The shipped detector (four stages) and small VLM need the flags their MODEL_CARD.md lists.
    """
    from drivevlm.model_training.bundle import train_models
    from drivevlm.model_training.train_aligned_clip import ClipTrainConfig
    from drivevlm.model_training.train_detector import DetectorTrainConfig, check_detector_classes

    names = parse_models(models)
    summary: dict[str, Any] = {"out": str(out)}
    frame_models = tuple(MODEL_NAMES[n] for n in names if n != "vlm")
    if frame_models:
        if data is None:
            fail("--data", "clip and detector train on a data set; pass --data")
        clip_config = ClipTrainConfig(epochs=clip_epochs, limit=clip_limit or None)
        classes = None
        if detector_classes is not None:
            try:
                classes = check_detector_classes(
                    [c.strip() for c in detector_classes.split(",") if c.strip()]
                )
            except ValueError as error:
                fail("--detector-classes", str(error).removeprefix("classes: "))
        detector_config = DetectorTrainConfig(
            epochs=detector_epochs,
            limit=detector_limit,
            lr=detector_lr,
            vru_boost=detector_vru_boost,
            hazard_boost=detector_hazard_boost,
            val_every=detector_val_every,
            stride=detector_stride,
            flip_test=detector_flip_test,
            init=detector_init,
            pin_threshold=detector_pin_threshold,
            **({"classes": classes} if classes else {}),
        )
        summary.update(
            train_models(
                data,
                out,
                frames=frames,
                seed=seed,
                threads=threads,
                models=frame_models,
                clip_config=clip_config,
                detector_config=detector_config,
                log=typer.echo,
            )
        )
    if "vlm" in names:
        from drivevlm.data.vlm_windows import LABEL_KINDS
        from drivevlm.model_training.train_tiny_vlm import TinyVlmShape, train_tiny_vlm

        if (vlm_steps is None) == (vlm_minutes is None):
            fail("--vlm-steps", "give exactly one of --vlm-steps, --vlm-minutes")
        if vlm_labels not in LABEL_KINDS:
            fail("--vlm-labels", f"expected one of {', '.join(LABEL_KINDS)}, got {vlm_labels!r}")
        try:
            shape = TinyVlmShape(
                frame_size=vlm_frame_size, vision_hidden=vlm_vision_hidden, vision_depth=vlm_vision_depth
            )
        except ValueError as error:
            field = str(error).split(":")[0]
            fail(f"--vlm-{field.replace('_', '-')}", str(error))
        scenarios = vlm_scenarios.split(",") if vlm_scenarios else None
        summary["tiny_qwen3vl"] = train_tiny_vlm(
            out / MODEL_NAMES["vlm"],
            minutes=vlm_minutes,
            steps=vlm_steps,
            seed=seed,
            train_windows=vlm_windows,
            scenarios=scenarios,
            labels=vlm_labels,
            batch_size=vlm_batch_size,
            learning_rate=vlm_lr,
            category_power=vlm_category_power,
            threads=threads,
            shape=None if vlm_init else shape,
            init=vlm_init,
            flip=vlm_flip,
            log=typer.echo,
            save_every=vlm_save_every,
        )
    emit(_finite(summary) if as_json else _flatten(summary), as_json)


@app.command("eval")
def evaluate(
    data: Annotated[
        Path | None,
        typer.Option(
            help="A data set to score on; default: a fresh held-out set generated into a temp folder."
        ),
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="Folder holding <model>/ weights; default: the bundled models.")
    ] = None,
    models: ModelsOption = "clip,detector,vlm",
    split: str = "heldout",
    limit: Annotated[int | None, typer.Option(help="Score at most this many frames.")] = None,
    frames: Annotated[int, typer.Option(help="Held-out frames to generate when --data is not given.")] = 1200,
    size: Annotated[
        int, typer.Option(help="Side of the generated frames, pixels (the env's default camera size).")
    ] = 224,
    seed: Annotated[int, typer.Option(help="Seed of the generated held-out frames and windows.")] = 11,
    vlm_windows: Annotated[int, typer.Option(help="Held-out windows for the tiny Qwen3-VL.")] = 600,
    vlm_scenarios: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated scenarios of the held-out windows (the motorway hazards on the highway "
            "town); default: the urban ones."
        ),
    ] = None,
    vlm_keep_categories: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated risk categories whose held-out windows are kept at every step (more of a "
            "rare category, e.g. obstacle_near, for its per-category figure)."
        ),
    ] = None,
    detector_threshold: Annotated[
        float | None,
        typer.Option(help="Score threshold to measure the detector at; default: the model's own."),
    ] = None,
    detector_precision: Annotated[
        str,
        typer.Option(help="The detector's arithmetic: float32, bfloat16 or auto (bfloat16 where native)."),
    ] = "float32",
    as_json: JsonFlag = False,
) -> None:
    """Re-measure held-out quality against the issue's bars (unseen towns and seeds)."""
    from drivevlm.model_training import evaluate as measures
    from drivevlm.precision import PRECISIONS

    names = parse_models(models)
    if detector_threshold is not None and not 0.0 <= detector_threshold <= 1.0:
        fail("--detector-threshold", f"must lie in [0, 1], got {detector_threshold}")
    if detector_precision not in PRECISIONS:
        fail("--detector-precision", f"expected one of {', '.join(PRECISIONS)}, got {detector_precision!r}")
    base = root if root is not None else measures.BUNDLED_ROOT
    for name in names:
        if not (base / MODEL_NAMES[name] / "config.json").is_file():
            fail("--root", f"no {MODEL_NAMES[name]}/config.json under {base}")
    report: dict[str, Any] = {"root": str(base)}
    with tempfile.TemporaryDirectory(prefix="drivevlm-eval-") as scratch:
        if {"clip", "detector"} & set(names):
            if data is None:
                from drivevlm.data.generate import generate_dataset
                from drivevlm.data.vlm_windows import HELD_OUT_TOWNS

                data = Path(scratch) / "heldout"
                typer.echo(
                    f"generating {frames} held-out frames (seed {seed}) into a temporary folder", err=True
                )
                generate_dataset(
                    data, frames, seed=seed, towns=tuple(HELD_OUT_TOWNS), size=size, step_stride=2
                )
            manifest = measures.read_manifest(data)
            report["data"] = {
                "dir": str(data),
                "frames": manifest["frames"],
                "size": manifest["size"],
                "split": split,
            }
            if "clip" in names:
                report["aligned_clip"] = measures.evaluate_aligned_clip(
                    data, base / "aligned_clip", split, limit
                )
            if "detector" in names:
                report["tiny_detector"] = measures.evaluate_detector(
                    data,
                    base / "tiny_detector",
                    split,
                    limit,
                    detector_threshold,
                    precision=detector_precision,
                )
    if "vlm" in names:
        from drivevlm.data.vlm_windows import held_out_windows
        from drivevlm.model_training.train_tiny_vlm import evaluate_tiny_vlm, saved_frame_size, saved_labels

        folder = base / MODEL_NAMES["vlm"]
        windows = held_out_windows(
            vlm_windows,
            seed=seed,
            scenarios=vlm_scenarios.split(",") if vlm_scenarios else None,
            keep_categories=vlm_keep_categories.split(",") if vlm_keep_categories else (),
            frame_size=saved_frame_size(folder),
            labels=saved_labels(folder),
        )
        result = evaluate_tiny_vlm(folder, windows)
        result["meets_bar"] = bool(result["category_accuracy"] >= measures.VLM_ACCURACY_BAR)
        report["tiny_qwen3vl"] = result
    emit(_finite(report) if as_json else _flatten(report), as_json)

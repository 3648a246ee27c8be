"""Training and evaluation commands on a tiny generated data set (seconds), and the held-out bars (slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivevlm.data.dataset import load_split
from drivevlm.data.generate import generate_dataset
from drivevlm.model_training.bundle import train_models
from drivevlm.model_training.evaluate import evaluate_models
from drivevlm.model_training.train_detector import export_yolo
from drivevlm.models.clip.aligned import AlignedClipEncoder
from drivevlm.models.detectors.tiny import TinyDetector


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "set"
    generate_dataset(
        root, 48, seed=7, scenarios=("pedestrian_crossing", "slow_cyclist"), size=64, max_episode_steps=16
    )
    return root


def test_train_then_evaluate_both_models(tiny_data: Path, tmp_path: Path) -> None:
    logs: list[str] = []
    summary = train_models(tiny_data, tmp_path, seed=1, clip_epochs=1, detector_epochs=1, log=logs.append)
    assert summary["aligned_clip"]["train_images"] == 2 * 29
    assert summary["tiny_detector"]["train_images"] == 29
    assert any("epoch 1/1" in line for line in logs)
    for name in ("aligned_clip", "tiny_detector"):
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["training"]["epochs"] == 1
    AlignedClipEncoder(tmp_path / "aligned_clip")
    assert TinyDetector(tmp_path / "tiny_detector").input_size == 64
    report = evaluate_models(tiny_data, tmp_path)
    json.dumps(report)
    clip = report["aligned_clip"]
    assert clip["frames"] == 19
    assert clip["clear_road_frames"] + clip["unsafe_frames"] <= clip["frames"]
    for view in ("bev", "front"):
        assert 0.0 <= clip[view]["retrieval_accuracy"] <= 1.0
        assert "r_static_auc_all_frames" in clip[view]
    det = report["tiny_detector"]
    assert set(det["ap50"]) == {"person", "bicycle", "car", "motorcycle"}
    assert 0.0 <= det["vru_recall_30m"] <= 1.0 and 0.0 <= det["precision"] <= 1.0


def test_train_models_rejects_unknown_model(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="models"):
        train_models(tiny_data, tmp_path, models=("resnet",))


def test_export_yolo_writes_normalised_labels(tiny_data: Path, tmp_path: Path) -> None:
    data_yaml = export_yolo(tiny_data, tmp_path / "yolo")
    assert "names:" in data_yaml.read_text()
    images = sorted((tmp_path / "yolo" / "images" / "train").glob("*.png"))
    labels = sorted((tmp_path / "yolo" / "labels" / "val").glob("*.txt"))
    assert len(images) == 29 and len(labels) == 19
    rows = [line.split() for p in labels for line in p.read_text().splitlines()]
    assert rows and all(0 <= int(r[0]) < 4 and all(0.0 <= float(v) <= 1.0 for v in r[1:]) for r in rows)
    # Another class list (a hazard detector's) is numbered in its own order; other boxes are left out.
    data_yaml = export_yolo(tiny_data, tmp_path / "cars", classes=["car", "obstacle"])
    assert data_yaml.read_text().endswith("names:\n  0: car\n  1: obstacle\n")
    cars = [
        line.split()
        for p in (tmp_path / "cars" / "labels" / "val").glob("*.txt")
        for line in p.read_text().splitlines()
    ]
    assert cars and {r[0] for r in cars} == {"0"} and len(cars) < len(rows)
    with pytest.raises(ValueError, match="classes: 'unicorn'"):
        export_yolo(tiny_data, tmp_path / "bad", classes=["unicorn"])


def test_export_yolo_reads_data_labels_as_class_names(tmp_path: Path) -> None:
    # The data stores a triangle's label as "warning_triangle"; the class is "warning triangle".
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "dataset.json").write_text(json.dumps({"format_version": 1, "frames": 1}))
    frame = np.zeros((1, 32, 32, 3), np.uint8)
    np.savez(data / "train" / "shard_00000.npz", bev=frame, front=frame)
    boxes = [{"label": "warning_triangle", "visible": 1.0, "box": [8, 8, 16, 16]}]
    record = {"shard": "shard_00000", "index": 0, "boxes": boxes}
    (data / "train" / "shard_00000.jsonl").write_text(json.dumps(record) + "\n")
    export_yolo(data, tmp_path / "yolo", classes=["car", "warning triangle"])
    label = (tmp_path / "yolo" / "labels" / "train" / "shard_00000_0000.txt").read_text().split()
    assert label == ["1", "0.375000", "0.375000", "0.250000", "0.250000"]


@pytest.mark.yolo
def test_yolo_trains_on_the_export(tiny_data: Path, tmp_path: Path) -> None:
    ultralytics = pytest.importorskip("ultralytics")
    data_yaml = export_yolo(tiny_data, tmp_path / "yolo")
    model = ultralytics.YOLO("yolov8n.yaml")
    model.train(
        data=str(data_yaml),
        epochs=1,
        imgsz=64,
        batch=8,
        workers=0,
        plots=False,
        project=str(tmp_path / "runs"),
        device="cpu",
        amp=False,
    )
    assert model.predict(np.zeros((64, 64, 3), dtype=np.uint8), verbose=False)


@pytest.fixture(scope="module")
def heldout_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("heldout") / "set"
    generate_dataset(data, 1200, seed=11, towns=("tee", "irregular"), size=224, step_stride=2)
    return data


@pytest.fixture(scope="module")
def heldout_report(heldout_set: Path) -> dict[str, Any]:
    return evaluate_models(heldout_set)


@pytest.mark.slow
def test_shipped_image_text_model_meets_its_bar_on_unseen_towns(heldout_report: dict[str, Any]) -> None:
    """Unsafe frames against clear-road frames, as the issue words the bar (0.917 measured on this set)."""
    clip = heldout_report["aligned_clip"]
    assert clip["bev"]["r_static_auc"] >= 0.9 and clip["meets_bar"], clip


@pytest.mark.slow
def test_shipped_detector_recall_meets_its_bar_on_unseen_towns(heldout_report: dict[str, Any]) -> None:
    """Pedestrians and cyclists within 30 m found at IoU >= 0.5 (0.950 measured on this set)."""
    det = heldout_report["tiny_detector"]
    assert det["threshold"] == 0.25 and det["vru_recall_30m"] >= 0.9, det


@pytest.mark.slow
def test_shipped_detector_precision_meets_its_bar_on_unseen_towns(heldout_report: dict[str, Any]) -> None:
    """Person / bicycle / motorcycle boxes that match one (0.854 measured on this set; 0.761 at 0.15)."""
    det = heldout_report["tiny_detector"]
    assert det["vru_precision"] >= 0.8, det


def test_shipped_detector_runs_at_the_presets_gate_threshold() -> None:
    """Its bars were measured at the threshold the default configuration's gate uses."""
    import yaml

    from drivevlm.presets import PRESETS_DIR

    preset = yaml.safe_load((PRESETS_DIR / "drivevlm_rl.yaml").read_text())
    assert preset["models"]["detector"]["model"] == "bundled"
    assert TinyDetector("bundled").threshold == preset["models"]["detector"]["threshold"] == 0.25


def test_detector_warm_start_balanced_sampling_and_validation_threshold(
    tiny_data: Path, tmp_path: Path
) -> None:
    from drivevlm.model_training.evaluate import THRESHOLD_GRID
    from drivevlm.model_training.train_detector import DetectorTrainConfig, train_detector

    train_detector(tiny_data, tmp_path / "a", DetectorTrainConfig(epochs=1, limit=None, threads=1), log=print)
    config = DetectorTrainConfig(
        epochs=1, limit=None, vru_boost=3.0, val_every=2, init=str(tmp_path / "a"), threads=1
    )
    summary = train_detector(tiny_data, tmp_path / "b", config, log=print)
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    choice = saved["threshold_choice"]
    assert choice["validation_episodes"] and summary["train_images"] + choice["validation_frames"] == 29
    assert saved["threshold"] == summary["threshold"] == choice["threshold"] in THRESHOLD_GRID
    assert len(choice["sweep"]) == len(THRESHOLD_GRID)
    assert TinyDetector(tmp_path / "b").threshold == saved["threshold"]


def test_a_pinned_detector_threshold_is_shipped_beside_the_validation_choice(
    tiny_data: Path, tmp_path: Path
) -> None:
    from drivevlm.model_training.train_detector import DetectorTrainConfig, train_detector

    config = DetectorTrainConfig(epochs=1, limit=None, val_every=2, pin_threshold=0.27, threads=1)
    said: list[str] = []
    summary = train_detector(tiny_data, tmp_path / "d", config, log=said.append)
    saved = json.loads((tmp_path / "d" / "config.json").read_text())
    assert saved["threshold"] == summary["threshold"] == 0.27 != saved["threshold_choice"]["threshold"]
    assert TinyDetector(tmp_path / "d").threshold == 0.27
    assert "pinned threshold 0.27" in said[-1]


def test_detector_at_stride_two_starts_from_a_stride_four_backbone(tiny_data: Path, tmp_path: Path) -> None:
    from drivevlm.model_training.train_detector import DetectorTrainConfig, train_detector

    train_detector(tiny_data, tmp_path / "a", DetectorTrainConfig(epochs=1, limit=None, threads=1), log=print)
    said: list[str] = []
    config = DetectorTrainConfig(
        epochs=1, limit=None, stride=2, flip_test=True, init=str(tmp_path / "a"), threads=1
    )
    train_detector(tiny_data, tmp_path / "b", config, log=said.append)
    # The backbone and the stride-4 merge carry over; the new stride-2 merge and the heads start afresh.
    assert f"61 of 74 tensors taken from {tmp_path / 'a'}" in said[0]
    detector = TinyDetector(tmp_path / "b", threshold=0.0)
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert detector.net.stride == saved["stride"] == 2 and detector.flip_test and saved["flip_test"]
    assert detector.detect(np.zeros((64, 64, 3), np.uint8))[0]  # threshold 0: every peak is a box


@pytest.mark.slow
def test_a_detector_extended_by_motorway_hazard_classes(tmp_path: Path) -> None:
    """Lost cargo and a warning triangle become classes of their own; the classes the model started from
    keep their heads, and a gate can name the new ones."""
    from drivevlm.model_training.evaluate import evaluate_detector
    from drivevlm.model_training.train_detector import DetectorTrainConfig, train_detector
    from drivevlm.rewards.config import GateConfig

    data = tmp_path / "motorway"
    scenarios = ("broken_down_vehicle_triangle", "lost_cargo")
    generate_dataset(data, 240, seed=3, towns=("highway",), scenarios=scenarios, size=128, step_stride=5)
    labels = {g["label"] for r in load_split(data, "train", None).records for g in r["boxes"]}
    assert {"obstacle", "warning_triangle"} <= labels
    train_detector(data, tmp_path / "four", DetectorTrainConfig(epochs=1, limit=None, threads=1), log=print)
    said: list[str] = []
    classes = ("person", "bicycle", "car", "motorcycle", "obstacle", "warning triangle")
    config = DetectorTrainConfig(
        epochs=1, limit=None, threads=1, classes=classes, init=str(tmp_path / "four")
    )
    train_detector(data, tmp_path / "six", config, log=said.append)
    assert "class heads ['person', 'bicycle', 'car', 'motorcycle']" in said[0]
    six = TinyDetector(tmp_path / "six", threshold=0.0)
    assert six.classes == classes and six.net.heatmap.out_channels == 6
    assert {d.label for d in six.detect(np.zeros((64, 64, 3), np.uint8))[0]} <= set(classes)
    report = evaluate_detector(data, tmp_path / "six", split="train")
    assert set(report["ap50"]) == set(classes)
    assert GateConfig(classes=["person", "obstacle", "warning_triangle"]).classes[-1] == "warning triangle"
    with pytest.raises(ValueError, match="'debris' is not a COCO class name or one of the hazard classes"):
        train_detector(data, tmp_path / "bad", DetectorTrainConfig(epochs=1, classes=("person", "debris")))
    saved = json.loads((tmp_path / "six" / "config.json").read_text())
    (tmp_path / "six" / "config.json").write_text(json.dumps({**saved, "classes": ["person", "debris"]}))
    with pytest.raises(ValueError, match=r"classes in .*six/config\.json: 'debris'"):
        TinyDetector(tmp_path / "six")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vru_boost": 0.0}, "vru_boost"),
        ({"hazard_boost": -1.0}, "hazard_boost"),
        ({"val_every": -1}, "val_every"),
        ({"pin_threshold": 1.5}, "pin_threshold"),
    ],
)
def test_detector_training_rejects_bad_options(
    tiny_data: Path, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    from drivevlm.model_training.train_detector import DetectorTrainConfig, train_detector

    with pytest.raises(ValueError, match=message):
        train_detector(tiny_data, tmp_path, DetectorTrainConfig(epochs=1, **changes))


def test_frames_with_near_people_or_learnt_hazards_are_drawn_more_often() -> None:
    from drivevlm.model_training.train_detector import DetectorTrainConfig, draw_weights

    def frame(*boxes: tuple[str, float, float]) -> dict[str, Any]:
        return {"boxes": [{"label": lb, "distance_m": d, "visible": v} for lb, d, v in boxes]}

    records = [
        frame(("car", 10.0, 1.0)),
        frame(("person", 12.0, 1.0)),
        frame(("person", 45.0, 1.0)),  # too far to count as near
        frame(("warning_triangle", 70.0, 1.0)),  # hazards count at any distance
        frame(("obstacle", 20.0, 0.1)),  # mostly hidden: not counted
        frame(("person", 5.0, 1.0), ("obstacle", 40.0, 1.0)),
    ]
    config = DetectorTrainConfig(vru_boost=2.0, hazard_boost=3.0)
    hazard_detector = ("person", "car", "obstacle", "warning triangle")
    assert draw_weights(records, config, hazard_detector).tolist() == [1.0, 2.0, 1.0, 3.0, 1.0, 6.0]
    # A detector that does not learn the hazards treats their frames as any other.
    assert draw_weights(records, config, ("person", "car")).tolist() == [1.0, 2.0, 1.0, 1.0, 1.0, 2.0]


def test_detector_warm_start_from_a_missing_folder_names_it(tiny_data: Path, tmp_path: Path) -> None:
    from drivevlm.model_training.train_detector import DetectorTrainConfig, train_detector
    from drivevlm.models.base import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="nowhere"):
        train_detector(tiny_data, tmp_path, DetectorTrainConfig(epochs=1, init=str(tmp_path / "nowhere")))


def test_clip_hard_negatives_shift_and_warm_start(tiny_data: Path, tmp_path: Path) -> None:
    from drivevlm.model_training.train_aligned_clip import ClipTrainConfig, train_aligned_clip

    base = ClipTrainConfig(epochs=1, limit=None, batch_size=16, threads=1)
    train_aligned_clip(tiny_data, tmp_path / "a", base, log=print)
    first = AlignedClipEncoder(tmp_path / "a")
    tuned = ClipTrainConfig(
        epochs=1,
        limit=None,
        batch_size=16,
        threads=1,
        static_weight=1.0,
        shift_px=2,
        init=str(tmp_path / "a"),
    )
    summary = train_aligned_clip(tiny_data, tmp_path / "b", tuned, log=print)
    second = AlignedClipEncoder(tmp_path / "b")
    assert np.isfinite(summary["final_loss"])
    frames = np.zeros((2, 64, 64, 3), dtype=np.uint8)
    assert not np.allclose(first.encode_images(frames), second.encode_images(frames))

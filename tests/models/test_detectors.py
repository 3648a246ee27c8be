"""Detectors: COCO names, kinds, thresholds, class filters and well-formed boxes on real image arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivevlm.models.base import Detection, Detector
from drivevlm.models.detectors.coco import (
    CLASS_BY_CATEGORY_ID,
    COCO_CLASSES,
    DEFAULT_CRITICAL_CLASSES,
    canonical_class,
    check_class_names,
    kind_of,
)
from drivevlm.models.detectors.common import check_threshold, to_detections


def street_image(height: int = 120, width: int = 160) -> np.ndarray:
    """A drawn scene: grey road, sky, a dark car-like block and a thin upright figure."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 3] = (135, 190, 235)
    image[height // 3 :] = (90, 90, 90)
    image[70:100, 20:80] = (180, 20, 20)
    image[55:105, 120:130] = (240, 200, 150)
    return image


def test_coco_tables() -> None:
    assert len(COCO_CLASSES) == 80 == len(set(COCO_CLASSES))
    assert CLASS_BY_CATEGORY_ID[1] == "person" and CLASS_BY_CATEGORY_ID[90] == "toothbrush"
    assert CLASS_BY_CATEGORY_ID[4] == "motorcycle" and 12 not in CLASS_BY_CATEGORY_ID
    assert {c: kind_of(c) for c in ("person", "bicycle", "motorcycle", "car", "bus", "truck")} == {
        "person": "pedestrian",
        "bicycle": "bicycle",
        "motorcycle": "motorcycle",
        "car": "car",
        "bus": "car",
        "truck": "car",
    }
    assert kind_of("cup") is None
    assert kind_of("Motorbike") == "motorcycle" and canonical_class("traffic_light") == "traffic light"
    assert set(DEFAULT_CRITICAL_CLASSES) <= set(COCO_CLASSES)


def test_kinds_match_the_simulator_actor_kinds() -> None:
    from drivevlm.sim.world import ActorKind

    for name in ("person", "bicycle", "motorcycle", "car", "bus", "truck"):
        assert ActorKind(kind_of(name)).value == kind_of(name)


def test_class_and_threshold_checks() -> None:
    assert check_class_names(["person", "motorbike"]) == ("person", "motorcycle")
    with pytest.raises(ValueError, match="'pedestrain' is not a COCO class"):
        check_class_names(["person", "pedestrain"])
    with pytest.raises(TypeError, match="single str"):
        check_class_names("person")
    with pytest.raises(ValueError, match="threshold"):
        check_threshold(1.5)


def test_to_detections_filters_clips_and_sorts() -> None:
    boxes = np.array([[-5, 10, 50, 300], [1, 2, 3, 4], [10, 10, 20, 20]], float)
    found = to_detections(
        boxes, np.array([0.5, 0.1, 0.9]), ["person", "car", "cup"], 0.3, None, (100, 200, 3)
    )
    assert found == [
        Detection("cup", 0.9, (10.0, 10.0, 20.0, 20.0)),
        Detection("person", 0.5, (0.0, 10.0, 50.0, 100.0)),
    ]
    only_people = to_detections(
        boxes, np.array([0.5, 0.1, 0.9]), ["person", "car", "cup"], 0.0, frozenset({"person"}), (100, 200)
    )
    assert [d.label for d in only_people] == ["person"]


def assert_well_formed(per_image: list[list[Detection]], images: np.ndarray) -> None:
    assert len(per_image) == len(images)
    for detections, image in zip(per_image, images, strict=True):
        height, width = image.shape[:2]
        scores = [d.score for d in detections]
        assert scores == sorted(scores, reverse=True)
        for detection in detections:
            assert detection.label in COCO_CLASSES
            assert 0.0 <= detection.score <= 1.0
            x1, y1, x2, y2 = detection.box
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height


@pytest.fixture(scope="module")
def rtdetr_open(tiny_rtdetr_dir: Path) -> Detector:
    from drivevlm.models.detectors.transformers_rtdetr import TransformersDetector

    return TransformersDetector(tiny_rtdetr_dir, threshold=0.0, batch_size=2)


def test_rtdetr_detects_on_real_image_arrays(rtdetr_open: Detector) -> None:
    images = np.stack([street_image(), street_image()[:, ::-1].copy(), np.zeros((120, 160, 3), np.uint8)])
    found = rtdetr_open.detect(images)
    assert isinstance(rtdetr_open, Detector)
    assert_well_formed(found, images)
    assert all(len(detections) > 0 for detections in found)
    assert_same_detections(rtdetr_open.detect(images[0]), found[:1])
    assert_same_detections(rtdetr_open.detect(list(images[1:])), found[1:])


def assert_same_detections(got: list[list[Detection]], want: list[list[Detection]], top: int = 10) -> None:
    """The strongest detections of each image agree in label, box and score up to float noise: a batch
    and a single image take different kernels on some CPUs, which reorders near-equal scores."""
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        for first, second in ((a, b), (b, a)):
            for detection in first[:top]:
                assert any(
                    other.label == detection.label
                    and other.score == pytest.approx(detection.score, abs=1e-4)
                    and other.box == pytest.approx(detection.box, abs=0.5)
                    for other in second
                ), f"{detection} has no match"


def test_rtdetr_threshold_and_classes(tiny_rtdetr_dir: Path, rtdetr_open: Detector) -> None:
    from drivevlm.models.detectors.transformers_rtdetr import TransformersDetector

    image = street_image()
    everything = rtdetr_open.detect(image)[0]
    cut = float(np.median([d.score for d in everything]))
    strict = TransformersDetector(tiny_rtdetr_dir, threshold=cut).detect(image)[0]
    assert strict and all(d.score >= cut for d in strict) and len(strict) < len(everything)
    wanted = {everything[0].label}
    filtered = TransformersDetector(tiny_rtdetr_dir, threshold=0.0, classes=sorted(wanted)).detect(image)[0]
    assert filtered and {d.label for d in filtered} == wanted
    with pytest.raises(ValueError, match="'lorry' is not a COCO class"):
        TransformersDetector(tiny_rtdetr_dir, classes=["lorry"])
    with pytest.raises(ValueError, match="uint8"):
        rtdetr_open.detect(image.astype(np.float64))


def test_rtdetr_non_square_and_odd_sizes(rtdetr_open: Detector) -> None:
    tall = np.full((97, 41, 3), 128, np.uint8)
    assert_well_formed(rtdetr_open.detect(tall), tall[None])


@pytest.mark.vision
def test_torchvision_ssdlite_random_weights() -> None:
    pytest.importorskip("torchvision")
    from drivevlm.models.detectors.torchvision_ssd import TorchvisionSsdDetector

    detector = TorchvisionSsdDetector("ssdlite320_mobilenet_v3_large", weights="random", threshold=0.0)
    images = np.stack([street_image(), street_image()[::-1].copy()])
    found = detector.detect(images)
    assert isinstance(detector, Detector)
    assert_well_formed(found, images)
    assert all(len(d) > 0 for d in found)


@pytest.mark.vision
def test_torchvision_ssdlite_missing_weights_named() -> None:
    pytest.importorskip("torchvision")
    from drivevlm.models.base import ModelNotFoundError
    from drivevlm.models.detectors.torchvision_ssd import TorchvisionSsdDetector

    with pytest.raises(ModelNotFoundError, match="ssdlite320_mobilenet_v3_large"):
        TorchvisionSsdDetector("ssdlite320_mobilenet_v3_large")


@pytest.mark.yolo
def test_ultralytics_yolo_from_yaml_random_weights() -> None:
    pytest.importorskip("ultralytics")
    from drivevlm.models.detectors.ultralytics_yolo import UltralyticsYoloDetector

    detector = UltralyticsYoloDetector("yolov8n.yaml", threshold=0.0, image_size=160)
    images = np.stack([street_image(), street_image()])
    found = detector.detect(images)
    assert isinstance(detector, Detector)
    assert_well_formed(found, images)


@pytest.mark.yolo
def test_ultralytics_missing_checkpoint_named(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    from drivevlm.models.base import ModelNotFoundError
    from drivevlm.models.detectors.ultralytics_yolo import UltralyticsYoloDetector

    with pytest.raises(ModelNotFoundError, match=r"yolov8n\.pt"):
        UltralyticsYoloDetector("yolov8n.pt")

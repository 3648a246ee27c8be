"""The bundled tiny detector: loads offline, COCO labels, finds a pedestrian and a car it is shown."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from drivevlm.data.boxes import front_boxes
from drivevlm.env import DriveEnv
from drivevlm.models.base import Detector, ModelNotFoundError
from drivevlm.models.detectors.coco import HAZARD_CLASSES
from drivevlm.models.detectors.tiny import BUNDLED_DIR, CLASSES, TinyDetector
from drivevlm.models.registry import make_detector
from drivevlm.render import FrontCameraRenderer
from drivevlm.sim.world import Actor, ActorKind, Pose


@pytest.fixture(scope="module")
def detector() -> TinyDetector:
    model = make_detector("tiny", "bundled")
    assert isinstance(model, TinyDetector)
    return model


def test_bundled_weights_are_small_and_documented() -> None:
    assert (BUNDLED_DIR / "model.safetensors").stat().st_size < 5 * 2**20
    # The COCO road users and the motorway hazards (obstacle, warning triangle).
    assert json.loads((BUNDLED_DIR / "config.json").read_text())["classes"] == [*CLASSES, *HAZARD_CLASSES]
    assert "mAP@0.5" in (BUNDLED_DIR / "MODEL_CARD.md").read_text()


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _pedestrian_and_car_ahead(size: int) -> tuple[np.ndarray, dict[str, tuple[float, ...]], np.ndarray]:
    """A front frame with a pedestrian 10 m and a car 20 m ahead, their true boxes, and the empty road."""
    env = DriveEnv({"town": "irregular", "scenario": "car_following", "density": "empty"})
    env.reset(seed=4)
    state = env.world_state
    env.close()
    assert state is not None
    pose = state.ego.pose
    c, s = np.cos(pose.yaw), np.sin(pose.yaw)
    actors = (
        Actor(
            "ped",
            ActorKind.PEDESTRIAN,
            Pose(pose.x + 10 * c + 1.5 * s, pose.y + 10 * s - 1.5 * c, pose.yaw + 1.5),
            1.0,
            0.5,
            0.5,
            1.8,
        ),
        Actor("car", ActorKind.CAR, Pose(pose.x + 20 * c, pose.y + 20 * s, pose.yaw), 5.0, 4.5, 1.9, 1.5),
    )
    scene = dataclasses.replace(state, actors=actors, traffic_lights=())
    camera = FrontCameraRenderer(width=size, height=size)
    truth = {b.label: b.box for b in front_boxes(camera, scene)}
    empty = camera.render(dataclasses.replace(state, actors=(), traffic_lights=()))
    return camera.render(scene), truth, empty


@pytest.mark.parametrize("size", [160, 224])
def test_finds_a_pedestrian_and_a_car_ahead(detector: TinyDetector, size: int) -> None:
    assert isinstance(detector, Detector)
    image, truth, empty = _pedestrian_and_car_ahead(size)
    found = detector.detect(image)[0]
    assert all(d.label in CLASSES and 0.0 <= d.score <= 1.0 for d in found)
    for label in ("person", "car"):
        assert any(d.label == label and _iou(d.box, truth[label]) >= 0.3 for d in found), (label, found)
    assert not [d for d in detector.detect(empty)[0] if d.label == "person"]


@pytest.mark.parametrize("flip_test", [False, True])
def test_bfloat16_finds_what_float32_finds(detector: TinyDetector, flip_test: bool) -> None:
    """Under bfloat16 autocast the same objects come back, at nearly the same boxes and scores."""
    image, _, _ = _pedestrian_and_car_ahead(224)
    plain = TinyDetector(flip_test=flip_test).detect(image)[0]
    fast = TinyDetector(flip_test=flip_test, precision="bfloat16").detect(image)[0]
    assert [d.label for d in fast] == [d.label for d in plain] and {"person", "car"} <= {
        d.label for d in plain
    }
    for a, b in zip(fast, plain, strict=True):
        assert a.score == pytest.approx(b.score, abs=0.05) and _iou(a.box, b.box) > 0.8
    with pytest.raises(ValueError, match="precision: expected one of float32, bfloat16, auto"):
        TinyDetector(precision="half")


def test_bad_input_and_missing_model(detector: TinyDetector, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((1, 64, 64, 3), dtype=np.float64))
    with pytest.raises(ModelNotFoundError, match="tiny_missing"):
        TinyDetector(tmp_path / "tiny_missing")
    with pytest.raises(ValueError, match="threshold"):
        TinyDetector("bundled", threshold=2.0)


@pytest.mark.parametrize("stride", [4, 2])
def test_heatmap_resolution_follows_the_stride(stride: int) -> None:
    import torch

    from drivevlm.models.detectors.tiny import TinyCenterNet

    outputs = TinyCenterNet(stride=stride)(torch.zeros(1, 3, 64, 64))
    assert outputs["heatmap"].shape == (1, len(CLASSES), 64 // stride, 64 // stride)
    assert outputs["size"].shape[-2:] == outputs["offset"].shape[-2:] == (64 // stride, 64 // stride)


def test_unknown_stride_is_named() -> None:
    from drivevlm.models.detectors.tiny import TinyCenterNet

    with pytest.raises(ValueError, match="stride"):
        TinyCenterNet(stride=8)


@pytest.mark.parametrize("stride", [4, 2])
def test_targets_and_decoding_agree_on_box_positions(stride: int) -> None:
    """A box turned into training targets and decoded back comes out where it went in, at either stride."""
    import torch

    from drivevlm.model_training.train_detector import targets
    from drivevlm.models.detectors.tiny import decode

    box = (21.0, 30.0, 24.0, 39.0)  # a far pedestrian: 3 x 9 px
    record = {"boxes": [{"label": "person", "box": list(box), "visible": 1.0, "distance_m": 25.0}]}
    target = targets([record], 64, np.array([False]), stride)
    logits = torch.where(target["heatmap"] == 1.0, 10.0, -10.0)
    decoded = decode(
        {"heatmap": logits, "size": target["size"], "offset": target["offset"]}, 0.5, 5, (1, 1), stride
    )
    assert [d.label for d in decoded[0]] == ["person"]
    assert decoded[0][0].box == pytest.approx(box, abs=1e-4)


def test_test_time_flip_sees_a_frame_and_its_mirror_alike() -> None:
    """Averaging with the mirror makes the outputs mirror-symmetric: a mirrored frame gives mirrored maps."""
    import torch

    from drivevlm.models.detectors.tiny import TinyCenterNet, with_mirror

    torch.manual_seed(0)
    net = TinyCenterNet(stride=2).eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        plain, mirrored = with_mirror(net, images), with_mirror(net, images.flip(-1))
    assert torch.allclose(plain["heatmap"], mirrored["heatmap"].flip(-1), atol=1e-4)
    assert torch.allclose(plain["size"], mirrored["size"].flip(-1), atol=1e-5)
    assert torch.allclose(plain["offset"][:, 0], 1.0 - mirrored["offset"][:, 0].flip(-1), atol=1e-5)
    assert torch.allclose(plain["offset"][:, 1], mirrored["offset"][:, 1].flip(-1), atol=1e-5)


def test_flip_test_follows_the_config_unless_asked(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(BUNDLED_DIR, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "flip_test": True}))
    assert TinyDetector(folder).flip_test and not TinyDetector(folder, flip_test=False).flip_test
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[20:40, 30:34] = 200
    for detector in (
        TinyDetector(folder, threshold=0.0),
        TinyDetector(folder, threshold=0.0, flip_test=False),
    ):
        assert detector.detect(frame)[0]

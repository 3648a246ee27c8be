"""COCO class names shared by all detector backends, and the map from them to road-user kinds.

The kinds are plain strings equal to the simulator's ``ActorKind`` values; detectors stay free of
simulator imports.
"""

from __future__ import annotations

from collections.abc import Iterable

# The 80 COCO detection classes, in the contiguous order used by YOLO and RT-DETR checkpoints.
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

# The original COCO category ids 1..90 (with gaps) for each class, as torchvision's detectors number them.
COCO_CATEGORY_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)  # fmt: skip

CLASS_BY_CATEGORY_ID: dict[int, str] = dict(zip(COCO_CATEGORY_IDS, COCO_CLASSES, strict=True))

# Names other label sets use for the same COCO classes.
ALIASES: dict[str, str] = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
    "pedestrian": "person",
}

# Road-user kinds (values of drivevlm.sim.world.ActorKind) for the COCO classes that are road users.
KIND_BY_CLASS: dict[str, str] = {
    "person": "pedestrian",
    "bicycle": "bicycle",
    "motorcycle": "motorcycle",
    "car": "car",
    "bus": "car",
    "truck": "car",
}

DEFAULT_CRITICAL_CLASSES: tuple[str, ...] = ("person", "bicycle", "motorcycle")

# Motorway hazards that are not COCO classes: what a detector trained on them (the tiny detector with these
# in its config's classes) may report, and so what a gate may name beside the COCO classes.
HAZARD_CLASSES: tuple[str, ...] = ("obstacle", "warning triangle")


def canonical_class(label: str) -> str:
    """The COCO name for a detector label ('motorbike' -> 'motorcycle'); unknown labels pass unchanged."""
    name = label.strip().lower().replace("_", " ")
    return ALIASES.get(name, name)


def kind_of(label: str) -> str | None:
    """The road-user kind of a COCO label, or None when it is not a road user (a cup, a dog, ...)."""
    return KIND_BY_CLASS.get(canonical_class(label))


def check_class_names(names: Iterable[str], what: str = "classes") -> tuple[str, ...]:
    """Validate class names against COCO and the hazard classes, raising a ValueError naming the wrong one."""
    if isinstance(names, str):
        raise TypeError(f"{what}: expected a list of COCO class names, got a single str {names!r}")
    checked = []
    for name in names:
        canonical = canonical_class(name)
        if canonical not in COCO_CLASSES and canonical not in HAZARD_CLASSES:
            raise ValueError(
                f"{what}: {name!r} is not a COCO class name or one of the hazard classes "
                f"{list(HAZARD_CLASSES)}; expected one of {list(COCO_CLASSES)}"
            )
        checked.append(canonical)
    return tuple(checked)

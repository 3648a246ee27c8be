"""Object detectors for the attention gate, all reporting COCO class names.

- ``rtdetr``: transformers RT-DETR (Apache-2.0), the default: needs only the `hf` extra, no torchvision.
- ``torchvision_ssd``: torchvision SSDlite320 (BSD-3), `vision` extra.
- ``ultralytics``: YOLOv8 (AGPL-3.0), `yolo` extra, imported only when selected.
"""

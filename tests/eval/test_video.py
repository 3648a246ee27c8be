"""Episode videos: the file is a real video with one frame per step and visible content."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from drivevlm.config import EnvConfig
from drivevlm.eval.suites import SuiteEpisode
from drivevlm.eval.video import compose_frame, drive_video, overlay_lines

CONFIG = EnvConfig(bev_size=32, route_waypoints=4, rgb_size=96)
EPISODE = SuiteEpisode("grid", "pedestrian_crossing", "regular", 0, 0)


def _throttle(obs: object) -> np.ndarray:
    return np.array([0.0, 0.6], dtype=np.float32)


@pytest.mark.parametrize("suffix", [".webm", ".mp4"])
def test_drive_video_writes_one_frame_per_step(tmp_path: Path, suffix: str) -> None:
    result = drive_video(_throttle, CONFIG, EPISODE, tmp_path / f"ep{suffix}", steps=30)
    assert result.video == tmp_path / f"ep{suffix}" and result.fallback_reason is None
    assert result.frames == 31 and result.episode["steps"] == 30
    capture = cv2.VideoCapture(str(result.video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 31
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 31
    assert frames[0].shape == (96, 192, 3)
    assert all(f.std() > 10 for f in frames)
    # The car drives: later frames differ from the first.
    assert np.abs(frames[-1].astype(int) - frames[1].astype(int)).mean() > 1


def test_overlay_text_is_drawn() -> None:
    front = np.full((96, 96, 3), 90, np.uint8)
    bev = np.full((48, 48, 3), 30, np.uint8)
    plain = compose_frame(front, bev, [])
    lines = overlay_lines(12.5, [0.1, 0.5], 0.42, {"f_speed": 0.5})
    assert lines[0] == "speed  12.5 km/h" and "f_speed 0.50" in lines
    marked = compose_frame(front, bev, lines)
    assert plain.shape == marked.shape == (96, 192, 3)
    assert np.count_nonzero(np.any(plain != marked, axis=2)) > 200


def test_video_names_must_say_the_container(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'ep.avi' must end in one of .webm, .mp4"):
        drive_video(_throttle, CONFIG, EPISODE, tmp_path / "ep.avi", steps=5)


def test_gif_fallback_when_mp4v_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An unknown codec makes OpenCV's real writer fail to open, as a build without mp4v would.
    monkeypatch.setattr(cv2, "VideoWriter_fourcc", lambda *_: cv2.VideoWriter.fourcc(*"ZZZZ"))
    result = drive_video(_throttle, CONFIG, EPISODE, tmp_path / "ep.mp4", steps=5)
    assert result.fallback_reason and result.video == tmp_path / "ep.gif"
    from PIL import Image

    with Image.open(result.video) as gif:
        assert gif.n_frames == 6
    assert not (tmp_path / "ep.mp4").exists()

"""Static and dynamic pathways: formulas, gate logic, LVLM fallbacks and concurrency."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pytest
from fakes import PixelEncoder, SceneDetector, frame

from drivevlm.models.lvlm.openai_server import OpenAIChatVLM
from drivevlm.rewards.dynamic import (
    DEFAULT_DYNAMIC_POSITIVE_GOAL,
    DEFAULT_FALLBACK_GOAL,
    AttentionGate,
    DynamicPathway,
    dynamic_score,
)
from drivevlm.rewards.static import (
    DEFAULT_NEGATIVE_GOAL,
    DEFAULT_POSITIVE_GOAL,
    StaticPathway,
    contrast_score,
)
from support.chat_server import ChatServer, Reply, unused_port

GOAL = "A pedestrian is crossing the road ahead"
TEXTS = {
    DEFAULT_POSITIVE_GOAL: (1, 0, 0),
    DEFAULT_NEGATIVE_GOAL: (0, 1, 0),
    DEFAULT_DYNAMIC_POSITIVE_GOAL: (1, 0, 0),
    DEFAULT_FALLBACK_GOAL: (0, 1, 0),
    GOAL: (0, 0, 1),
}


def test_contrast_score_hand_computed() -> None:
    image = np.array([[0.6, 0.8, 0.0]])
    np.testing.assert_allclose(contrast_score(image, np.array([1, 0, 0]), np.array([0, 1, 0])), [-0.2])
    np.testing.assert_allclose(
        contrast_score(image, np.array([1, 0, 0]), np.array([0, 1, 0]), 2.0, 0.5), [0.8]
    )


def test_static_pathway_encodes_texts_once_and_images_in_batches() -> None:
    encoder = PixelEncoder(TEXTS)
    pathway = StaticPathway(encoder, alpha=2.0, beta=0.5, batch_size=2)
    scores = pathway([frame((3, 4, 0)), frame((0, 5, 0)), frame((7, 0, 0))])
    np.testing.assert_allclose(scores.r_static, [2 * 0.6 - 0.5 * 0.8, -0.5, 2.0], atol=1e-6)
    np.testing.assert_allclose(scores.cos_positive, [0.6, 0.0, 1.0], atol=1e-6)
    pathway([frame((1, 1, 1))])
    assert encoder.text_calls == 1
    assert encoder.image_calls == 3


def test_static_pathway_rejects_bad_frames() -> None:
    pathway = StaticPathway(PixelEncoder(TEXTS))
    with pytest.raises(ValueError, match="bev_rgb: expected dtype uint8"):
        pathway([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match=r"bev_rgb: expected shape"):
        pathway([np.zeros((8, 8), np.uint8)])


def test_dynamic_score_is_zero_where_the_gate_is_closed() -> None:
    values = dynamic_score(np.array([True, False]), np.array([0.5, 0.9]), np.array([0.2, 0.1]), 1.0, 2.0)
    np.testing.assert_allclose(values, [0.1, 0.0])


def test_gate_opens_only_for_critical_classes_above_threshold() -> None:
    gate = AttentionGate(SceneDetector())
    opened, found = gate([frame((1, 0, 0), scene) for scene in range(5)])
    assert opened.tolist() == [False, True, False, False, True]
    assert [d.label for d in found[4]] == ["motorbike"]
    low = AttentionGate(SceneDetector(), ["person"], threshold=0.05)
    assert low([frame((1, 0, 0), 2)])[0].tolist() == [True]
    cars = AttentionGate(SceneDetector(), ["car"])
    assert cars([frame((1, 0, 0), s) for s in (1, 3)])[0].tolist() == [False, True]


def test_gate_rejects_unknown_class_listing_coco_names() -> None:
    with pytest.raises(ValueError, match=r"gate.classes: 'pedestrain' is not a COCO class name.*'person'"):
        AttentionGate(SceneDetector(), ["pedestrain"])
    with pytest.raises(ValueError, match=r"gate\.threshold"):
        AttentionGate(SceneDetector(), threshold=1.5)


def window(rgb: tuple[int, int, int], scene: int, n: int = 5) -> list[np.ndarray]:
    frames = [frame((10 + i, 0, 0), 0) for i in range(n - 1)]
    return [*frames, frame(rgb, scene)]


def make_dynamic(server: ChatServer, **kwargs: object) -> DynamicPathway:
    vlm = OpenAIChatVLM(server.base_url, timeout_s=2, retries=0)
    return DynamicPathway(PixelEncoder(TEXTS), AttentionGate(SceneDetector()), vlm, **kwargs)  # type: ignore[arg-type]


def test_dynamic_pathway_asks_the_lvlm_only_for_gated_frames_with_the_last_k_plus_1() -> None:
    with ChatServer([Reply(GOAL)]) as server:
        pathway = make_dynamic(server, window_frames=4)
        scores = pathway([window((0, 3, 4), 1), window((0, 3, 4), 0), window((0, 3, 4), 3)])
    assert scores.gate.tolist() == [True, False, False]
    assert scores.goals == [GOAL, "", ""]
    # cos(I, T_pos_dyn) = 0, cos(I, T_goal) = 0.8
    np.testing.assert_allclose(scores.r_dynamic, [-0.8, 0.0, 0.0], atol=1e-6)
    assert len(server.requests) == 1
    content = server.requests[0]["messages"][0]["content"]
    assert sum(part["type"] == "image_url" for part in content) == 4
    assert "4 consecutive" in content[-1]["text"]
    assert pathway.stats["gate_open"] == 1 and pathway.stats["frames"] == 3


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(""), "empty"),
        (Reply("I'm sorry, I cannot help with that."), "refusal"),
        (Reply(status=500), "lvlm_error:http_retryable"),
        (Reply(raw=b"<html>oops</html>"), "lvlm_error:malformed"),
        (Reply(delay_s=3.0), "lvlm_error:timeout"),
    ],
)
def test_unusable_lvlm_answers_use_the_counted_fallback_goal(reply: Reply, reason: str) -> None:
    with ChatServer([reply]) as server:
        vlm = OpenAIChatVLM(server.base_url, timeout_s=0.3, retries=0)
        pathway = DynamicPathway(PixelEncoder(TEXTS), AttentionGate(SceneDetector()), vlm)
        scores = pathway([window((0, 3, 4), 1)])
    assert scores.goals == [DEFAULT_FALLBACK_GOAL]
    assert scores.fallbacks == [reason]
    assert pathway.stats[f"fallback:{reason}"] == 1
    # Fallback goal (0, 1, 0): R_dynamic = 0 - 0.6, a penalty, never a silent zero.
    np.testing.assert_allclose(scores.r_dynamic, [-0.6], atol=1e-6)


def test_unreachable_server_never_stops_the_batch() -> None:
    vlm = OpenAIChatVLM(f"http://127.0.0.1:{unused_port()}/v1", timeout_s=1, retries=0)
    pathway = DynamicPathway(PixelEncoder(TEXTS), AttentionGate(SceneDetector()), vlm)
    scores = pathway([window((0, 3, 4), 1), window((0, 3, 4), 0)])
    assert scores.fallbacks == ["lvlm_error:connection", ""]
    assert pathway.stats["fallback:lvlm_error:connection"] == 1


def test_lvlm_calls_of_a_batch_run_concurrently() -> None:
    with ChatServer([Reply(GOAL, delay_s=0.3)]) as server:
        pathway = make_dynamic(server, concurrency=8)
        start = time.perf_counter()
        scores = pathway([window((0, 3, 4), 1) for _ in range(6)])
        elapsed = time.perf_counter() - start
    assert scores.goals == [GOAL] * 6
    # Six 0.3 s answers one after another would take 1.8 s.
    assert elapsed < 1.2


def test_short_windows_and_empty_windows() -> None:
    with ChatServer([Reply(GOAL)]) as server:
        pathway = make_dynamic(server, window_frames=4)
        pathway([[frame((0, 3, 4), 1)]])
        assert sum(p["type"] == "image_url" for p in server.requests[0]["messages"][0]["content"]) == 1
        with pytest.raises(ValueError, match=r"front_window\[1\]: empty"):
            pathway([[frame((0, 3, 4), 1)], []])


def test_dynamic_pathway_arguments_are_checked() -> None:
    vlm = OpenAIChatVLM("http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match="window_frames"):
        DynamicPathway(PixelEncoder(TEXTS), AttentionGate(SceneDetector()), vlm, window_frames=0)
    with pytest.raises(ValueError, match="fallback_goal"):
        DynamicPathway(PixelEncoder(TEXTS), AttentionGate(SceneDetector()), vlm, fallback_goal=" ")


class _CountingQwen:
    """The in-process Qwen3-VL backend, counting its calls; `fail_batches` batched calls raise first."""

    def __init__(self, folder: object, fail_batches: int = 0) -> None:
        from drivevlm.models.lvlm.qwen3vl import Qwen3VLModel

        self.inner = Qwen3VLModel(folder, max_new_tokens=4)  # type: ignore[arg-type]
        self.name = self.inner.name
        self.fail_batches = fail_batches
        self.batch_sizes: list[int] = []
        self.single_calls = 0

    def generate(self, frames: list[np.ndarray], prompt: str) -> str:
        self.single_calls += 1
        return self.inner.generate(frames, prompt)

    def generate_batch(self, windows: list[list[np.ndarray]], prompt: str) -> list[str]:
        self.batch_sizes.append(len(windows))
        if self.fail_batches:
            self.fail_batches -= 1
            raise RuntimeError("out of memory")
        return self.inner.generate_batch(windows, prompt)


class _AnyTextEncoder(PixelEncoder):
    """PixelEncoder that embeds any text outside its table (a random model's answers) as (0, 0, 1)."""

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table.get(t, np.array([0, 0, 1], np.float32)) for t in texts])


def _pixel_windows(n: int) -> list[list[np.ndarray]]:
    frames = [frame((i, 3, 4), 1, size=32) for i in range(n + 3)]
    return [frames[i : i + 4] for i in range(n)]


def test_a_batching_backend_answers_the_gated_windows_in_batches(tiny_qwen3vl_dir) -> None:  # type: ignore[no-untyped-def]
    vlm = _CountingQwen(tiny_qwen3vl_dir)
    pathway = DynamicPathway(
        _AnyTextEncoder(TEXTS),
        AttentionGate(SceneDetector()),
        vlm,
        lvlm_batch_size=4,  # type: ignore[arg-type]
    )
    windows = _pixel_windows(10)
    scores = pathway(windows)
    assert vlm.batch_sizes == [4, 4, 2] and vlm.single_calls == 0
    expected = [pathway._goal(vlm.inner.generate(w[-4:], pathway.prompt)) for w in windows]
    assert list(zip(scores.goals, scores.fallbacks, strict=True)) == expected
    assert pathway.stats["lvlm_calls"] == 10 and pathway.stats["lvlm_batches"] == 3


def test_a_failed_batch_is_asked_window_by_window(tiny_qwen3vl_dir) -> None:  # type: ignore[no-untyped-def]
    vlm = _CountingQwen(tiny_qwen3vl_dir, fail_batches=1)
    pathway = DynamicPathway(
        _AnyTextEncoder(TEXTS),
        AttentionGate(SceneDetector()),
        vlm,
        lvlm_batch_size=4,  # type: ignore[arg-type]
    )
    scores = pathway(_pixel_windows(6))
    assert vlm.batch_sizes == [4, 2] and vlm.single_calls == 4
    assert len(scores.goals) == 6 and all(scores.gate)
    assert pathway.stats["lvlm_batch_failures"] == 1 and pathway.stats["lvlm_calls"] == 6

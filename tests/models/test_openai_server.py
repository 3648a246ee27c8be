"""The OpenAI-compatible chat client against a real HTTP server on 127.0.0.1 (tests/support)."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from drivevlm.models.base import VisionLanguageModel
from drivevlm.models.lvlm.openai_server import (
    LVLMRequestError,
    OpenAIChatVLM,
    answer_text,
    encode_png_data_url,
)
from support.chat_server import ChatServer, Reply, unused_port


def frames(n: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(n)]


def decode_data_url(url: str) -> tuple[bytes, np.ndarray]:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    png = base64.b64decode(url[len(prefix) :])
    return png, np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_success_sends_frames_byte_exact_and_returns_the_text() -> None:
    sent = frames(3)
    with ChatServer([Reply("A cyclist is merging from the right")]) as server:
        vlm = OpenAIChatVLM(server.base_url, model="qwen3-vl-test", timeout_s=5, retries=0)
        assert isinstance(vlm, VisionLanguageModel)
        answer = vlm.generate(sent, "describe the risk")
    assert answer == "A cyclist is merging from the right"
    assert server.paths == ["/v1/chat/completions"]
    request = server.requests[0]
    assert request["model"] == "qwen3-vl-test"
    content = request["messages"][0]["content"]
    images = [part for part in content if part["type"] == "image_url"]
    texts = [part["text"] for part in content if part["type"] == "text"]
    assert texts == ["describe the risk"]
    assert len(images) == 3
    for frame, part in zip(sent, images, strict=True):
        png, pixels = decode_data_url(part["image_url"]["url"])
        assert png == decode_data_url(encode_png_data_url(frame))[0]
        np.testing.assert_array_equal(pixels, frame)


def test_slow_answer_beyond_the_timeout_raises_timeout() -> None:
    with ChatServer([Reply(delay_s=1.0)]) as server:
        vlm = OpenAIChatVLM(server.base_url, timeout_s=0.2, retries=1, backoff_s=0.01)
        start = time.perf_counter()
        with pytest.raises(LVLMRequestError) as caught:
            vlm.generate(frames(1), "p")
        elapsed = time.perf_counter() - start
    assert caught.value.kind == "timeout"
    assert caught.value.attempts == 2
    assert len(server.requests) == 2
    assert elapsed < 1.5


def test_http_500_then_success_retries_with_backoff() -> None:
    with ChatServer([Reply(status=500), Reply(status=503), Reply("A pedestrian ahead")]) as server:
        vlm = OpenAIChatVLM(server.base_url, timeout_s=5, retries=2, backoff_s=0.05)
        start = time.perf_counter()
        answer = vlm.generate(frames(1), "p")
        elapsed = time.perf_counter() - start
    assert answer == "A pedestrian ahead"
    assert len(server.requests) == 3
    # Back-off 0.05 s then 0.1 s.
    assert elapsed >= 0.15


def test_http_500_beyond_retries_raises_with_status() -> None:
    with ChatServer([Reply(status=500)]) as server:
        vlm = OpenAIChatVLM(server.base_url, timeout_s=5, retries=1, backoff_s=0.0)
        with pytest.raises(LVLMRequestError) as caught:
            vlm.generate(frames(1), "p")
    assert (caught.value.kind, caught.value.status, caught.value.attempts) == ("http_retryable", 500, 2)


def test_client_error_is_not_retried() -> None:
    with ChatServer([Reply(status=404)]) as server:
        vlm = OpenAIChatVLM(server.base_url, timeout_s=5, retries=3, backoff_s=0.0)
        with pytest.raises(LVLMRequestError) as caught:
            vlm.generate(frames(1), "p")
    assert caught.value.kind == "http" and caught.value.status == 404
    assert len(server.requests) == 1


def test_connection_refused_raises_connection_error() -> None:
    vlm = OpenAIChatVLM(f"http://127.0.0.1:{unused_port()}/v1", timeout_s=2, retries=1, backoff_s=0.0)
    with pytest.raises(LVLMRequestError) as caught:
        vlm.generate(frames(1), "p")
    assert caught.value.kind == "connection"
    assert caught.value.attempts == 2


@pytest.mark.parametrize(
    "body", [b"not json", b'{"choices": []}', b'{"choices": [{"message": 3}]}', b"[1, 2]"]
)
def test_malformed_body_raises_malformed(body: bytes) -> None:
    with ChatServer([Reply(raw=body)]) as server:
        vlm = OpenAIChatVLM(server.base_url, timeout_s=5, retries=2, backoff_s=0.0)
        with pytest.raises(LVLMRequestError) as caught:
            vlm.generate(frames(1), "p")
    assert caught.value.kind == "malformed"
    assert len(server.requests) == 1


def test_answer_text_accepts_null_and_list_content() -> None:
    assert answer_text(b'{"choices": [{"message": {"content": null}}]}') == ""
    parts = b'{"choices": [{"message": {"content": [{"type": "text", "text": "a "}, {"text": "b"}]}}]}'
    assert answer_text(parts) == "a b"


def test_concurrency_limit_caps_requests_in_flight() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    with ChatServer([Reply(delay_s=0.15)]) as server:
        original = server._next

        def counting(path: str, body: bytes) -> Reply:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            reply = original(path, body)
            time.sleep(reply.delay_s)
            with lock:
                in_flight -= 1
            return Reply(reply.text)

        server._next = counting  # type: ignore[method-assign]
        vlm = OpenAIChatVLM(server.base_url, timeout_s=5, retries=0, concurrency=2)
        threads = [threading.Thread(target=vlm.generate, args=(frames(1), "p")) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert len(server.requests) == 6
    assert peak == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"base_url": "127.0.0.1:8000"}, "base_url"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"retries": -1}, "retries"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        OpenAIChatVLM(**kwargs)  # type: ignore[arg-type]


def test_wrong_frame_dtype_is_a_clear_error() -> None:
    vlm = OpenAIChatVLM("http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match="uint8"):
        vlm.generate([np.zeros((8, 8, 3), np.float32)], "p")


@pytest.mark.network_attempt_expected
def test_a_non_loopback_server_is_blocked_in_tests_and_reported_as_connection_error() -> None:
    vlm = OpenAIChatVLM("http://192.0.2.1:8000/v1", timeout_s=1, retries=0)
    with pytest.raises(LVLMRequestError, match="must not use the network") as caught:
        vlm.generate(frames(1), "p")
    assert caught.value.kind == "connection"

"""An LVLM behind any OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama, ...).

Frames travel as base64 PNG data URLs (`image_url` parts) followed by the text prompt, in one user message.
Only the standard library is used (http.client), so the default install needs no HTTP package; no proxy is
used, since such servers normally sit on the same machine or LAN (vLLM :8000/v1, SGLang :30000/v1,
Ollama :11434/v1).

Every failure ends as an `LVLMRequestError` whose `kind` says what went wrong, after the retries for the
transient kinds (connection, timeout, HTTP 429/5xx) are spent; callers catch that one type.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from drivevlm.models.base import check_images
from drivevlm.retry import call_with_retries

log = logging.getLogger(__name__)

TRANSIENT_KINDS = frozenset({"connection", "timeout", "http_retryable"})


class LVLMRequestError(RuntimeError):
    """A chat request failed for good.

    `kind` is one of: "connection" (refused, reset, DNS), "timeout" (no answer within the timeout),
    "http_retryable" (HTTP 429 or 5xx after all retries), "http" (other non-200 status),
    "malformed" (a 200 whose body is not a chat completion). `status` is the HTTP status when there was one.
    """

    def __init__(self, kind: str, message: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(f"{kind}: {message} (after {attempts} attempt(s))")
        self.kind = kind
        self.detail = message
        self.status = status
        self.attempts = attempts


def encode_png_data_url(image: np.ndarray) -> str:
    """An (H, W, 3) uint8 RGB frame as a PNG data URL (lossless, so the server sees our exact pixels)."""
    frame = check_images(image, "frame")[0]
    buffer = io.BytesIO()
    Image.fromarray(frame, mode="RGB").save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chat_payload(
    model: str, frames: Sequence[np.ndarray], prompt: str, max_tokens: int, temperature: float
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": encode_png_data_url(frame)}} for frame in frames
    ]
    content.append({"type": "text", "text": prompt})
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": temperature,
    }


def answer_text(body: bytes) -> str:
    """The first choice's message text of a chat-completions body; LVLMRequestError("malformed") if none."""
    try:
        data = json.loads(body)
        message = data["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError) as error:
        snippet = body[:120].decode("utf-8", "replace")
        raise LVLMRequestError("malformed", f"not a chat completion ({error!r}): {snippet!r}") from None
    if not isinstance(message, dict):
        raise LVLMRequestError("malformed", f"choices[0].message is {type(message).__name__}, not an object")
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise LVLMRequestError("malformed", f"choices[0].message.content is {type(content).__name__}")


class OpenAIChatVLM:
    """`VisionLanguageModel` backed by POST {base_url}/chat/completions."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str = "Qwen/Qwen3-VL-2B-Instruct",
        timeout_s: float = 30.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        concurrency: int = 8,
        max_tokens: int = 64,
        temperature: float = 0.0,
        api_key: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url: expected http(s)://host[:port]/path, got {base_url!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: must be > 0, got {timeout_s}")
        if retries < 0:
            raise ValueError(f"retries: must be >= 0, got {retries}")
        if concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {concurrency}")
        self.name = model
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.concurrency = concurrency
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._api_key = api_key
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/chat/completions"
        self._slots = threading.BoundedSemaphore(concurrency)

    def generate(self, frames: Sequence[np.ndarray], prompt: str) -> str:
        if not frames:
            raise ValueError("frames: at least one frame is needed")
        body = json.dumps(chat_payload(self.name, frames, prompt, self.max_tokens, self.temperature)).encode()
        tries = 0

        def post() -> str:
            with self._slots:
                return answer_text(self._post(body))

        def failed(error: Exception, attempt: int, again: bool) -> None:
            nonlocal tries
            tries = attempt
            if again:
                log.warning("LVLM %s: %s; retry %d/%d", self.base_url, error, attempt, self.retries)

        try:
            return call_with_retries(
                post,
                self.retries,
                self.backoff_s,
                retryable=lambda error: isinstance(error, LVLMRequestError) and error.kind in TRANSIENT_KINDS,
                on_failure=failed,
            )
        except LVLMRequestError as error:
            raise LVLMRequestError(error.kind, error.detail, error.status, tries) from None

    def _post(self, body: bytes) -> bytes:
        connection_type = (
            http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_type(self._host, self._port, timeout=self.timeout_s)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        where = f"{self.base_url}/chat/completions"
        try:
            connection.request("POST", self._path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except TimeoutError:
            raise LVLMRequestError("timeout", f"{where} did not answer within {self.timeout_s}s") from None
        except (ConnectionError, OSError, http.client.HTTPException) as error:
            raise LVLMRequestError("connection", f"{where}: {error!r}") from None
        finally:
            connection.close()
        if response.status == 200:
            return payload
        snippet = payload[:200].decode("utf-8", "replace")
        kind = "http_retryable" if response.status == 429 or response.status >= 500 else "http"
        raise LVLMRequestError(kind, f"{where} returned HTTP {response.status}: {snippet}", response.status)

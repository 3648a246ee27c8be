"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for tests and the reward benchmark.

It binds an ephemeral port, answers from a script (text, delay, HTTP status or raw body per request, the last
entry repeating), records every request body it received, and shuts itself down after `lifetime_s` even if
a test forgets to stop it. (tests/conftest.py blocks every non-loopback connection during tests.)
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    text: str = "A pedestrian is crossing the road ahead"
    delay_s: float = 0.0
    status: int = 200
    # Sent verbatim instead of a chat completion when set.
    raw: bytes | None = None


def completion(text: str, model: str = "stand-in") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


class ChatServer:
    def __init__(self, script: list[Reply] | None = None, lifetime_s: float = 60.0) -> None:
        self.script = list(script or [Reply()])
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._count = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                reply = server._next(self.path, body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.raw if reply.raw is not None else json.dumps(completion(reply.text)).encode()
                if reply.status != 200 and reply.raw is None:
                    payload = json.dumps({"error": {"message": "scripted failure"}}).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._deadline = threading.Timer(lifetime_s, self.stop)
        self._deadline.daemon = True
        self._stopped = False

    def _next(self, path: str, body: bytes) -> Reply:
        with self._lock:
            self.paths.append(path)
            try:
                self.requests.append(json.loads(body))
            except ValueError:
                self.requests.append({"unparsed": body.decode("utf-8", "replace")})
            reply = self.script[min(self._count, len(self.script) - 1)]
            self._count += 1
            return reply

    def start(self) -> ChatServer:
        self._thread.start()
        self._deadline.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._deadline.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def unused_port() -> int:
    """A loopback port nothing listens on (bound then released), for connection-refused tests."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

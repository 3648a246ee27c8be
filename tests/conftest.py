"""Session-wide test setup: offline everywhere, one CPU thread, no network, tiny real models on demand.

The environment variables are set at import time, before any test module imports transformers,
huggingface_hub or ultralytics (they read them once, at import).
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_PRIVATE_DIR = Path(tempfile.mkdtemp(prefix="drivevlm-tests-"))
_OWNER_PID = os.getpid()


@atexit.register
def _remove_private_dir() -> None:
    """At exit, also when pytest stops before configuring (a usage error); never from a forked child."""
    if os.getpid() == _OWNER_PID:
        shutil.rmtree(_PRIVATE_DIR, ignore_errors=True)


os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_AUTOINSTALL"] = "false"
os.environ["YOLO_CONFIG_DIR"] = str(_PRIVATE_DIR / "yolo")
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# A model trained without its own logger logs here, not to a new tempdir/SB3-<time> folder per learn().
os.environ["SB3_LOGDIR"] = str(_PRIVATE_DIR / "sb3")


def _give_ultralytics_a_font() -> None:
    """ultralytics fetches Arial.ttf from the internet unless one already sits in its config dir."""
    target = _PRIVATE_DIR / "yolo" / "Ultralytics" / "Arial.ttf"
    target.parent.mkdir(parents=True, exist_ok=True)
    for font in sorted(Path("/usr/share/fonts").rglob("*.ttf")):
        shutil.copyfile(font, target)
        return


_give_ultralytics_a_font()


# ---------------------------------------------------------------- network guard

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}
blocked_attempts: list[str] = []


class NetworkBlockedError(ConnectionRefusedError):
    """Raised for any connection a test makes to a non-loopback address."""


def _is_local(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host in _LOOPBACK_NAMES or host in ("0.0.0.0", "::"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str) -> NetworkBlockedError:
    blocked_attempts.append(what)
    return NetworkBlockedError(f"tests must not use the network: blocked {what}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise _refuse(f"connect to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise _refuse(f"connect_ex to {address!r}")
    return _real_connect_ex(self, address)


def _is_ip_literal(host: Any) -> bool:
    """Numeric addresses resolve without DNS; the connect guard decides about them."""
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_local(host) and not _is_ip_literal(host):
        raise socket.gaierror(socket.EAI_NONAME, str(_refuse(f"name lookup of {host!r}")))
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "network_attempt_expected: the test checks that a non-loopback connection is refused"
    )
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo


def pytest_unconfigure(config: pytest.Config) -> None:
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test that tried to reach the network, even if the code under test swallowed the error."""
    del blocked_attempts[:]
    yield
    attempts = list(blocked_attempts)
    del blocked_attempts[:]
    if attempts and request.node.get_closest_marker("network_attempt_expected") is None:
        pytest.fail(f"test tried to use the network: {attempts}")


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default caches live under ~/.cache (reward results, towns): tests never write to the real home."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """OMP_NUM_THREADS covers torch imported later; this covers a torch imported before conftest."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


from support.tiny_models import build_tiny_clip, build_tiny_qwen3vl, build_tiny_rtdetr  # noqa: E402


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random transformers CLIP saved like a real checkpoint (session-wide, built once)."""
    pytest.importorskip("transformers")
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_qwen3vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random Qwen3-VL saved like a real checkpoint (session-wide, built once)."""
    pytest.importorskip("transformers")
    return build_tiny_qwen3vl(tmp_path_factory.mktemp("tiny-qwen3vl"))


@pytest.fixture(scope="session")
def tiny_rtdetr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random RT-DETR with COCO class names, saved like a real checkpoint (session-wide)."""
    pytest.importorskip("transformers")
    return build_tiny_rtdetr(tmp_path_factory.mktemp("tiny-rtdetr"))

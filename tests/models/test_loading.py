"""Model resolution: local folders, the Hugging Face cache layout, and fast clear failures offline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drivevlm.models.base import ModelNotFoundError
from drivevlm.models.loading import (
    resolve_device,
    resolve_dtype,
    resolve_hf_file,
    resolve_model_dir,
    weights_tag,
)


def fake_hf_cache(cache: Path, repo: str, files: dict[str, str]) -> Path:
    """Lay files out exactly as huggingface_hub stores a downloaded snapshot."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name, text in files.items():
        (snapshot / name).write_text(text)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)
    return snapshot


def test_local_folder_is_returned_as_is(tmp_path: Path) -> None:
    assert resolve_model_dir(tmp_path) == tmp_path.resolve()
    assert resolve_model_dir(str(tmp_path)) == tmp_path.resolve()


def test_repo_id_found_in_hf_cache(tmp_path: Path) -> None:
    snapshot = fake_hf_cache(tmp_path, "someorg/tiny-model", {"config.json": "{}"})
    assert resolve_model_dir("someorg/tiny-model", cache_dir=tmp_path) == snapshot
    assert resolve_hf_file("someorg/tiny-model", ("missing.bin", "config.json"), cache_dir=tmp_path) == (
        snapshot / "config.json"
    )


def test_missing_repo_fails_fast_naming_model_and_places(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model_dir("nobody/no-such-model", cache_dir=tmp_path)
    assert time.perf_counter() - started < 2.0
    message = str(caught.value)
    assert "'nobody/no-such-model'" in message
    assert str(tmp_path / "models--nobody--no-such-model") in message
    assert str(Path("nobody/no-such-model").resolve()) in message
    assert caught.value.model == "nobody/no-such-model"
    assert len(caught.value.searched) == 2


def test_missing_file_in_cache_names_every_candidate(tmp_path: Path) -> None:
    fake_hf_cache(tmp_path, "someorg/tiny-model", {"config.json": "{}"})
    with pytest.raises(ModelNotFoundError, match=r"a\.bin.*b\.safetensors"):
        resolve_hf_file("someorg/tiny-model", ("a.bin", "b.safetensors"), cache_dir=tmp_path)


def test_missing_local_path_and_file_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a folder"):
        resolve_model_dir(tmp_path / "absent" / "dir")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        resolve_model_dir(weights)
    with pytest.raises(ValueError, match="empty"):
        resolve_model_dir("  ")


def test_device_and_dtype_choices() -> None:
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("banana")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("float8", torch.device("cpu"))


def test_backend_with_missing_model_raises_quickly() -> None:
    pytest.importorskip("transformers")
    from drivevlm.models.clip.transformers_clip import TransformersClipEncoder

    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="nobody/missing-clip"):
        TransformersClipEncoder("nobody/missing-clip")
    assert time.perf_counter() - started < 3.0


@pytest.mark.network_attempt_expected
def test_network_guard_blocks_remote_but_not_loopback() -> None:
    """The session-wide guard in tests/conftest.py: remote connections fail, 127.0.0.1 works."""
    import socket

    with socket.socket() as client, pytest.raises(ConnectionRefusedError, match="must not use the network"):
        client.connect(("93.184.216.34", 80))
    with pytest.raises(ConnectionRefusedError, match="must not use the network"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("huggingface.co", 443)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=1):
            pass


@pytest.mark.network_attempt_expected
def test_allowed_download_without_network_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="nobody/no-such-model"):
        resolve_model_dir("nobody/no-such-model", cache_dir=tmp_path, allow_download=True)


def test_weights_tag_follows_the_weights_not_the_folder(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights-v1")
        (folder / "config.json").write_text("{}")
    tag = weights_tag(first)
    assert weights_tag(second) == tag and len(tag) == 12
    (second / "model.safetensors").write_bytes(b"weights-v2")
    (first / "config.json").write_text('{"changed": true}')  # not weights: the tag stays
    assert weights_tag(first) == tag and weights_tag(second) != tag

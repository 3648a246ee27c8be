"""Find model weights on disk: a local folder or file, else the Hugging Face cache.

Never downloads unless asked to (``allow_download=True``), so a missing model fails at once with one
message naming the model and every place searched, instead of after long network retries.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from drivevlm.models.base import ModelNotFoundError

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

DOWNLOAD_HINT = (
    "Pass a local folder, or fetch the weights on a machine with network access "
    "(e.g. `hf download {repo}`) and copy the Hugging Face cache here"
)


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
_HASHED_BYTES = 64 * 2**20


def weights_tag(folder: str | Path) -> str:
    """A short digest of the weights in `folder`, for result-cache keys: retrained weights under the same
    name (the bundled models) must not be served their predecessor's cached answers.

    Files up to 64 MiB are hashed whole; larger ones by name and size within their resolved path (a Hugging
    Face snapshot's path already names its revision).
    """
    folder = Path(folder).resolve()
    digest = hashlib.blake2b(digest_size=6)
    files = [folder] if folder.is_file() else sorted(folder.iterdir())
    for path in files:
        if path.suffix not in _WEIGHT_SUFFIXES or not path.is_file():
            continue
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        digest.update(path.read_bytes() if size <= _HASHED_BYTES else str(path).encode())
    return digest.hexdigest()


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache that transformers and open_clip read (honours HF_HOME / HF_HUB_CACHE)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def looks_like_repo_id(model: str) -> bool:
    return bool(_REPO_ID.match(model)) and not model.startswith((".", "~"))


def resolve_model_dir(
    model: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    allow_download: bool = False,
) -> Path:
    """Return a local folder holding ``model``: the path itself, or its snapshot in the HF cache."""
    text = str(model).strip()
    if not text:
        raise ValueError("model: expected a model id (org/name) or a local folder, got an empty string")
    local = Path(text).expanduser()
    if local.is_dir():
        return local.resolve()
    if local.exists():
        raise ModelNotFoundError(text, [local.resolve()], hint="this path is a file, expected a folder")
    if not looks_like_repo_id(text):
        raise ModelNotFoundError(
            text, [local.resolve()], hint="not a folder, and not a Hugging Face model id of the form org/name"
        )
    cache = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    searched = [local.resolve(), cache / ("models--" + text.replace("/", "--"))]
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = snapshot_download(text, revision=revision, cache_dir=cache, local_files_only=True)
        return Path(str(path))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        if not allow_download:
            raise ModelNotFoundError(text, searched, hint=DOWNLOAD_HINT.format(repo=text)) from None
    try:
        return Path(str(snapshot_download(text, revision=revision, cache_dir=cache)))
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise ModelNotFoundError(
            text, [*searched, "https://huggingface.co"], hint=f"download failed: {error}"
        ) from error


def resolve_hf_file(
    repo: str,
    filenames: tuple[str, ...],
    *,
    cache_dir: str | Path | None = None,
    allow_download: bool = False,
) -> Path:
    """Return the first of ``filenames`` that the HF cache holds for ``repo`` (one file, not a snapshot)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cache = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    searched = [
        cache / ("models--" + repo.replace("/", "--")) / "snapshots" / "*" / name for name in filenames
    ]
    for local_only in (True, False) if allow_download else (True,):
        for name in filenames:
            try:
                return Path(
                    hf_hub_download(repo, name, cache_dir=cache, local_files_only=local_only)  # type: ignore[arg-type]
                )
            except (LocalEntryNotFoundError, HfHubHTTPError, FileNotFoundError, OSError, ValueError):
                continue
    raise ModelNotFoundError(repo, searched, hint=DOWNLOAD_HINT.format(repo=repo))


def resolve_bundled_dir(model: str | Path, bundled_dir: Path, bundled_names: tuple[str, ...]) -> Path:
    """The folder of one of our own small models: the bundled one by name, or a folder the user trained.

    Such a folder holds `model.safetensors` and `config.json`; anything else is a ModelNotFoundError.
    """
    text = str(model)
    folder = bundled_dir if text in bundled_names else Path(text).expanduser()
    if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            text,
            [folder.resolve()],
            hint="expected model.safetensors and config.json (train one with `drivevlm models train`)",
        )
    return folder


def resolve_device(device: str) -> torch.device:
    """Parse a device name, failing clearly when CUDA is asked for but absent."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}") from error
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested but CUDA is not available here; use 'cpu'")
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return parsed


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """float32 on CPU by default, float16 on CUDA; 'float32', 'float16', 'bfloat16' pick one explicitly."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    choices = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in choices:
        raise ValueError(f"dtype: expected one of {sorted(choices)}, got {dtype!r}")
    return choices[dtype]

"""Atomic file writes: readers see the old file or the new one, never half of one (a crash included)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class AtomicFile:
    """A temporary file beside `target`, with the same suffix, for a writer that fills it over time (a video
    encoder): `commit()` fsyncs it and moves it onto `target` as an ordinary 0644 file (mkstemp makes
    owner-only ones); `abort()` removes it and leaves `target` as it was."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            dir=self.target.parent, prefix=f".{self.target.stem}.", suffix=self.target.suffix or ".tmp"
        )
        os.close(handle)
        self.path = Path(name)

    def commit(self) -> Path:
        with self.path.open("rb") as written:
            os.fsync(written.fileno())
        self.path.chmod(0o644)
        self.path.replace(self.target)
        return self.target

    def abort(self) -> None:
        self.path.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """An `AtomicFile`'s temporary path for writers that want a file name (torch, numpy, ONNX): moved onto
    `path` when the block ends cleanly, removed when it raises."""
    file = AtomicFile(path)
    try:
        yield file.path
        file.commit()
    finally:
        file.abort()


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically."""
    with atomic_output(path) as temporary:
        temporary.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)

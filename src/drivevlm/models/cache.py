"""A persistent cache of model outputs (embeddings, LVLM answers), so a re-run pays nothing for known inputs.

Keys are SHA-256 hashes of everything that determines the output: the kind of output, the model name, the
prompt version and text, and the exact image bytes with their shape. Storage is one SQLite file in WAL mode
(safe for concurrent readers, survives restarts and crashes). Each value carries its own checksum: an entry
that fails it, or that cannot be decoded, is dropped and counted, never fatal; a database file that SQLite
cannot open at all is moved aside and replaced by an empty one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from drivevlm.models.base import ImageTextEncoder, VisionLanguageModel, check_images

log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, checksum TEXT NOT NULL)"
)


def cache_key(*parts: str | bytes | np.ndarray) -> str:
    """SHA-256 over the parts, each length-prefixed so that ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            data = f"{array.dtype.str}{array.shape}".encode() + array.tobytes()
        elif isinstance(part, str):
            data = part.encode("utf-8")
        else:
            data = bytes(part)
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _checksum(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()[:16]


class ResultCache:
    """Bytes, text and arrays by key in one SQLite file; thread-safe."""

    def __init__(self, path: str | Path, max_entries: int | None = None) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries: must be >= 1 or None, got {max_entries}")
        self.path = Path(path).expanduser()
        self.max_entries = max_entries
        self.stats = {"hits": 0, "misses": 0, "writes": 0, "corrupted": 0, "reset_files": 0}
        self._lock = threading.Lock()
        self._puts_since_prune = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        # A crash loses no committed entry; a power cut may lose the newest ones (a cache can afford that),
        # and no write waits for an fsync (a full sync cost about 0.7 ms per entry).
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            db = self._connect()
            db.execute("SELECT COUNT(*) FROM entries").fetchone()
            return db
        except sqlite3.DatabaseError as error:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning(
                "cache %s is unreadable (%s); moved aside to %s, starting empty", self.path, error, aside
            )
            self.stats["reset_files"] += 1
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._connect()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def get(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value, checksum FROM entries WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.stats["misses"] += 1
                return None
            value, checksum = bytes(row[0]), row[1]
            if _checksum(value) != checksum:
                self._drop_locked(key, "checksum mismatch")
                return None
            self.stats["hits"] += 1
            return value

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO entries (key, value, checksum) VALUES (?, ?, ?)",
                (key, value, _checksum(value)),
            )
            self.stats["writes"] += 1
            self._puts_since_prune += 1
            if self.max_entries is not None and self._puts_since_prune >= max(1, self.max_entries // 10):
                self._puts_since_prune = 0
                self._db.execute(
                    "DELETE FROM entries WHERE rowid IN "
                    "(SELECT rowid FROM entries ORDER BY rowid DESC LIMIT -1 OFFSET ?)",
                    (self.max_entries,),
                )

    def drop(self, key: str, why: str) -> None:
        """Remove an entry found unusable by a caller (e.g. it does not decode) and count it as corrupted."""
        with self._lock:
            self._drop_locked(key, why)

    def _drop_locked(self, key: str, why: str) -> None:
        log.warning("cache %s: entry %s is corrupted (%s); ignored", self.path, key[:12], why)
        self.stats["corrupted"] += 1
        self._db.execute("DELETE FROM entries WHERE key = ?", (key,))

    def get_text(self, key: str) -> str | None:
        value = self.get(key)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            self.drop(key, "not UTF-8")
            return None

    def put_text(self, key: str, text: str) -> None:
        self.put(key, text.encode("utf-8"))

    def get_array(self, key: str) -> np.ndarray | None:
        value = self.get(key)
        if value is None:
            return None
        try:
            return np.load(io.BytesIO(value), allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            self.drop(key, f"not an array: {error}")
            return None

    def put_array(self, key: str, array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array), allow_pickle=False)
        self.put(key, buffer.getvalue())

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedEncoder:
    """An `ImageTextEncoder` that looks each image and text up in a `ResultCache`; only misses are encoded."""

    def __init__(self, encoder: ImageTextEncoder, cache: ResultCache) -> None:
        self.inner = encoder
        self.cache = cache
        self.name = encoder.name

    def encode_images(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        batch = check_images(images)
        keys = [cache_key("image-embedding", self.name, image) for image in batch]
        return self._lookup(keys, lambda idx: self.inner.encode_images(batch[idx]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        keys = [cache_key("text-embedding", self.name, text) for text in texts]
        return self._lookup(keys, lambda idx: self.inner.encode_texts([texts[i] for i in idx]))

    def _lookup(self, keys: list[str], encode: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        found = [self.cache.get_array(key) for key in keys]
        missing = [i for i, value in enumerate(found) if value is None]
        if missing:
            fresh = np.asarray(encode(missing))
            for row, i in enumerate(missing):
                found[i] = fresh[row]
                self.cache.put_array(keys[i], fresh[row])
        return np.stack([np.asarray(value, dtype=np.float32) for value in found])


class CachedVLM:
    """A `VisionLanguageModel` remembering non-empty answers per (model, prompt version, prompt, frames)."""

    def __init__(self, vlm: VisionLanguageModel, cache: ResultCache, prompt_version: str) -> None:
        self.inner = vlm
        self.cache = cache
        self.prompt_version = prompt_version
        self.name = vlm.name

    def _key(self, frames: Sequence[np.ndarray], prompt: str) -> str:
        arrays = [np.asarray(f) for f in frames]
        return cache_key("lvlm-answer", self.name, self.prompt_version, prompt, *arrays)

    def generate(self, frames: Sequence[np.ndarray], prompt: str) -> str:
        key = self._key(frames, prompt)
        cached = self.cache.get_text(key)
        if cached is not None:
            return cached
        answer = self.inner.generate(frames, prompt)
        if isinstance(answer, str) and answer.strip():
            self.cache.put_text(key, answer)
        return answer


class CachedBatchVLM(CachedVLM):
    """`CachedVLM` for a backend that answers several windows per call: the misses go in one call."""

    def generate_batch(self, windows: Sequence[Sequence[np.ndarray]], prompt: str) -> list[str]:
        keys = [self._key(frames, prompt) for frames in windows]
        answers: list[str | None] = [self.cache.get_text(key) for key in keys]
        missing = [i for i, answer in enumerate(answers) if answer is None]
        if missing:
            fresh = self.inner.generate_batch([windows[i] for i in missing], prompt)  # type: ignore[attr-defined]
            if len(fresh) != len(missing):
                raise RuntimeError(f"{self.name}: {len(fresh)} answers for {len(missing)} windows")
            for i, answer in zip(missing, fresh, strict=True):
                answers[i] = answer
                if isinstance(answer, str) and answer.strip():
                    self.cache.put_text(keys[i], answer)
        return [str(answer) for answer in answers]


def cached_vlm(vlm: VisionLanguageModel, cache: ResultCache, prompt_version: str) -> CachedVLM:
    """The caching wrapper that keeps what the backend can do (batched windows or one at a time)."""
    batched = callable(getattr(vlm, "generate_batch", None))
    return (CachedBatchVLM if batched else CachedVLM)(vlm, cache, prompt_version)

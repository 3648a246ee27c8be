"""The persistent result cache: keys, restarts, corruption, size bound, and the cached model wrappers."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from drivevlm.models.cache import CachedEncoder, CachedVLM, ResultCache, cache_key, cached_vlm


def test_key_depends_on_every_part() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    other = image.copy()
    other[0, 0, 0] = 1
    base = cache_key("lvlm", "model-a", "dynamic_goal_v1", image)
    assert base == cache_key("lvlm", "model-a", "dynamic_goal_v1", image.copy())
    assert base != cache_key("lvlm", "model-b", "dynamic_goal_v1", image)
    assert base != cache_key("lvlm", "model-a", "dynamic_goal_v2", image)
    assert base != cache_key("lvlm", "model-a", "dynamic_goal_v1", other)
    assert base != cache_key("lvlm", "model-a", "dynamic_goal_v1", image.reshape(8, 2, 3))
    assert cache_key("ab", "c") != cache_key("a", "bc")


def test_values_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    cache = ResultCache(path)
    cache.put_text("t", "A pedestrian ahead")
    cache.put_array("a", np.arange(6, dtype=np.float32).reshape(2, 3))
    cache.close()
    reopened = ResultCache(path)
    assert reopened.get_text("t") == "A pedestrian ahead"
    np.testing.assert_array_equal(reopened.get_array("a"), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert reopened.get("missing") is None
    assert reopened.stats["hits"] == 2 and reopened.stats["misses"] == 1


def test_corrupted_entry_is_ignored_counted_and_dropped(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    cache = ResultCache(path)
    cache.put_array("a", np.ones(3, np.float32))
    cache.put_text("b", "fine")
    raw = sqlite3.connect(path)
    raw.execute("UPDATE entries SET value = ? WHERE key = 'a'", (b"garbage",))
    raw.commit()
    raw.close()
    assert cache.get_array("a") is None
    assert cache.stats["corrupted"] == 1
    assert cache.get_text("b") == "fine"
    assert len(cache) == 1


def test_undecodable_array_with_valid_checksum_is_dropped(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c.sqlite")
    cache.put("a", b"not an npy file")
    assert cache.get_array("a") is None
    assert cache.stats["corrupted"] == 1
    assert cache.get("a") is None


def test_unreadable_database_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a sqlite database" * 100)
    cache = ResultCache(path)
    assert cache.stats["reset_files"] == 1
    cache.put_text("k", "v")
    assert cache.get_text("k") == "v"
    assert list(tmp_path.glob("cache.sqlite.corrupt-*"))


def test_max_entries_bounds_the_size(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c.sqlite", max_entries=10)
    for i in range(35):
        cache.put_text(f"k{i}", str(i))
    assert len(cache) <= 10
    assert cache.get_text("k34") == "34"
    assert cache.get_text("k0") is None


def test_concurrent_writers_do_not_fail(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c.sqlite")

    def write(start: int) -> None:
        for i in range(start, start + 50):
            cache.put_text(f"k{i}", str(i))

    threads = [threading.Thread(target=write, args=(n * 50,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 200


class CountingEncoder:
    """Deterministic stand-in that counts calls: the cache must avoid calls; a real model cannot show that."""

    name = "counting"

    def __init__(self) -> None:
        self.images_seen = 0
        self.texts_seen = 0

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        batch = np.asarray(images)
        self.images_seen += len(batch)
        return batch.reshape(len(batch), -1)[:, :4].astype(np.float32) + 1.0

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self.texts_seen += len(texts)
        return np.array([[len(t), 1, 0, 0] for t in texts], np.float32)


def test_cached_encoder_only_encodes_misses(tmp_path: Path) -> None:
    inner = CountingEncoder()
    encoder = CachedEncoder(inner, ResultCache(tmp_path / "c.sqlite"))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    first = encoder.encode_images(images)
    assert inner.images_seen == 3
    more = np.concatenate([images[:2], rng.integers(0, 256, (1, 4, 4, 3), dtype=np.uint8)])
    second = encoder.encode_images(more)
    assert inner.images_seen == 4
    np.testing.assert_array_equal(second[:2], first[:2])
    encoder.encode_texts(["a", "bb"])
    encoder.encode_texts(["bb", "a"])
    assert inner.texts_seen == 2


class ScriptedVLM:
    name = "scripted"

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.calls = 0

    def generate(self, frames: list[np.ndarray], prompt: str) -> str:
        self.calls += 1
        return self.answers[min(self.calls - 1, len(self.answers) - 1)]


def test_cached_vlm_remembers_answers_across_restarts_but_not_empty_ones(tmp_path: Path) -> None:
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(3)]
    inner = ScriptedVLM(["", "A cyclist ahead"])
    vlm = CachedVLM(inner, ResultCache(tmp_path / "c.sqlite"), "dynamic_goal_v1")
    assert vlm.generate(frames, "p") == ""
    assert vlm.generate(frames, "p") == "A cyclist ahead"
    assert vlm.generate(frames, "p") == "A cyclist ahead"
    assert inner.calls == 2
    again = ScriptedVLM(["other"])
    restarted = CachedVLM(again, ResultCache(tmp_path / "c.sqlite"), "dynamic_goal_v1")
    assert restarted.generate(frames, "p") == "A cyclist ahead"
    assert again.calls == 0
    assert CachedVLM(again, restarted.cache, "dynamic_goal_v2").generate(frames, "p") == "other"


class ScriptedBatchVLM(ScriptedVLM):
    def __init__(self, answers: list[str]) -> None:
        super().__init__(answers)
        self.batches: list[int] = []

    def generate_batch(self, windows: list[list[np.ndarray]], prompt: str) -> list[str]:
        self.batches.append(len(windows))
        return [self.generate(frames, prompt) for frames in windows]


def test_cached_batch_vlm_asks_only_the_misses_in_one_call(tmp_path: Path) -> None:
    windows = [[np.full((4, 4, 3), i, np.uint8)] for i in range(4)]
    cache = ResultCache(tmp_path / "c.sqlite")
    assert type(cached_vlm(ScriptedVLM(["x"]), cache, "v1")) is CachedVLM
    inner = ScriptedBatchVLM(["a", "b", "c", "d", "e"])
    vlm = cached_vlm(inner, cache, "v1")
    assert vlm.generate_batch(windows[1:3], "p") == ["a", "b"]  # type: ignore[attr-defined]
    assert vlm.generate_batch(windows, "p") == ["c", "a", "b", "d"]  # type: ignore[attr-defined]
    assert inner.batches == [2, 2]


def test_max_entries_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_entries"):
        ResultCache(tmp_path / "c.sqlite", max_entries=0)

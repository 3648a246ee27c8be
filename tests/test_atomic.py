from pathlib import Path

import pytest

from drivevlm.atomic import AtomicFile, atomic_output, write_atomic


def test_writes_bytes_and_text_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"
    write_atomic(target, b"old")
    assert write_atomic(target, "new ✓") == target
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.json"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    write_atomic(target, "old")
    with pytest.raises(TypeError):
        write_atomic(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_atomic_output_hands_a_named_file_to_other_writers(tmp_path: Path) -> None:
    import numpy as np

    target = tmp_path / "deep" / "arrays.npz"
    with atomic_output(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".npz"
        np.savez(temporary, a=np.arange(3))  # keeps the name: it already ends in .npz
        assert not target.exists()
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    assert target.stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in target.parent.iterdir()) == ["arrays.npz"]


def test_an_atomic_file_filled_over_time_commits_whole_or_leaves_the_target(tmp_path: Path) -> None:
    target = tmp_path / "clip.webm"
    target.write_bytes(b"old")
    aborted = AtomicFile(target)
    aborted.path.write_bytes(b"half")
    aborted.abort()
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["clip.webm"]
    filled = AtomicFile(target)
    assert filled.path.parent == tmp_path and filled.path.suffix == ".webm"
    filled.path.write_bytes(b"new")
    assert filled.commit() == target and target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o644 and sorted(p.name for p in tmp_path.iterdir()) == [
        "clip.webm"
    ]
